package grant

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

func TestPolicyResolve(t *testing.T) {
	p := DefaultPolicy()
	tests := []struct {
		name    string
		e       Expiry
		want    time.Time
		wantErr string
	}{
		{"duration", Expiry{Duration: 72 * time.Hour}, t0.Add(72 * time.Hour), ""},
		{"absolute", Expiry{At: t0.Add(time.Hour)}, t0.Add(time.Hour), ""},
		{"absolute in another zone is normalised", Expiry{At: t0.Add(time.Hour).In(time.FixedZone("CET", 3600))}, t0.Add(time.Hour), ""},
		{"exactly max", Expiry{Duration: DefaultMaxDuration}, t0.Add(DefaultMaxDuration), ""},
		{"both", Expiry{Duration: time.Hour, At: t0.Add(time.Hour)}, time.Time{}, "not both"},
		{"neither", Expiry{}, time.Time{}, "no grant is open-ended"},
		{"past", Expiry{At: t0.Add(-time.Second)}, time.Time{}, "not in the future"},
		{"now is not future", Expiry{At: t0}, time.Time{}, "not in the future"},
		{"negative duration", Expiry{Duration: -time.Hour}, time.Time{}, "negative"},
		{"over max", Expiry{Duration: DefaultMaxDuration + time.Second}, time.Time{}, "longer than max_duration 168h"},
		{"absolute over max", Expiry{At: t0.Add(8 * 24 * time.Hour)}, time.Time{}, "max_duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := p.Resolve(tt.e, t0)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(tt.want) || got.Location() != time.UTC {
				t.Fatalf("got %s, want %s (UTC)", got, tt.want)
			}
		})
	}
	if _, err := (Policy{MaxDuration: time.Hour}).Resolve(Expiry{Duration: 2 * time.Hour}, t0); err == nil ||
		!strings.Contains(err.Error(), "longer than max_duration 1h") {
		t.Fatalf("custom max: %v", err)
	}
}

func validGrant() *Grant {
	return &Grant{
		Owner: "platform@example.com",
		Event: Event{ID: "CHG-2291", Kind: KindMigration},
		Target: Target{PostgreSQL: &PostgreSQLTarget{
			Connection: "legacy", Role: "legacy_rw", Member: "migration_robot",
		}},
	}
}

