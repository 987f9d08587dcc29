package ledger

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/eventaccess/terraform-provider-eventaccess/internal/grant"
)

// t0 is the tests' "now": times come from callers, never from the store.
var t0 = time.Date(2026, 3, 14, 9, 26, 53, 589793000, time.UTC)

func openTemp(t testing.TB) (*SQLiteStore, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ledger.db")
	s, err := OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatalf("OpenSQLite(%s): %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func openPath(t testing.TB, path string) *SQLiteStore {
	t.Helper()
	s, err := OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatalf("OpenSQLite(%s): %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// newGrant returns an active grant of role to member on connection conn, for
// event ev, granted at t0 and expiring after d.
func newGrant(id, conn, role, member, ev string, d time.Duration) *grant.Grant {
	return &grant.Grant{
		ID:            id,
		Owner:         "alice@example.com",
		Justification: "fix " + ev,
		Event:         grant.Event{ID: ev, Kind: grant.KindIncident},
		Target: grant.Target{PostgreSQL: &grant.PostgreSQLTarget{
			Connection: conn, Role: role, Member: member,
		}},
		Requested: d,
		GrantedAt: t0,
		ExpiresAt: t0.Add(d),
		Status:    grant.StatusActive,
	}
}

func mustCreate(t testing.TB, s Store, g *grant.Grant) {
	t.Helper()
	if err := s.CreateGrant(context.Background(), g, Entry{Type: EntryGranted, At: g.GrantedAt, Actor: grant.ActorTerraform}); err != nil {
		t.Fatalf("CreateGrant(%s): %v", g.ID, err)
	}
}

func ids(gs []*grant.Grant) []string {
	out := make([]string, len(gs))
	for i, g := range gs {
		out[i] = g.ID
	}
	return out
}

func gid(i int) string { return fmt.Sprintf("G%05d", i) }
