package sweep

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventaccess/terraform-provider-eventaccess/internal/grant"
	"github.com/eventaccess/terraform-provider-eventaccess/internal/ledger"
	"github.com/eventaccess/terraform-provider-eventaccess/internal/target"
)

func TestRunRevokesExactlyTheExpiredGrant(t *testing.T) {
	f := newFixture(t)
	short := f.create(grantOpts{role: "reader", ttl: 30 * time.Minute})
	long := f.create(grantOpts{role: "writer", ttl: 3 * time.Hour})

	f.clk.Advance(time.Hour)
	rep := f.run()
	if got := ids(rep.Revoked); !reflect.DeepEqual(got, []string{short.ID}) {
		t.Fatalf("revoked = %v, want [%s]", got, short.ID)
	}
	if !rep.Clean() || len(rep.Kept)+len(rep.Failed)+len(rep.Drift) != 0 {
		t.Fatalf("report not clean: %+v", rep)
	}
	it := rep.Revoked[0]
	if it.EndReason != grant.ReasonExpired || it.Target != short.TargetKey() || it.EventID != "INC-1" || it.Owner != short.Owner {
		t.Errorf("report item = %+v", it)
	}
	if f.tgt.get(short.TargetKey()) != target.Absent || f.tgt.get(long.TargetKey()) != target.Present {
		t.Fatalf("target: short %s, long %s", f.tgt.get(short.TargetKey()), f.tgt.get(long.TargetKey()))
	}
	g := f.get(short.ID)
	if g.Status != grant.StatusRevoked || g.EndReason != grant.ReasonExpired || g.RevokedBy != grant.ActorSweeper ||
		!g.EndedAt.Equal(f.clk.Now()) || g.VerifiedAt.IsZero() || g.RevokeAttempts != 1 {
		t.Errorf("ledger after run: %+v", g)
	}
	if c := f.count(short.ID); c[ledger.EntryRevoked] != 1 || !strings.Contains(lastDetail(t, f, short.ID), `"state":"absent"`) {
		t.Errorf("history: %v, detail %q", c, lastDetail(t, f, short.ID))
	}
	if f.get(long.ID).Status != grant.StatusActive {
		t.Errorf("long grant touched")
	}

	// A second run has nothing to do.
	rep = f.run()
	if len(rep.Revoked)+len(rep.Failed)+len(rep.Kept)+len(rep.Drift) != 0 || rep.Counts.Due != 0 {
		t.Fatalf("second run did something: %+v", rep)
	}
	if c := f.count(short.ID); c[ledger.EntryRevoked] != 1 {
		t.Fatalf("revoked twice: %v", c)
	}
}

func lastDetail(t *testing.T, f *fixture, id string) string {
	t.Helper()
	h, err := f.led.History(f.ctx, id)
	if err != nil || len(h) == 0 {
		t.Fatalf("history: %v", err)
	}
	return h[len(h)-1].Detail
}

func TestEventClosedEndsItsGrants(t *testing.T) {
	f := newFixture(t)
	a := f.create(grantOpts{event: "CHG-1", role: "a"})
	b := f.create(grantOpts{event: "CHG-1", role: "b"})
	c := f.create(grantOpts{event: "CHG-2", role: "c"})
	if err := f.led.CloseEvent(f.ctx, "CHG-1", "done", grant.ActorCLI, f.clk.Now()); err != nil {
		t.Fatal(err)
	}
	f.clk.Advance(time.Minute)
	rep := f.run()
	if got := ids(rep.Revoked); len(got) != 2 || !contains(got, a.ID) || !contains(got, b.ID) {
		t.Fatalf("revoked %v", got)
	}
	for _, it := range rep.Revoked {
		if it.EndReason != grant.ReasonEventClosed {
			t.Errorf("%s: end_reason %s", it.ID, it.EndReason)
		}
	}
	if f.get(c.ID).Status != grant.StatusActive {
		t.Fatal("grant of another event ended")
	}
}

