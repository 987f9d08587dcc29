package target

import (
	"strings"
	"testing"
)

func TestConnectionsResolve(t *testing.T) {
	env := map[string]string{"EVENTACCESS_CONNECTION_LEGACY_DB": "postgres://u:envsecret@h/db"}
	c := Connections{
		Configured: map[string]string{"main": "postgres://u:cfgsecret@h/db"},
		Getenv:     func(k string) string { return env[k] },
	}
	if u, err := c.Resolve("main"); err != nil || !strings.Contains(u, "cfgsecret") {
		t.Fatalf("configured: %q %v", u, err)
	}
	if u, err := c.Resolve("legacy-db"); err != nil || !strings.Contains(u, "envsecret") {
		t.Fatalf("from environment: %q %v", u, err)
	}
	_, err := c.Resolve("nowhere")
	if err == nil || !strings.Contains(err.Error(), "EVENTACCESS_CONNECTION_NOWHERE") {
		t.Fatalf("unknown connection must name the variable to set: %v", err)
	}
	if _, err := c.Resolve("bad name"); err == nil {
		t.Fatal("invalid name accepted")
	}
	if !c.Known("main") || c.Known("nowhere") {
		t.Fatal("Known disagrees with Resolve")
	}
}
