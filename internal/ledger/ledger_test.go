package ledger

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventaccess/terraform-provider-eventaccess/internal/grant"
)

func TestGrantRoundTrip(t *testing.T) {
	s, _ := openTemp(t)
	ctx := context.Background()
	g := &grant.Grant{
		ID:            grant.NewID(t0),
		Owner:         "team-payments",
		Justification: "cutover weekend; \"quoted\" and ünïcode",
		Event:         grant.Event{ID: "CHG-2291", Kind: grant.KindMigration, URL: "https://tickets.example.com/CHG-2291"},
		Target: grant.Target{PostgreSQL: &grant.PostgreSQLTarget{
			Connection: "legacy", Role: "app/rw", Member: "svc deploy", WithAdminOption: true, TerminateSessions: true,
		}},
		AdoptExisting:  true,
		Requested:      72*time.Hour + 90*time.Second + 7, // nanoseconds survive: it is a duration
		GrantedAt:      t0.Truncate(time.Microsecond),
		ExpiresAt:      t0.Add(72 * time.Hour).Truncate(time.Microsecond),
		Status:         grant.StatusIrrevocable,
		EndReason:      grant.ReasonEventClosed,
		EndedAt:        t0.Add(time.Hour).Truncate(time.Microsecond),
		RevokedBy:      grant.ActorSweeper,
		VerifiedAt:     t0.Add(time.Minute).Truncate(time.Microsecond),
		Drift:          grant.DriftWidened,
		RevokeAttempts: 5,
		LastError:      "permission denied to revoke role",
		NextAttemptAt:  t0.Add(2 * time.Hour).Truncate(time.Microsecond),
		KeptBy:         "01HZZZZZZZZZZZZZZZZZZZZZZZ",
	}
	if err := s.CreateGrant(ctx, g); err != nil {
		t.Fatal(err)
	}
	if g.Version != 1 {
		t.Fatalf("Version after create = %d, want 1", g.Version)
	}
	got, err := s.GetGrant(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, g) {
		t.Fatalf("round trip differs:\n got %+v\nwant %+v", got, g)
	}
	for _, tm := range []time.Time{got.GrantedAt, got.ExpiresAt, got.EndedAt, got.VerifiedAt, got.NextAttemptAt} {
		if tm.Location() != time.UTC {
			t.Errorf("time %v is not in UTC", tm)
		}
	}

	// Zero times and empty fields stay zero; non-UTC input comes back as UTC.
	paris := time.FixedZone("CET", 3600)
	z := newGrant("Z1", "main", "r", "m", "INC-1", time.Hour)
	z.GrantedAt = t0.In(paris).Truncate(time.Microsecond)
	z.ExpiresAt = z.GrantedAt.Add(time.Hour)
	if err := s.CreateGrant(ctx, z); err != nil {
		t.Fatal(err)
	}
	gz, err := s.GetGrant(ctx, "Z1")
	if err != nil {
		t.Fatal(err)
	}
	if !gz.EndedAt.IsZero() || !gz.VerifiedAt.IsZero() || !gz.NextAttemptAt.IsZero() {
		t.Errorf("zero times not kept zero: %+v", gz)
	}
	if !gz.GrantedAt.Equal(z.GrantedAt) || gz.GrantedAt.Location() != time.UTC {
		t.Errorf("GrantedAt = %v, want %v in UTC", gz.GrantedAt, z.GrantedAt)
	}

	// The stored target is JSON with connection names only, and the derived columns are filled.
	var tj, key, conn, kind string
	if err := s.db.QueryRow(`SELECT target_json, target_key, connection, target_kind FROM grants WHERE id = ?`, g.ID).Scan(&tj, &key, &conn, &kind); err != nil {
		t.Fatal(err)
	}
	if want := `{"postgresql":{"connection":"legacy","role":"app/rw","member":"svc deploy","with_admin_option":true,"terminate_sessions":true}}`; tj != want {
		t.Errorf("target_json = %s, want %s", tj, want)
	}
	if key != g.TargetKey() || conn != "legacy" || kind != "postgresql" {
		t.Errorf("target_key/connection/kind = %q %q %q", key, conn, kind)
	}

	// The event was recorded, open, with its kind and url.
	ev, err := s.GetEvent(ctx, "CHG-2291")
	if err != nil {
		t.Fatal(err)
	}
	if !ev.Open || ev.Kind != grant.KindMigration || ev.URL != g.Event.URL {
		t.Errorf("event = %+v", ev)
	}

	if _, err := s.GetGrant(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetGrant(unknown) = %v, want ErrNotFound", err)
	}
	if err := s.CreateGrant(ctx, g); !errors.Is(err, ErrConflict) {
		t.Errorf("CreateGrant(duplicate id) = %v, want ErrConflict", err)
	}
}