func TestEndReasonWhicheverCameFirst(t *testing.T) {
	f := newFixture(t)
	g := f.create(grantOpts{event: "CHG-9", role: "a", ttl: time.Hour})
	f.clk.Advance(2 * time.Hour) // expired at +1h ...
	if err := f.led.CloseEvent(f.ctx, "CHG-9", "late", grant.ActorCLI, f.clk.Now()); err != nil {
		t.Fatal(err)
	}
	rep := f.run() // ... closed at +2h: expired first
	if len(rep.Revoked) != 1 || rep.Revoked[0].EndReason != grant.ReasonExpired {
		t.Fatalf("report: %+v", rep.Revoked)
	}
	_ = g
}

func contains(l []string, s string) bool {
	for _, v := range l {
		if v == s {
			return true
		}
	}
	return false
}

func TestOverlapKeptByAnotherGrant(t *testing.T) {
	f := newFixture(t)
	short := f.create(grantOpts{event: "INC-1", role: "ops", ttl: time.Hour})
	other := f.create(grantOpts{event: "INC-2", role: "ops", ttl: 5 * time.Hour})

	f.clk.Advance(2 * time.Hour)
	rep := f.run()
	if len(rep.Revoked) != 0 || len(rep.Kept) != 1 || rep.Kept[0].ID != short.ID || rep.Kept[0].KeptBy != other.ID {
		t.Fatalf("report: revoked %v kept %+v", ids(rep.Revoked), rep.Kept)
	}
	if f.tgt.get(other.TargetKey()) != target.Present {
		t.Fatal("the permission another grant holds was revoked")
	}
	g := f.get(short.ID)
	if g.Status != grant.StatusRevoked || g.KeptBy != other.ID || f.count(short.ID)[ledger.EntryKept] != 1 {
		t.Fatalf("ledger: %+v %v", g, f.count(short.ID))
	}

	f.clk.Advance(4 * time.Hour)
	rep = f.run()
	if got := ids(rep.Revoked); !reflect.DeepEqual(got, []string{other.ID}) {
		t.Fatalf("revoked %v", got)
	}
	if f.tgt.get(other.TargetKey()) != target.Absent {
		t.Fatal("not revoked when the last holder ended")
	}
}

func TestOverlapSeveralDueInOneRun(t *testing.T) {
	f := newFixture(t)
	a := f.create(grantOpts{event: "INC-1", role: "ops"})
	b := f.create(grantOpts{event: "INC-2", role: "ops"})
	c := f.create(grantOpts{event: "INC-3", role: "ops"})
	f.clk.Advance(2 * time.Hour)
	rep := f.run()
	if got := ids(rep.Revoked); !reflect.DeepEqual(got, []string{c.ID}) {
		t.Fatalf("revoked %v, want only the last holder %s", got, c.ID)
	}
	if got := ids(rep.Kept); !reflect.DeepEqual(got, []string{a.ID, b.ID}) {
		t.Fatalf("kept %v", got)
	}
	for _, it := range rep.Kept {
		if it.KeptBy != c.ID {
			t.Errorf("%s kept by %q, want %s", it.ID, it.KeptBy, c.ID)
		}
	}
	if f.tgt.get(a.TargetKey()) != target.Absent || f.tgt.revokes[a.TargetKey()] != 1 {
		t.Fatalf("target state %s, revokes %d", f.tgt.get(a.TargetKey()), f.tgt.revokes[a.TargetKey()])
	}
}

func TestExpiredHolderDoesNotKeep(t *testing.T) {
	f := newFixture(t)
	a := f.create(grantOpts{event: "INC-1", role: "ops", ttl: time.Hour})
	b := f.create(grantOpts{event: "INC-2", role: "ops", ttl: 90 * time.Minute})
	f.clk.Advance(2 * time.Hour)
	// b is expired too: ending a alone (as the provider does) must not count it.
	out, err := f.eng.End(f.ctx, a, grant.ReasonDestroyed, grant.ActorTerraform)
	if err != nil {
		t.Fatal(err)
	}
	if !out.Touched || out.KeptBy != "" || out.Grant.Status != grant.StatusRevoked || out.Grant.EndReason != grant.ReasonDestroyed {
		t.Fatalf("outcome %+v", out)
	}
	rep := f.run()
	if got := ids(rep.Revoked); !reflect.DeepEqual(got, []string{b.ID}) {
		t.Fatalf("revoked %v", got)
	}
}

