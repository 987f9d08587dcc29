package postgresql

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/eventaccess/terraform-provider-eventaccess/internal/grant"
	"github.com/eventaccess/terraform-provider-eventaccess/internal/target"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

func TestScrub(t *testing.T) {
	const pw = "s3cr3t/p@ss word"
	u := "postgres://admin:s3cr3t%2Fp%40ss%20word@db.example:5432/app?sslmode=disable"
	for _, msg := range []string{
		"failed: " + u,
		"password is " + pw,
		"encoded s3cr3t%2Fp%40ss%20word here",
		"other url postgres://bob:hunter2@x/y",
		"kv: host=x password=hunter2 user=bob",
		"kv quoted: password='hunter 2' user=bob",
	} {
		got := Scrub(msg, u)
		for _, secret := range []string{pw, "s3cr3t", "hunter2", "hunter 2"} {
			if strings.Contains(got, secret) {
				t.Errorf("Scrub(%q) = %q still holds %q", msg, got, secret)
			}
		}
	}
	if got := Scrub("role \"x\" does not exist", u); got != "role \"x\" does not exist" {
		t.Errorf("Scrub changed a harmless message: %q", got)
	}
	if got := Scrub("nothing", ""); got != "nothing" {
		t.Errorf("Scrub with no URL: %q", got)
	}
}

func TestCannotConnectError(t *testing.T) {
	u := "postgres://admin:topsecret@127.0.0.1:1/app"
	inner := fmt.Errorf("dial: %s: %w", u, context.DeadlineExceeded)
	err := cannotConnect("legacy", u, inner)
	if !strings.HasPrefix(err.Error(), `connection "legacy": cannot connect: `) {
		t.Fatalf("message: %s", err)
	}
	if strings.Contains(err.Error(), "topsecret") {
		t.Fatalf("password leaked: %s", err)
	}
	if !errors.Is(err, ErrCannotConnect) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatal("must wrap ErrCannotConnect and the context error")
	}
	if errors.Unwrap(err) != nil {
		// Unwrap() []error only; the raw error stays unreachable.
		t.Fatal("single Unwrap must not expose the raw error")
	}
	var pce *pgconn.ParseConfigError
	bad := "postgres://admin:topsecret@[::1/app"
	_, perr := pgxpool.ParseConfig(bad)
	if perr == nil {
		t.Fatal("expected a parse error")
	}
	err = cannotConnect("legacy", bad, perr)
	if strings.Contains(err.Error(), "topsecret") || errors.As(err, &pce) {
		t.Fatalf("parse error leaks the URL: %s", err)
	}
}

func TestBadURLDoesNotLeak(t *testing.T) {
	d := New(target.ResolverFunc(func(string) (string, error) {
		return "postgres://admin:topsecret@[::1/app", nil
	}))
	defer d.Close()
	err := d.Check(context.Background(), grant.Target{PostgreSQL: &grant.PostgreSQLTarget{Connection: "legacy", Role: "r", Member: "m"}})
	if err == nil || strings.Contains(err.Error(), "topsecret") || !errors.Is(err, ErrCannotConnect) {
		t.Fatalf("got %v", err)
	}
}