func TestUpdateGrantCAS(t *testing.T) {
	s, _ := openTemp(t)
	ctx := context.Background()
	g := newGrant("G1", "main", "r", "m", "INC-1", time.Hour)
	mustCreate(t, s, g)

	stale := *g
	g.LastError = "first"
	if err := s.UpdateGrant(ctx, g, Entry{Type: EntryRevokeFailed, At: t0, Actor: grant.ActorSweeper, Detail: "first"}); err != nil {
		t.Fatal(err)
	}
	if g.Version != 2 {
		t.Fatalf("Version = %d, want 2", g.Version)
	}
	stale.LastError = "stale"
	err := s.UpdateGrant(ctx, &stale, Entry{Type: EntryRevokeFailed, At: t0, Actor: grant.ActorSweeper})
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("stale update = %v, want ErrConflict", err)
	}
	if stale.Version != 1 {
		t.Errorf("failed update changed Version to %d", stale.Version)
	}
	got, _ := s.GetGrant(ctx, "G1")
	if got.LastError != "first" || got.Version != 2 {
		t.Errorf("after conflict: %q v%d", got.LastError, got.Version)
	}
	h, _ := s.History(ctx, "G1")
	if len(h) != 2 {
		t.Errorf("history has %d entries, want 2 (the failed update must add none)", len(h))
	}
	missing := newGrant("nope", "main", "r", "m", "INC-1", time.Hour)
	missing.Version = 1
	if err := s.UpdateGrant(ctx, missing); !errors.Is(err, ErrNotFound) {
		t.Errorf("update of unknown grant = %v, want ErrNotFound", err)
	}
	if err := s.UpdateGrant(ctx, g, Entry{Type: EntryVerified}); err == nil || !strings.Contains(err.Error(), "no time") {
		t.Errorf("entry without time: %v", err)
	}
}

func TestHistoryAppendOnly(t *testing.T) {
	s, _ := openTemp(t)
	ctx := context.Background()
	g := newGrant("G1", "main", "r", "m", "INC-1", time.Hour)
	mustCreate(t, s, g)
	entries := []Entry{
		{GrantID: "G1", Type: EntryVerified, At: t0.Add(time.Second), Actor: grant.ActorTerraform, Detail: `{"present":true}`},
		{GrantID: "G1", Type: EntryDriftDetected, At: t0.Add(2 * time.Second), Actor: grant.ActorSweeper},
	}
	if err := s.Append(ctx, entries...); err != nil {
		t.Fatal(err)
	}
	if entries[0].Seq == 0 || entries[1].Seq <= entries[0].Seq {
		t.Errorf("Seq not assigned in order: %d, %d", entries[0].Seq, entries[1].Seq)
	}
	h, err := s.History(ctx, "G1")
	if err != nil {
		t.Fatal(err)
	}
	want := []EntryType{EntryGranted, EntryVerified, EntryDriftDetected}
	var types []EntryType
	for _, e := range h {
		types = append(types, e.Type)
	}
	if !slices.Equal(types, want) {
		t.Fatalf("history types = %v, want %v", types, want)
	}
	if h[1].Detail != `{"present":true}` || h[1].Actor != grant.ActorTerraform || !h[1].At.Equal(t0.Add(time.Second).Truncate(time.Microsecond)) || h[1].GrantID != "G1" {
		t.Errorf("entry = %+v", h[1])
	}

	if _, err := s.db.Exec(`UPDATE grant_events SET detail = 'forged' WHERE grant_id = 'G1'`); err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Errorf("UPDATE grant_events: %v, want an append-only error", err)
	}
	if _, err := s.db.Exec(`DELETE FROM grant_events`); err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Errorf("DELETE FROM grant_events: %v, want an append-only error", err)
	}
	if _, err := s.db.Exec(`DELETE FROM grants WHERE id = 'G1'`); err == nil {
		t.Errorf("deleting a grant with history succeeded")
	}
	if h2, _ := s.History(ctx, "G1"); len(h2) != 3 {
		t.Errorf("history changed: %d entries", len(h2))
	}

	if err := s.Append(ctx, Entry{GrantID: "unknown", Type: EntryVerified, At: t0}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Append for unknown grant = %v, want ErrNotFound", err)
	}
	if _, err := s.History(ctx, "unknown"); !errors.Is(err, ErrNotFound) {
		t.Errorf("History(unknown) = %v, want ErrNotFound", err)
	}
}