func TestEndOneGrant(t *testing.T) {
	f := newFixture(t)
	g := f.create(grantOpts{role: "ops"})
	out, err := f.eng.End(f.ctx, g, grant.ReasonDestroyed, grant.ActorTerraform)
	if err != nil {
		t.Fatal(err)
	}
	if !out.Touched || !strings.Contains(out.Evidence, "absent") || g.Status != grant.StatusRevoked || g.RevokedBy != grant.ActorTerraform {
		t.Fatalf("outcome %+v, grant %+v", out, g)
	}
	if stored := f.get(g.ID); stored.Version != g.Version || stored.Status != grant.StatusRevoked {
		t.Fatalf("stored %+v, in memory %+v", stored, g)
	}
	// Ending it again does nothing.
	out, err = f.eng.End(f.ctx, g, grant.ReasonDestroyed, grant.ActorTerraform)
	if err != nil || !out.AlreadyEnded || out.Touched {
		t.Fatalf("second End: %+v %v", out, err)
	}
	if c := f.count(g.ID); c[ledger.EntryRevoked] != 1 {
		t.Fatalf("history %v", c)
	}
}

func TestEndStaleVersionConflicts(t *testing.T) {
	f := newFixture(t)
	g := f.create(grantOpts{role: "ops"})
	stale := *g
	if _, err := f.eng.End(f.ctx, g, grant.ReasonManual, grant.ActorCLI); err != nil {
		t.Fatal(err)
	}
	stale.Status = grant.StatusActive
	if _, err := f.eng.End(f.ctx, &stale, grant.ReasonManual, grant.ActorCLI); err == nil || !strings.Contains(err.Error(), "another process") {
		t.Fatalf("End with a stale version: %v", err)
	}
}

func TestRevokeThatDoesNotHoldIsAFailure(t *testing.T) {
	f := newFixture(t)
	g := f.create(grantOpts{role: "ops", ttl: time.Minute})
	f.tgt.sticky[g.TargetKey()] = true
	f.clk.Advance(time.Hour)
	rep := f.run()
	if len(rep.Revoked) != 0 || len(rep.Failed) != 1 || !strings.Contains(rep.Failed[0].Error, "still sees") {
		t.Fatalf("report: %+v", rep)
	}
	if rep.Clean() {
		t.Fatal("a failed revoke reported clean")
	}
	s := f.get(g.ID)
	if s.Status != grant.StatusDue || s.RevokeAttempts != 1 || s.LastError == "" || !s.NextAttemptAt.After(f.clk.Now()) {
		t.Fatalf("ledger %+v", s)
	}
}

