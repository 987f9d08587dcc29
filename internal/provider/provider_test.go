package provider

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/jackc/pgx/v5"

	"github.com/eventaccess/terraform-provider-eventaccess/internal/clock"
	"github.com/eventaccess/terraform-provider-eventaccess/internal/grant"
	"github.com/eventaccess/terraform-provider-eventaccess/internal/ledger"
	"github.com/eventaccess/terraform-provider-eventaccess/internal/pgtest"
)

// pg is the PostgreSQL server the acceptance tests grant roles on. TestMain
// starts a throwaway one (or uses EVENTACCESS_TEST_POSTGRES_URL) and fails the
// whole run loudly if it cannot: these tests never skip for want of a server.
var pg *pgtest.Server

func TestMain(m *testing.M) {
	if os.Getenv("TF_ACC") == "" {
		// Unit tests only: the acceptance tests skip themselves (terraform-plugin-testing's rule).
		os.Exit(m.Run())
	}
	code := pgtest.RunMain(m, func(s *pgtest.Server) { pg = s })
	if sweeperBin != "" {
		_ = os.RemoveAll(filepath.Dir(sweeperBin))
	}
	os.Exit(code)
}

// accEnv is one acceptance test's world: a fake clock, its own ledger file,
// its own roles on the shared server, and a provider wired to them.
type accEnv struct {
	t          *testing.T
	clock      *clock.Fake
	ledgerPath string
	connURL    string // superuser URL: a secret that must never reach state or ledger
	suffix     string
}

func newAccEnv(t *testing.T) *accEnv {
	t.Helper()
	if os.Getenv("TF_ACC") == "" {
		// terraform-plugin-testing's own rule for acceptance tests; make test sets TF_ACC=1,
		// and then a missing server is a failure, never a skip.
		t.Skip("acceptance test: set TF_ACC=1 (make test does)")
	}
	if pg == nil {
		t.Fatal("no PostgreSQL server: run with TF_ACC=1 (make test), which starts one")
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return &accEnv{
		t:          t,
		clock:      clock.NewFake(time.Now().UTC().Truncate(time.Second)),
		ledgerPath: filepath.Join(t.TempDir(), "ledger.db"),
		connURL:    pg.URL(),
		suffix:     hex.EncodeToString(b),
	}
}

func (e *accEnv) factories() map[string]func() (tfprotov6.ProviderServer, error) {
	return map[string]func() (tfprotov6.ProviderServer, error){
		"eventaccess": providerserver.NewProtocol6WithError(newWithClock("test", e.clock, func(string) string { return "" })()),
	}
}

// providerHCL configures the provider with this test's ledger and one connection "main".
func (e *accEnv) providerHCL() string {
	return fmt.Sprintf(`
provider "eventaccess" {
  ledger = %q
  connections = {
    main = { url = %q }
  }
}
`, e.ledgerPath, e.connURL)
}

// name returns a role name unique to this test.
func (e *accEnv) name(base string) string { return base + "_" + e.suffix }

// createRole creates a role (a login with a password when login is true) and
// drops it when the test ends.
func (e *accEnv) createRole(name string, login bool) {
	e.t.Helper()
	ctx := context.Background()
	pw := ""
	if login {
		pw = "pw-" + e.suffix
	}
	if err := pg.CreateRole(ctx, name, login, pw); err != nil {
		e.t.Fatalf("create role %q: %v", name, err)
	}
	e.t.Cleanup(func() { _ = pg.DropRole(context.Background(), name) })
}

// exec runs SQL as the superuser.
func (e *accEnv) exec(sql string) {
	e.t.Helper()
	if err := pg.Exec(context.Background(), sql); err != nil {
		e.t.Fatalf("exec %q: %v", sql, err)
	}
}

// membership returns whether member is a member of role, and with admin option, from the catalog.
func membership(role, member string) (found, admin bool, err error) {
	ctx := context.Background()
	conn, err := pgtest.Conn(ctx, pg.URL())
	if err != nil {
		return false, false, err
	}
	defer func() { _ = conn.Close(ctx) }()
	err = conn.QueryRow(ctx, `SELECT m.admin_option FROM pg_auth_members m
		JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles u ON u.oid = m.member
		WHERE r.rolname = $1 AND u.rolname = $2`, role, member).Scan(&admin)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, false, nil
	}
	return err == nil, admin, err
}

// canSetRole connects AS the member (with its password) and tries SET ROLE.
func (e *accEnv) canSetRole(member, role string) (bool, error) {
	ctx := context.Background()
	conn, err := pgtest.Conn(ctx, pg.URLFor(member, "pw-"+e.suffix, "postgres"))
	if err != nil {
		return false, fmt.Errorf("connect as %q: %w", member, err)
	}
	defer func() { _ = conn.Close(ctx) }()
	_, err = conn.Exec(ctx, "SET ROLE "+pgx.Identifier{role}.Sanitize())
	if err != nil {
		if strings.Contains(err.Error(), "permission denied") {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

func (e *accEnv) expectSetRole(member, role string, want bool) func() error {
	return func() error {
		got, err := e.canSetRole(member, role)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("SET ROLE %q as %q: allowed=%t, want %t", role, member, got, want)
		}
		return nil
	}
}

func expectMembership(role, member string, want bool) error {
	found, _, err := membership(role, member)
	if err != nil {
		return err
	}
	if found != want {
		return fmt.Errorf("pg_auth_members: %q in %q = %t, want %t", member, role, found, want)
	}
	return nil
}

// openLedger opens the test's ledger (a second handle, as the sweeper would).
func (e *accEnv) openLedger() ledger.Store {
	e.t.Helper()
	s, err := ledger.Open(context.Background(), e.ledgerPath)
	if err != nil {
		e.t.Fatalf("open ledger: %v", err)
	}
	e.t.Cleanup(func() { _ = s.Close() })
	return s
}

// grants lists every grant in the test's ledger.
func (e *accEnv) grants() ([]*grant.Grant, error) {
	s, err := ledger.Open(context.Background(), e.ledgerPath)
	if err != nil {
		return nil, err
	}
	defer func() { _ = s.Close() }()
	return s.ListGrants(context.Background(), ledger.Filter{})
}

// history returns the entry types of a grant, in order.
func (e *accEnv) history(id string) ([]string, error) {
	s, err := ledger.Open(context.Background(), e.ledgerPath)
	if err != nil {
		return nil, err
	}
	defer func() { _ = s.Close() }()
	entries, err := s.History(context.Background(), id)
	if err != nil {
		return nil, err
	}
	types := make([]string, len(entries))
	for i, en := range entries {
		types[i] = string(en.Type)
	}
	return types, nil
}

func countOf(list []string, s string) int {
	n := 0
	for _, v := range list {
		if v == s {
			n++
		}
	}
	return n
}