func TestDue(t *testing.T) {
	s, _ := openTemp(t)
	ctx := context.Background()
	now := t0.Add(2 * time.Hour)

	expired := newGrant("A-expired", "b", "r1", "m", "INC-1", time.Hour)
	future := newGrant("B-future", "a", "r2", "m", "INC-1", 4*time.Hour)
	closedEv := newGrant("C-closed-event", "a", "r3", "m", "INC-2", 4*time.Hour)
	dueNow := newGrant("D-due-retry-now", "a", "r4", "m", "INC-1", time.Hour)
	dueLater := newGrant("E-due-retry-later", "a", "r5", "m", "INC-1", time.Hour)
	drifted := newGrant("F-due-drift", "a", "r6", "m", "INC-1", 4*time.Hour) // not expired, event open
	irrevocable := newGrant("G-irrevocable", "a", "r7", "m", "INC-2", time.Hour)
	revoked := newGrant("H-revoked", "a", "r8", "m", "INC-2", time.Hour)
	exactly := newGrant("I-expires-now", "c", "r9", "m", "INC-1", 2*time.Hour)
	for _, g := range []*grant.Grant{expired, future, closedEv, dueNow, dueLater, drifted, irrevocable, revoked, exactly} {
		mustCreate(t, s, g)
	}
	update := func(g *grant.Grant, f func(g *grant.Grant)) {
		t.Helper()
		f(g)
		if err := s.UpdateGrant(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	update(dueNow, func(g *grant.Grant) { g.Status = grant.StatusDue; g.NextAttemptAt = now })
	update(dueLater, func(g *grant.Grant) { g.Status = grant.StatusDue; g.NextAttemptAt = now.Add(time.Second) })
	update(drifted, func(g *grant.Grant) { g.Status = grant.StatusDue; g.EndReason = grant.ReasonDrift })
	update(irrevocable, func(g *grant.Grant) { g.Status = grant.StatusIrrevocable })
	update(revoked, func(g *grant.Grant) {
		if err := g.MarkRevoked(grant.ReasonDestroyed, grant.ActorTerraform, t0); err != nil {
			t.Fatal(err)
		}
	})

	due, err := s.Due(ctx, now, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Open event INC-2 for now: only expiry and due status count.
	want := []string{"D-due-retry-now", "F-due-drift", "A-expired", "I-expires-now"} // by connection (a, a, b, c), then id
	if got := ids(due); !slices.Equal(got, want) {
		t.Fatalf("Due = %v, want %v", got, want)
	}

	// Closing the event makes its active grants due at once (not the irrevocable or revoked ones).
	if err := s.CloseEvent(ctx, "INC-2", "resolved", grant.ActorCLI, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	due, _ = s.Due(ctx, now, 0)
	want = []string{"C-closed-event", "D-due-retry-now", "F-due-drift", "A-expired", "I-expires-now"}
	if got := ids(due); !slices.Equal(got, want) {
		t.Fatalf("Due after closing INC-2 = %v, want %v", got, want)
	}
	// A grant created for an already closed event is due at once.
	late := newGrant("J-late", "z", "r10", "m", "INC-2", 4*time.Hour)
	mustCreate(t, s, late)
	due, _ = s.Due(ctx, now, 0)
	if got := ids(due); !slices.Contains(got, "J-late") {
		t.Errorf("grant of a closed event not due: %v", got)
	}

	// Limit.
	due, _ = s.Due(ctx, now, 2)
	if got := ids(due); !slices.Equal(got, []string{"C-closed-event", "D-due-retry-now"}) {
		t.Errorf("Due limit 2 = %v", got)
	}

	// A claim in force hides the grant; an expired claim shows it again.
	g, _ := s.GetGrant(ctx, "A-expired")
	if err := s.Claim(ctx, g, "tok-1", now, time.Minute); err != nil {
		t.Fatal(err)
	}
	due, _ = s.Due(ctx, now.Add(30*time.Second), 0)
	if slices.Contains(ids(due), "A-expired") {
		t.Errorf("claimed grant returned by Due while the claim is in force")
	}
	due, _ = s.Due(ctx, now.Add(time.Minute), 0)
	if !slices.Contains(ids(due), "A-expired") {
		t.Errorf("grant whose claim expired not returned by Due")
	}
	// The retry-later grant comes once its next attempt time has come.
	due, _ = s.Due(ctx, now.Add(time.Second), 0)
	if !slices.Contains(ids(due), "E-due-retry-later") {
		t.Errorf("due grant not returned at its next_attempt_at")
	}
	// Before expiry nothing of INC-1 is due.
	due, _ = s.Due(ctx, t0, 0)
	for _, g := range due {
		if g.Event.ID == "INC-1" && g.Status == grant.StatusActive {
			t.Errorf("active grant %s of open event due before its expiry", g.ID)
		}
	}
}

func TestClaim(t *testing.T) {
	s, _ := openTemp(t)
	ctx := context.Background()
	g := newGrant("G1", "main", "r", "m", "INC-1", time.Hour)
	mustCreate(t, s, g)
	now := t0.Add(2 * time.Hour)

	other := *g
	if err := s.Claim(ctx, g, "tok-a", now, time.Minute); err != nil {
		t.Fatal(err)
	}
	if g.Version != 2 {
		t.Fatalf("Version after claim = %d, want 2", g.Version)
	}
	// A second claimer with the old version fails; so does one with the new version while the claim is in force.
	if err := s.Claim(ctx, &other, "tok-b", now, time.Minute); !errors.Is(err, ErrConflict) {
		t.Errorf("claim with stale version = %v, want ErrConflict", err)
	}
	fresh, _ := s.GetGrant(ctx, "G1")
	if err := s.Claim(ctx, fresh, "tok-b", now.Add(59*time.Second), time.Minute); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "claimed") {
		t.Errorf("claim while another is in force = %v, want ErrConflict (claimed)", err)
	}
	// The holder writes with the version Claim returned; others are fenced out.
	g.Status = grant.StatusDue
	if err := s.UpdateGrant(ctx, g, Entry{Type: EntryRevokeAttempted, At: now, Actor: grant.ActorSweeper}); err != nil {
		t.Fatalf("claim holder's update: %v", err)
	}
	if err := s.UpdateGrant(ctx, fresh); !errors.Is(err, ErrConflict) {
		t.Errorf("update by non-holder = %v, want ErrConflict", err)
	}
	// The holder's update released the claim: the grant is claimable at once.
	var token sql.NullString
	var until sql.NullInt64
	if err := s.db.QueryRow(`SELECT claim_token, claim_until FROM grants WHERE id = 'G1'`).Scan(&token, &until); err != nil {
		t.Fatal(err)
	}
	if token.Valid || until.Valid {
		t.Errorf("claim not released by the holder's update: %v %v", token, until)
	}
	cur, _ := s.GetGrant(ctx, "G1")
	if err := s.Claim(ctx, cur, "tok-c", now.Add(time.Second), time.Minute); err != nil {
		t.Errorf("claim after release: %v", err)
	}
	// A claim that is never released ends with its lease.
	if err := s.Claim(ctx, cur, "tok-d", now.Add(time.Second+time.Minute), time.Minute); err != nil {
		t.Errorf("claim after lease expiry: %v", err)
	}
	if err := s.Claim(ctx, newGrant("nope", "", "", "", "", 0), "t", now, time.Minute); !errors.Is(err, ErrNotFound) {
		t.Errorf("claim of unknown grant = %v, want ErrNotFound", err)
	}
}

func TestHolders(t *testing.T) {
	s, _ := openTemp(t)
	ctx := context.Background()
	a := newGrant("A", "main", "r", "m", "INC-1", time.Hour)
	b := newGrant("B", "main", "r", "m", "INC-2", time.Hour)
	c := newGrant("C", "main", "r", "m", "INC-3", time.Hour)
	d := newGrant("D", "main", "r", "m", "INC-4", time.Hour)
	other := newGrant("E", "main", "r", "someone-else", "INC-1", time.Hour)
	for _, g := range []*grant.Grant{a, b, c, d, other} {
		mustCreate(t, s, g)
	}
	c.Status = grant.StatusIrrevocable
	if err := s.UpdateGrant(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := d.MarkRevoked(grant.ReasonExpired, grant.ActorSweeper, t0); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateGrant(ctx, d); err != nil {
		t.Fatal(err)
	}
	got, err := s.Holders(ctx, a.TargetKey(), "A")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"B", "C"}) {
		t.Errorf("Holders = %v, want [B C]", got)
	}
	got, _ = s.Holders(ctx, a.TargetKey(), "")
	if !slices.Equal(got, []string{"A", "B", "C"}) {
		t.Errorf("Holders without exclusion = %v", got)
	}
	if got, _ := s.Holders(ctx, "postgresql/none/x/y", ""); len(got) != 0 {
		t.Errorf("Holders of unknown key = %v", got)
	}
}

func TestTombstones(t *testing.T) {
	s, _ := openTemp(t)
	ctx := context.Background()
	end := func(g *grant.Grant, at time.Time) {
		t.Helper()
		if err := g.MarkRevoked(grant.ReasonExpired, grant.ActorSweeper, at); err != nil {
			t.Fatal(err)
		}
		if err := s.UpdateGrant(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	// Key 1: two tombstones; the later one is returned.
	k1old := newGrant("K1-old", "b", "r1", "m", "INC-1", time.Hour)
	k1new := newGrant("K1-new", "b", "r1", "m", "INC-2", time.Hour)
	// Key 2: tombstone, but another grant still holds the key.
	k2dead := newGrant("K2-dead", "a", "r2", "m", "INC-1", time.Hour)
	k2live := newGrant("K2-live", "a", "r2", "m", "INC-3", time.Hour)
	// Key 3: tombstone ended before since.
	k3 := newGrant("K3-old", "a", "r3", "m", "INC-1", time.Hour)
	// Key 4: tombstone in range.
	k4 := newGrant("K4", "a", "r4", "m", "INC-1", time.Hour)
	for _, g := range []*grant.Grant{k1old, k1new, k2dead, k2live, k3, k4} {
		mustCreate(t, s, g)
	}
	end(k1old, t0.Add(1*time.Hour))
	end(k1new, t0.Add(2*time.Hour))
	end(k2dead, t0.Add(2*time.Hour))
	end(k3, t0.Add(-time.Hour))
	end(k4, t0)

	got, err := s.Tombstones(ctx, t0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"K4", "K1-new"}; !slices.Equal(ids(got), want) { // connection a before b
		t.Errorf("Tombstones = %v, want %v", ids(got), want)
	}
	got, _ = s.Tombstones(ctx, time.Time{}, 0)
	if want := []string{"K3-old", "K4", "K1-new"}; !slices.Equal(ids(got), want) {
		t.Errorf("Tombstones since zero = %v, want %v", ids(got), want)
	}
	got, _ = s.Tombstones(ctx, t0, 1)
	if want := []string{"K4"}; !slices.Equal(ids(got), want) {
		t.Errorf("Tombstones limit 1 = %v, want %v", ids(got), want)
	}
	// When the last holder of key 2 ends too, key 2's latest tombstone appears.
	end(k2live, t0.Add(3*time.Hour))
	got, _ = s.Tombstones(ctx, t0, 0)
	if want := []string{"K2-live", "K4", "K1-new"}; !slices.Equal(ids(got), want) {
		t.Errorf("Tombstones = %v, want %v", ids(got), want)
	}
}

func TestListGrants(t *testing.T) {
	s, _ := openTemp(t)
	ctx := context.Background()
	a := newGrant("A", "main", "r1", "m", "INC-1", time.Hour)
	b := newGrant("B", "main", "r2", "m", "INC-2", time.Hour)
	c := newGrant("C", "main", "r3", "m", "INC-1", time.Hour)
	c.Owner = "bob"
	for _, g := range []*grant.Grant{c, b, a} {
		mustCreate(t, s, g)
	}
	b.Status = grant.StatusDue
	if err := s.UpdateGrant(ctx, b); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		f    Filter
		want []string
	}{
		{Filter{}, []string{"A", "B", "C"}},
		{Filter{Limit: 2}, []string{"A", "B"}},
		{Filter{EventID: "INC-1"}, []string{"A", "C"}},
		{Filter{Owner: "bob"}, []string{"C"}},
		{Filter{Statuses: []grant.Status{grant.StatusDue, grant.StatusRevoked}}, []string{"B"}},
		{Filter{Statuses: []grant.Status{grant.StatusActive}, EventID: "INC-1", Owner: "alice@example.com"}, []string{"A"}},
	} {
		got, err := s.ListGrants(ctx, tc.f)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ids(got), tc.want) {
			t.Errorf("ListGrants(%+v) = %v, want %v", tc.f, ids(got), tc.want)
		}
	}
}

func TestEvents(t *testing.T) {
	s, _ := openTemp(t)
	ctx := context.Background()
	if _, err := s.GetEvent(ctx, "INC-9"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetEvent(unknown) = %v, want ErrNotFound", err)
	}
	if err := s.UpsertEvent(ctx, Event{ID: "INC-9", Kind: grant.KindIncident}); err != nil {
		t.Fatal(err)
	}
	if err := s.UpsertEvent(ctx, Event{ID: "INC-9", URL: "https://x/INC-9"}); err != nil {
		t.Fatal(err)
	}
	e, err := s.GetEvent(ctx, "INC-9")
	if err != nil {
		t.Fatal(err)
	}
	if want := (Event{ID: "INC-9", Kind: grant.KindIncident, URL: "https://x/INC-9", Open: true}); *e != want {
		t.Errorf("event = %+v, want %+v", *e, want)
	}
	closedAt := t0.Add(time.Hour).Truncate(time.Microsecond)
	if err := s.CloseEvent(ctx, "INC-9", "resolved", grant.ActorCLI, closedAt); err != nil {
		t.Fatal(err)
	}
	// Idempotent: a second close changes nothing.
	if err := s.CloseEvent(ctx, "INC-9", "again", grant.ActorSweeper, closedAt.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	// Upsert does not reopen.
	if err := s.UpsertEvent(ctx, Event{ID: "INC-9", Open: true}); err != nil {
		t.Fatal(err)
	}
	e, _ = s.GetEvent(ctx, "INC-9")
	if want := (Event{ID: "INC-9", Kind: grant.KindIncident, URL: "https://x/INC-9", ClosedAt: closedAt, CloseReason: "resolved", ClosedBy: grant.ActorCLI}); *e != want {
		t.Errorf("closed event = %+v, want %+v", *e, want)
	}
	// Closing an unknown event records it closed.
	if err := s.CloseEvent(ctx, "CHG-1", "done", grant.ActorCLI, closedAt); err != nil {
		t.Fatal(err)
	}
	if e, _ := s.GetEvent(ctx, "CHG-1"); e == nil || e.Open {
		t.Errorf("unknown event closed: %+v", e)
	}
}

func TestMigrationsIdempotent(t *testing.T) {
	s, path := openTemp(t)
	s.Close()
	s2 := openPath(t, path)
	s3 := openPath(t, "sqlite:"+path)
	for _, st := range []*SQLiteStore{s2, s3} {
		var n, v int
		if err := st.db.QueryRow(`SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&n, &v); err != nil {
			t.Fatal(err)
		}
		if n != 1 || v != SchemaVersion() {
			t.Errorf("schema_migrations: %d rows, version %d; want 1 row, version %d", n, v, SchemaVersion())
		}
	}
	var mode string
	if err := s2.db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q (%v), want wal", mode, err)
	}
	var fk, timeout, sync int
	for _, p := range []struct {
		pragma string
		dst    *int
	}{{"foreign_keys", &fk}, {"busy_timeout", &timeout}, {"synchronous", &sync}} {
		if err := s2.db.QueryRow(`PRAGMA ` + p.pragma).Scan(p.dst); err != nil {
			t.Fatalf("PRAGMA %s: %v", p.pragma, err)
		}
	}
	if fk != 1 || timeout < 5000 || sync != 1 {
		t.Errorf("foreign_keys=%d busy_timeout=%d synchronous=%d; want 1, >=5000, 1 (NORMAL)", fk, timeout, sync)
	}

	// A ledger from a newer eventaccess is refused with an explanation.
	if _, err := s2.db.Exec(`INSERT INTO schema_migrations (version, name) VALUES (9999, '9999_future')`); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenSQLite(context.Background(), path); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("open of a newer ledger: %v, want an error saying it is newer", err)
	}
}

func TestConcurrentFreshOpens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fresh.db")
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := OpenSQLite(context.Background(), path)
			if err != nil {
				errs <- err
				return
			}
			errs <- s.Close()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent open: %v", err)
		}
	}
	s := openPath(t, path)
	var count int
	if err := s.db.QueryRow(`SELECT COUNT(*) FROM schema_migrations`).Scan(&count); err != nil {
		t.Fatal(err)
	}
	if count != 1 {
		t.Errorf("schema_migrations has %d rows, want 1", count)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()

	if _, err := Open(ctx, ""); err == nil || !strings.Contains(err.Error(), EnvLedger) {
		t.Errorf(`Open("") = %v, want an error naming %s`, err, EnvLedger)
	}
	for _, u := range []string{"postgres://eventaccess:s3cret@db.example.com/ledger", "postgresql://u:s3cret@h/db?sslmode=require"} {
		_, err := Open(ctx, u)
		if !errors.Is(err, ErrPostgresUnavailable) {
			t.Errorf("Open(%s) = %v, want ErrPostgresUnavailable", Describe(u), err)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("error leaks the password: %v", err)
		}
	}
	if _, err := Open(ctx, "mysql://h/db"); err == nil || !strings.Contains(err.Error(), "unsupported") {
		t.Errorf("Open(mysql://) = %v", err)
	}

	// What really fails, even as root: a directory that does not exist, a
	// directory instead of a file, and a file opened read-only (mode=ro).
	missing := filepath.Join(dir, "no-such-dir", "ledger.db")
	_, err := Open(ctx, missing)
	if err == nil || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), "not writable") || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("Open(in missing dir) = %v, want 'not writable' naming the path and the missing directory", err)
	}
	_, err = Open(ctx, dir)
	if err == nil || !strings.Contains(err.Error(), "not writable") || !strings.Contains(err.Error(), "directory") {
		t.Errorf("Open(directory) = %v, want 'not writable ... directory'", err)
	}
	_, path := openTemp(t)
	_, err = Open(ctx, "file:"+path+"?mode=ro")
	if err == nil || !strings.Contains(err.Error(), "not writable") || !strings.Contains(err.Error(), path) {
		t.Errorf("Open(mode=ro) = %v, want 'not writable' naming the path", err)
	}
	// Permission bits only stop non-root users.
	if os.Geteuid() != 0 {
		roDir := filepath.Join(dir, "ro")
		if err := os.Mkdir(roDir, 0o500); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := os.Chmod(roDir, 0o700); err != nil {
				t.Error(err)
			}
		})
		if _, err := Open(ctx, filepath.Join(roDir, "ledger.db")); err == nil || !strings.Contains(err.Error(), "not writable") {
			t.Errorf("Open(in read-only dir) = %v, want 'not writable'", err)
		}
	}
	// Not a database.
	junk := filepath.Join(dir, "junk.db")
	if err := os.WriteFile(junk, []byte(strings.Repeat("this is not sqlite ", 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, junk); err == nil || !strings.Contains(err.Error(), "not a SQLite database") {
		t.Errorf("Open(junk) = %v, want 'not a SQLite database'", err)
	}
	if _, err := Open(ctx, "sqlite:"+path+"?_pragma=journal_mode(DELETE)"); err == nil || !strings.Contains(err.Error(), "cannot be overridden") {
		t.Errorf("Open with _pragma override = %v", err)
	}
}

func TestOpenForms(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, dsn := range []string{
		filepath.Join(dir, "plain.db"),
		"sqlite:" + filepath.Join(dir, "sqlite.db"),
		"sqlite://" + filepath.Join(dir, "sqlite-url.db"),
		"file:" + filepath.Join(dir, "file.db"),
		filepath.Join(dir, "odd #name% 1.db"),
		":memory:",
	} {
		s, err := Open(ctx, dsn)
		if err != nil {
			t.Errorf("Open(%s): %v", dsn, err)
			continue
		}
		g := newGrant("G1", "main", "r", "m", "INC-1", time.Hour)
		if err := s.CreateGrant(ctx, g); err != nil {
			t.Errorf("%s: CreateGrant: %v", dsn, err)
		}
		if _, err := s.GetGrant(ctx, "G1"); err != nil {
			t.Errorf("%s: GetGrant: %v", dsn, err)
		}
		s.Close()
	}
	for _, name := range []string{"plain.db", "sqlite.db", "sqlite-url.db", "file.db", "odd #name% 1.db"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("ledger file %s not created where expected: %v", name, err)
		}
	}
}

func TestDefaultDSNAndDescribe(t *testing.T) {
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	if got := DefaultDSN(getenv); got != "eventaccess.db" {
		t.Errorf("DefaultDSN = %q", got)
	}
	env[EnvLedger] = "/var/lib/eventaccess/ledger.db"
	if got := DefaultDSN(getenv); got != "/var/lib/eventaccess/ledger.db" {
		t.Errorf("DefaultDSN = %q", got)
	}
	for in, want := range map[string]string{
		"/tmp/ledger.db":                         "/tmp/ledger.db",
		"sqlite:/tmp/ledger.db":                  "sqlite:/tmp/ledger.db",
		"postgres://ea:s3cret@db:5432/ledger":    "postgres://ea:xxxxx@db:5432/ledger",
		"postgres://ea@db/ledger":                "postgres://ea@db/ledger",
		"postgres://db/ledger?password=s3cret":   "postgres://db/ledger?password=xxxxx",
		"host=db user=ea password=s3cret dbname": "host=db user=ea password=xxxxx dbname",
		"postgres://ea:p%zz@db/ledger":           "postgres://ea:xxxxx@db/ledger", // unparsable escape
	} {
		if got := Describe(in); got != want {
			t.Errorf("Describe(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestQueryPlansUseIndexes(t *testing.T) {
	s, _ := openTemp(t)
	ctx := context.Background()
	// Some data, and statistics, so the planner has something to reason about.
	for i := 0; i < 200; i++ {
		g := newGrant(gid(i), "main", "r", "m"+gid(i), "INC-1", time.Hour)
		mustCreate(t, s, g)
	}
	now := t0.UnixMicro()
	wantIndexes := map[string][]string{
		"Due":        {"grants_active_expiry", "grants_active_event_closed", "grants_due"},
		"Holders":    {"grants_target_key"},
		"Tombstones": {"grants_revoked_ended", "grants_target_key"},
	}
	for name, q := range map[string]struct {
		sql  string
		args []any
	}{
		"Due":        {dueQuery + " LIMIT 10", []any{now}},
		"Holders":    {`SELECT id FROM grants WHERE target_key = ? AND status IN ` + holdingStatuses + ` AND id <> ? ORDER BY id`, []any{"k", ""}},
		"Tombstones": {tombstonesQuery, []any{now}},
	} {
		plan := explain(t, s, q.sql, q.args...)
		joined := strings.Join(plan, "\n")
		for _, line := range plan {
			// A SCAN is only acceptable over a partial index that holds exactly
			// the rows in question (due grants; active grants of closed events).
			if strings.HasPrefix(line, "SCAN") && !strings.Contains(line, "INDEX grants_due") && !strings.Contains(line, "INDEX grants_active_event_closed") {
				t.Errorf("%s does a full scan (%q); plan:\n%s", name, line, joined)
			}
		}
		for _, idx := range wantIndexes[name] {
			if !strings.Contains(joined+"\n", "INDEX "+idx+" ") && !strings.Contains(joined+"\n", "INDEX "+idx+"\n") {
				t.Errorf("%s does not use index %s; plan:\n%s", name, idx, joined)
			}
		}
		t.Logf("%s plan:\n%s", name, strings.Join(plan, "\n"))
	}
	_ = ctx
}

func explain(t *testing.T, s *SQLiteStore, q string, args ...any) []string {
	t.Helper()
	rows, err := s.db.Query("EXPLAIN QUERY PLAN "+q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		out = append(out, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