func TestTargetDownBackoffIrrevocableRetry(t *testing.T) {
	f := newFixture(t)
	f.eng.MaxAttempts = 3
	g := f.create(grantOpts{role: "ops", ttl: time.Minute})
	f.tgt.setDown("main", true)
	f.clk.Advance(time.Hour)

	rep := f.run()
	if len(rep.Failed) != 1 || rep.Clean() {
		t.Fatalf("report %+v", rep)
	}
	if strings.Contains(rep.Failed[0].Error, "hunter2") {
		t.Fatalf("secret in report: %s", rep.Failed[0].Error)
	}
	s := f.get(g.ID)
	if s.Status != grant.StatusDue || s.RevokeAttempts != 1 || strings.Contains(s.LastError, "hunter2") ||
		s.EndReason != grant.ReasonExpired || !s.NextAttemptAt.Equal(f.clk.Now().Add(time.Minute)) {
		t.Fatalf("after 1st failure: %+v", s)
	}
	// Within the claim's lease and the backoff: nothing happens.
	f.clk.Advance(30 * time.Second)
	if rep := f.run(); len(rep.Failed) != 0 || rep.Counts.Due != 0 {
		t.Fatalf("retried too early: %+v", rep)
	}
	f.clk.Advance(DefaultLease)
	f.run()
	if s := f.get(g.ID); s.RevokeAttempts != 2 || s.Status != grant.StatusDue {
		t.Fatalf("after 2nd failure: %+v", s)
	}
	f.clk.Advance(time.Hour)
	rep = f.run()
	s = f.get(g.ID)
	if s.Status != grant.StatusIrrevocable || s.RevokeAttempts != 3 {
		t.Fatalf("after 3rd failure: %+v", s)
	}
	if len(rep.Irrevocable) != 1 || rep.Irrevocable[0].ID != g.ID || f.count(g.ID)[ledger.EntryIrrevocable] != 1 {
		t.Fatalf("report %+v", rep.Irrevocable)
	}
	// Irrevocable grants are not retried by runs, but stay loud.
	f.tgt.setDown("main", false)
	f.clk.Advance(24 * time.Hour)
	rep = f.run()
	if len(rep.Revoked) != 0 || len(rep.Irrevocable) != 1 || rep.Clean() {
		t.Fatalf("irrevocable grant handled by a run: %+v", rep)
	}
	if err := f.eng.Retry(f.ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	if err := f.eng.Retry(f.ctx, g.ID); err == nil {
		t.Fatal("retry of a due grant accepted")
	}
	f.clk.Advance(DefaultLease) // the last claim must have expired
	rep = f.run()
	if got := ids(rep.Revoked); !reflect.DeepEqual(got, []string{g.ID}) || !rep.Clean() {
		t.Fatalf("after retry: %+v", rep)
	}
	s = f.get(g.ID)
	if s.Status != grant.StatusRevoked || s.EndReason != grant.ReasonExpired || f.tgt.get(g.TargetKey()) != target.Absent {
		t.Fatalf("final %+v", s)
	}
}

func TestDriftWidenedMissingLingering(t *testing.T) {
	f := newFixture(t)
	widened := f.create(grantOpts{role: "w", ttl: 5 * time.Hour})
	missing := f.create(grantOpts{role: "m", ttl: 5 * time.Hour})
	ended := f.create(grantOpts{role: "l", ttl: time.Hour})
	fine := f.create(grantOpts{role: "f", ttl: 5 * time.Hour})

	f.clk.Advance(2 * time.Hour)
	if rep := f.run(); len(rep.Revoked) != 1 {
		t.Fatalf("setup: %+v", rep)
	}
	f.tgt.set(widened.TargetKey(), target.Widened)
	f.tgt.set(missing.TargetKey(), target.Absent)
	f.tgt.set(ended.TargetKey(), target.Present) // re-granted by hand

	f.clk.Advance(time.Minute)
	plan, err := f.eng.Plan(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Drift) != 3 || f.tgt.get(ended.TargetKey()) != target.Present || f.get(widened.ID).Status != grant.StatusActive {
		t.Fatalf("plan: %+v", plan.Drift)
	}

	rep := f.run()
	drift := map[grant.Drift]Item{}
	for _, it := range rep.Drift {
		drift[it.Drift] = it
	}
	if len(rep.Drift) != 3 || drift[grant.DriftWidened].ID != widened.ID || drift[grant.DriftMissing].ID != missing.ID ||
		drift[grant.DriftLingering].ID != ended.ID {
		t.Fatalf("drift: %+v", rep.Drift)
	}
	if got := ids(rep.Revoked); !reflect.DeepEqual(got, []string{widened.ID}) || rep.Revoked[0].EndReason != grant.ReasonDrift {
		t.Fatalf("revoked %+v", rep.Revoked)
	}
	if f.tgt.get(widened.TargetKey()) != target.Absent || f.tgt.get(ended.TargetKey()) != target.Absent {
		t.Fatal("widened or lingering permission still present")
	}
	if f.tgt.get(missing.TargetKey()) != target.Absent {
		t.Fatal("the sweeper added access")
	}
	if f.tgt.get(fine.TargetKey()) != target.Present || f.get(fine.ID).Status != grant.StatusActive {
		t.Fatal("a fine grant was touched")
	}
	if f.get(missing.ID).Status != grant.StatusActive {
		t.Fatal("missing grant changed")
	}
	c := f.count(ended.ID)
	if c[ledger.EntryRevoked] != 1 || c[ledger.EntryDriftDetected] != 1 || f.get(ended.ID).Status != grant.StatusRevoked {
		t.Fatalf("lingering history %v", c)
	}
	if !rep.Clean() {
		t.Fatalf("drift handled but not clean: %+v", rep)
	}
	// Next run: lingering is gone, missing still reported.
	rep = f.run()
	if len(rep.Drift) != 1 || rep.Drift[0].Drift != grant.DriftMissing {
		t.Fatalf("second run drift %+v", rep.Drift)
	}
}

func TestPlanChangesNothing(t *testing.T) {
	f := newFixture(t)
	a := f.create(grantOpts{role: "a", ttl: time.Minute})
	b := f.create(grantOpts{role: "shared", event: "INC-2", ttl: time.Minute})
	c := f.create(grantOpts{role: "shared", event: "INC-3", ttl: 5 * time.Hour})
	f.clk.Advance(time.Hour)
	before := []*grant.Grant{f.get(a.ID), f.get(b.ID), f.get(c.ID)}
	plan, err := f.eng.Plan(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !plan.DryRun || !reflect.DeepEqual(ids(plan.Revoked), []string{a.ID}) || len(plan.Kept) != 1 || plan.Kept[0].KeptBy != c.ID {
		t.Fatalf("plan %+v", plan)
	}
	if plan.Revoked[0].EndReason != grant.ReasonExpired {
		t.Fatalf("plan item %+v", plan.Revoked[0])
	}
	for _, g := range before {
		if after := f.get(g.ID); !reflect.DeepEqual(after, g) {
			t.Fatalf("plan changed %s: %+v -> %+v", g.ID, g, after)
		}
	}
	if f.tgt.revokeCalls != 0 {
		t.Fatal("plan revoked")
	}
	// The run then does what the plan said.
	rep := f.run()
	if !reflect.DeepEqual(ids(rep.Revoked), ids(plan.Revoked)) || !reflect.DeepEqual(ids(rep.Kept), ids(plan.Kept)) {
		t.Fatalf("run %v/%v differs from plan %v/%v", ids(rep.Revoked), ids(rep.Kept), ids(plan.Revoked), ids(plan.Kept))
	}
}

func TestKilledWhileHoldingClaims(t *testing.T) {
	f := newFixture(t)
	var gs []*grant.Grant
	for i := 0; i < 20; i++ {
		gs = append(gs, f.create(grantOpts{role: fmt.Sprintf("r%d", i), ttl: time.Minute}))
	}
	f.clk.Advance(time.Hour)
	// A sweeper claimed them all, revoked half at the target, and was killed.
	for i, g := range gs {
		if err := f.led.Claim(f.ctx, g, "dead-process", f.clk.Now(), DefaultLease); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			f.tgt.set(g.TargetKey(), target.Absent)
		}
	}
	if rep := f.run(); rep.Counts.Due != 0 || len(rep.Revoked) != 0 {
		t.Fatalf("claims in force were ignored: %+v", rep)
	}
	f.clk.Advance(DefaultLease)
	rep := f.run()
	if len(rep.Revoked) != len(gs) || !rep.Clean() {
		t.Fatalf("after the lease: %d revoked, %+v", len(rep.Revoked), rep.Failed)
	}
	for _, g := range gs {
		if c := f.count(g.ID); c[ledger.EntryRevoked] != 1 {
			t.Fatalf("%s history %v", g.ID, c)
		}
	}
}

func TestConcurrentRunsRevokeEachOnce(t *testing.T) {
	f := newFixture(t)
	var gs []*grant.Grant
	for i := 0; i < 200; i++ {
		gs = append(gs, f.create(grantOpts{role: fmt.Sprintf("r%d", i), member: fmt.Sprintf("m%d", i%7), ttl: time.Minute}))
	}
	f.clk.Advance(time.Hour)
	// Two engines, each with its own ledger handle, like two processes.
	var engines []*Engine
	for i := 0; i < 2; i++ {
		led, err := ledger.Open(f.ctx, f.dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer led.Close()
		engines = append(engines, &Engine{Ledger: led, Target: f.tgt, Clock: f.clk, BatchSize: 50})
	}
	var wg sync.WaitGroup
	reps := make([]*Report, 2)
	errs := make([]error, 2)
	for i, e := range engines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reps[i], errs[i] = e.Run(context.Background())
		}()
	}
	wg.Wait()
	total := 0
	for i := range reps {
		if errs[i] != nil {
			t.Fatalf("run %d: %v", i, errs[i])
		}
		if len(reps[i].Failed) != 0 {
			t.Fatalf("run %d failed: %+v", i, reps[i].Failed)
		}
		total += len(reps[i].Revoked)
	}
	if total != len(gs) {
		t.Fatalf("revoked %d in total, want %d", total, len(gs))
	}
	for _, g := range gs {
		if c := f.count(g.ID); c[ledger.EntryRevoked] != 1 {
			t.Fatalf("%s history %v", g.ID, c)
		}
	}
}

