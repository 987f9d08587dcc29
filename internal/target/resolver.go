package target

import (
	"fmt"
	"os"

	"github.com/eventaccess/terraform-provider-eventaccess/internal/grant"
)

// Connections resolves named connections the same way in the provider and the
// sweeper: an explicitly configured URL first, else the environment variable
// EVENTACCESS_CONNECTION_<NAME> (see grant.ConnectionEnvVar).
type Connections struct {
	// Configured maps names to URLs (from the provider block or the sweeper's config file).
	Configured map[string]string
	// Getenv reads the environment; nil means os.Getenv.
	Getenv func(string) string
}

// Resolve returns the URL of the named connection. The error never contains the URL.
func (c Connections) Resolve(name string) (string, error) {
	if err := grant.ValidConnectionName(name); err != nil {
		return "", err
	}
	if u, ok := c.Configured[name]; ok && u != "" {
		return u, nil
	}
	getenv := c.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	env := grant.ConnectionEnvVar(name)
	if u := getenv(env); u != "" {
		return u, nil
	}
	return "", fmt.Errorf("connection %q is not configured: add it to the provider's connections (or the sweeper's config file), or set the environment variable %s to its URL", name, env)
}

// Known reports whether the connection resolves, without returning the URL.
func (c Connections) Known(name string) bool {
	_, err := c.Resolve(name)
	return err == nil
}

var _ Resolver = Connections{}