func TestValidateRequest(t *testing.T) {
	if err := ValidateRequest(validGrant()); err != nil {
		t.Fatalf("valid grant rejected: %v", err)
	}
	tests := []struct {
		name   string
		mutate func(*Grant)
		want   string
	}{
		{"owner", func(g *Grant) { g.Owner = " " }, "owner is required"},
		{"event id", func(g *Grant) { g.Event.ID = "" }, "event.id is required"},
		{"kind", func(g *Grant) { g.Event.Kind = "party" }, `event.kind "party" is not one of incident, migration`},
		{"no target", func(g *Grant) { g.Target = Target{} }, "exactly one target kind"},
		{"empty role", func(g *Grant) { g.Target.PostgreSQL.Role = "" }, "role must not be empty"},
		{"long role", func(g *Grant) { g.Target.PostgreSQL.Role = strings.Repeat("x", 64) }, "at most 63 bytes"},
		{"NUL member", func(g *Grant) { g.Target.PostgreSQL.Member = "a\x00b" }, "NUL"},
		{"self", func(g *Grant) { g.Target.PostgreSQL.Member = "legacy_rw" }, "cannot be granted to itself"},
		{"connection", func(g *Grant) { g.Target.PostgreSQL.Connection = "a b" }, "may contain only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := validGrant()
			tt.mutate(g)
			err := ValidateRequest(g)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
	// Several problems are all reported at once.
	g := validGrant()
	g.Owner, g.Event.ID = "", ""
	if err := ValidateRequest(g); err == nil || !strings.Contains(err.Error(), "owner") || !strings.Contains(err.Error(), "event.id") {
		t.Fatalf("want both errors, got %v", err)
	}
}

func TestTargetKeyCannotBeForged(t *testing.T) {
	a := PostgreSQLTarget{Connection: "c", Role: "a/b", Member: "m"}
	b := PostgreSQLTarget{Connection: "c", Role: "a", Member: "b/m"}
	if a.Key() == b.Key() {
		t.Fatalf("different permissions share a key: %s", a.Key())
	}
	if got := a.Key(); got != "postgresql/c/a%2Fb/m" {
		t.Fatalf("key = %s", got)
	}
	withAdmin := a
	withAdmin.WithAdminOption = true
	if withAdmin.Key() != a.Key() {
		t.Fatal("options must not change the identity of a membership")
	}
	if (Target{PostgreSQL: &a}).Key() != a.Key() || (Target{}).Key() != "" {
		t.Fatal("Target.Key must delegate")
	}
}

func TestConnectionEnvVar(t *testing.T) {
	for in, want := range map[string]string{
		"legacy":        "EVENTACCESS_CONNECTION_LEGACY",
		"legacy-db_2":   "EVENTACCESS_CONNECTION_LEGACY_DB_2",
		"Mixed-Case.db": "EVENTACCESS_CONNECTION_MIXED_CASE_DB",
	} {
		if got := ConnectionEnvVar(in); got != want {
			t.Errorf("ConnectionEnvVar(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestStatusMachine(t *testing.T) {
	g := validGrant()
	g.Status = StatusActive
	if err := g.MarkDue(ReasonExpired); err != nil || g.Status != StatusDue || g.EndReason != ReasonExpired {
		t.Fatalf("active -> due: %v %+v", err, g)
	}
	if err := g.MarkIrrevocable("boom"); err != nil || g.Status != StatusIrrevocable {
		t.Fatalf("due -> irrevocable: %v", err)
	}
	if err := g.MarkRevoked(ReasonExpired, ActorSweeper, t0); err != nil {
		t.Fatalf("irrevocable -> revoked: %v", err)
	}
	if g.EndedAt != t0 || g.RevokedBy != ActorSweeper || g.LastError != "" {
		t.Fatalf("tombstone fields: %+v", g)
	}
	// A tombstone never goes back to due or irrevocable, and is never revoked twice.
	for _, f := range []func() error{
		func() error { return g.MarkDue(ReasonExpired) },
		func() error { return g.MarkIrrevocable("x") },
		func() error { return g.MarkRevoked(ReasonDrift, ActorSweeper, t0) },
	} {
		var inv ErrInvalidTransition
		if err := f(); !errors.As(err, &inv) || !strings.Contains(err.Error(), "never comes back") {
			t.Fatalf("transition from revoked allowed or unclear: %v", err)
		}
	}
	// Only an explicit renewal brings it back, with a fresh period.
	if err := g.Renew(t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if g.Status != StatusActive || g.EndReason != ReasonNone || !g.EndedAt.IsZero() || g.RevokedBy != "" || g.RevokeAttempts != 0 {
		t.Fatalf("renewed grant keeps ended fields: %+v", g)
	}
	if !g.Expired(t0.Add(time.Hour)) || g.Expired(t0) {
		t.Fatal("Expired is wrong at the boundary")
	}
	for _, s := range []Status{StatusActive, StatusDue, StatusIrrevocable} {
		if !s.Holds() || s.Ended() {
			t.Fatalf("%s must hold", s)
		}
	}
	if StatusRevoked.Holds() || !StatusRevoked.Ended() {
		t.Fatal("revoked must not hold")
	}
}

func TestNewIDSortsByTime(t *testing.T) {
	a, b := NewID(t0), NewID(t0.Add(time.Millisecond))
	if !ValidID(a) || !ValidID(b) || a >= b {
		t.Fatalf("ids %s %s", a, b)
	}
	if ValidID("postgresql/main/a/b") || ValidID("") {
		t.Fatal("ValidID accepts junk")
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		72 * time.Hour: "72h", 90 * time.Minute: "1h30m", 45 * time.Second: "45s", 2*time.Hour + 5*time.Second: "2h0m5s",
	} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%s) = %q, want %q", d, got, want)
		}
	}
}