func TestBatchesRoundTrips(t *testing.T) {
	f := newFixture(t)
	f.eng.BatchSize = 500
	const n = 1200
	for i := 0; i < n; i++ {
		f.create(grantOpts{conn: []string{"a", "b"}[i%2], role: fmt.Sprintf("r%d", i), ttl: time.Minute})
	}
	f.clk.Advance(time.Hour)
	rep := f.run()
	if len(rep.Revoked) != n {
		t.Fatalf("revoked %d of %d: %+v", len(rep.Revoked), n, rep.Failed)
	}
	// 3 pages × 2 connections at most.
	if f.tgt.revokeCalls > 6 {
		t.Fatalf("%d revoke round trips for %d grants", f.tgt.revokeCalls, n)
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"dial postgres://alice:s3cret@db:5432/x failed": "dial postgres://<redacted>@db:5432/x failed",
		"connect (password=hunter2 user=x)":             "connect (password=<redacted> user=x)",
		"plain error":                                   "plain error",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDefaultBackoff(t *testing.T) {
	for n, want := range map[int]time.Duration{1: time.Minute, 2: 2 * time.Minute, 4: 8 * time.Minute, 20: BackoffCap} {
		if got := baseBackoff(n); got != want {
			t.Errorf("baseBackoff(%d) = %s, want %s", n, got, want)
		}
		for i := 0; i < 20; i++ {
			d := DefaultBackoff(n)
			if d < want*8/10 || d > want*12/10 || d > BackoffCap {
				t.Fatalf("DefaultBackoff(%d) = %s, want %s ±20%% capped", n, d, want)
			}
		}
	}
}

func TestEngineNeedsLedgerTargetClock(t *testing.T) {
	if _, err := (&Engine{}).Run(context.Background()); err == nil || !strings.Contains(err.Error(), "Engine.Ledger") {
		t.Fatalf("err = %v", err)
	}
}

// batchStore adds BatchStore to a Store by looping (the semantics, not the
// speed), and counts the batch calls.
type batchStore struct {
	ledger.Store
	claims, updates int
}

func (b *batchStore) ClaimMany(ctx context.Context, gs []*grant.Grant, token string, now time.Time, lease time.Duration) ([]error, error) {
	b.claims++
	errs := make([]error, len(gs))
	for i, g := range gs {
		errs[i] = b.Claim(ctx, g, token, now, lease)
	}
	return errs, nil
}

func (b *batchStore) UpdateMany(ctx context.Context, gs []*grant.Grant, entries [][]ledger.Entry) ([]error, error) {
	b.updates++
	errs := make([]error, len(gs))
	for i, g := range gs {
		errs[i] = b.UpdateGrant(ctx, g, entries[i]...)
	}
	return errs, nil
}

func TestRunUsesBatchStore(t *testing.T) {
	f := newFixture(t)
	bs := &batchStore{Store: f.led}
	f.eng.Ledger = bs
	var gs []*grant.Grant
	for i := 0; i < 30; i++ {
		gs = append(gs, f.create(grantOpts{role: fmt.Sprintf("r%d", i%20), event: fmt.Sprintf("E%d", i), ttl: time.Minute}))
	}
	// One grant was taken by another process: the batch claim must skip it only.
	f.clk.Advance(time.Hour)
	if err := f.led.Claim(f.ctx, gs[0], "other", f.clk.Now(), DefaultLease); err != nil {
		t.Fatal(err)
	}
	rep := f.run()
	if len(rep.Revoked) != 20 || len(rep.Kept) != 9 || !rep.Clean() {
		t.Fatalf("revoked %d kept %d failed %+v", len(rep.Revoked), len(rep.Kept), rep.Failed)
	}
	if bs.claims != 1 || bs.updates != 1 {
		t.Fatalf("batch calls: %d claims, %d updates", bs.claims, bs.updates)
	}
	if f.get(gs[0].ID).Status != grant.StatusActive {
		t.Fatal("a grant claimed elsewhere was ended")
	}
}

// Two grants of one permission ended at the same moment (terraform destroys
// resources in parallel, each with its own ledger handle): the permission must
// not survive because each saw the other as the holder that keeps it.
func TestConcurrentEndOfOverlappingGrants(t *testing.T) {
	f := newFixture(t)
	other, err := ledger.Open(f.ctx, f.dsn) // a second process's handle
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	engines := []*Engine{f.eng, {Ledger: other, Target: f.tgt, Clock: f.clk}}
	for round := 0; round < 20; round++ {
		role := fmt.Sprintf("shared_%d", round)
		gs := []*grant.Grant{f.create(grantOpts{role: role, event: "INC-1"}), f.create(grantOpts{role: role, event: "INC-2"})}
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i := range gs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = engines[i].End(f.ctx, gs[i], grant.ReasonDestroyed, grant.ActorTerraform)
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d: End %d: %v", round, i, err)
			}
		}
		if st := f.tgt.stateOf(gs[0].TargetKey()); st != target.Absent {
			t.Fatalf("round %d: both overlapping grants ended, but the permission is %s at the target", round, st)
		}
		for _, g := range gs {
			if got := f.get(g.ID); got.Status != grant.StatusRevoked {
				t.Fatalf("round %d: grant %s is %s", round, g.ID, got.Status)
			}
		}
	}
}

// When the only grant that declared ADMIN OPTION ends and a plain grant keeps
// the membership, the option goes and the membership stays.
func TestEndNarrowsAdminOptionKeptByPlainGrant(t *testing.T) {
	f := newFixture(t)
	plain := f.create(grantOpts{role: "ops", event: "INC-1"})
	admin := f.create(grantOpts{role: "ops", event: "INC-2", admin: true})
	out, err := f.eng.End(f.ctx, admin, grant.ReasonDestroyed, grant.ActorTerraform)
	if err != nil {
		t.Fatal(err)
	}
	if out.KeptBy != plain.ID || f.tgt.narrows != 1 || f.tgt.stateOf(plain.TargetKey()) != target.Present {
		t.Fatalf("kept_by %q, narrows %d, state %s; want kept by %s, one narrow, present", out.KeptBy, f.tgt.narrows, f.tgt.stateOf(plain.TargetKey()), plain.ID)
	}
	if c := f.count(admin.ID); c[ledger.EntryNarrowed] != 1 || c[ledger.EntryKept] != 1 || c[ledger.EntryRevoked] != 0 {
		t.Fatalf("history %v", c)
	}
	// The other way round nothing is narrowed: the admin grant still declares the option.
	f2 := newFixture(t)
	plain2 := f2.create(grantOpts{role: "ops", event: "INC-1"})
	f2.create(grantOpts{role: "ops", event: "INC-2", admin: true})
	if _, err := f2.eng.End(f2.ctx, plain2, grant.ReasonDestroyed, grant.ActorTerraform); err != nil {
		t.Fatal(err)
	}
	if f2.tgt.narrows != 0 {
		t.Fatalf("narrowed while a grant that declares the option remains")
	}
	// A target that cannot be reached fails the end: retried later, not recorded as kept.
	f3 := newFixture(t)
	f3.create(grantOpts{role: "ops", event: "INC-1"})
	admin3 := f3.create(grantOpts{role: "ops", event: "INC-2", admin: true})
	f3.tgt.down["main"] = true
	if _, err := f3.eng.End(f3.ctx, admin3, grant.ReasonDestroyed, grant.ActorTerraform); err == nil {
		t.Fatal("End succeeded although the admin option could not be removed")
	}
	if g := f3.get(admin3.ID); g.Status != grant.StatusDue || g.RevokeAttempts != 1 {
		t.Fatalf("after a failed narrow: status %s attempts %d, want due 1", g.Status, g.RevokeAttempts)
	}
}
