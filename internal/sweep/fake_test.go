package sweep

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/eventaccess/terraform-provider-eventaccess/internal/clock"
	"github.com/eventaccess/terraform-provider-eventaccess/internal/grant"
	"github.com/eventaccess/terraform-provider-eventaccess/internal/ledger"
	"github.com/eventaccess/terraform-provider-eventaccess/internal/target"
)

// fakeTarget is an in-memory target: a set of permissions by target key, with
// switches to make a connection fail or revokes not hold. It implements
// target.Batch and counts round trips.
type fakeTarget struct {
	mu           sync.Mutex
	clk          clock.Clock
	state        map[string]target.State // absent when missing
	down         map[string]bool         // connection name -> unreachable
	sticky       map[string]bool         // key -> revoke reports success but changes nothing
	revokes      map[string]int          // key -> revokes applied
	grants       int
	revokeCalls  int // RevokeMany calls (round trips)
	inspectCalls int
	narrows      int // Narrow calls
}

func newFakeTarget(clk clock.Clock) *fakeTarget {
	return &fakeTarget{
		clk: clk, state: map[string]target.State{}, down: map[string]bool{},
		sticky: map[string]bool{}, revokes: map[string]int{},
	}
}

var _ target.Batch = (*fakeTarget)(nil)

func (f *fakeTarget) unreachable(spec grant.Target) error {
	if f.down[spec.Connection()] {
		return fmt.Errorf("connect to connection %q: dial tcp 127.0.0.1:1: connection refused (password=hunter2)", spec.Connection())
	}
	return nil
}

func (f *fakeTarget) Check(context.Context, grant.Target) error { return nil }

func (f *fakeTarget) Grant(_ context.Context, spec grant.Target) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.unreachable(spec); err != nil {
		return err
	}
	f.grants++
	f.state[spec.Key()] = target.Present
	return nil
}

func (f *fakeTarget) revoke(spec grant.Target) error {
	if err := f.unreachable(spec); err != nil {
		return err
	}
	if f.sticky[spec.Key()] {
		return nil
	}
	if _, ok := f.state[spec.Key()]; ok {
		f.revokes[spec.Key()]++
	}
	delete(f.state, spec.Key())
	return nil
}

func (f *fakeTarget) inspect(spec grant.Target) (target.Observation, error) {
	if err := f.unreachable(spec); err != nil {
		return target.Observation{}, err
	}
	st, ok := f.state[spec.Key()]
	if !ok {
		st = target.Absent
	}
	return target.Observation{State: st, CheckedAt: f.clk.Now(), Evidence: fmt.Sprintf("fake: %s is %s", spec.Key(), st)}, nil
}

func (f *fakeTarget) Revoke(_ context.Context, spec grant.Target) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.revokeCalls++
	return f.revoke(spec)
}

func (f *fakeTarget) Inspect(_ context.Context, spec grant.Target) (target.Observation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inspectCalls++
	return f.inspect(spec)
}

func (f *fakeTarget) RevokeMany(_ context.Context, specs []grant.Target) []error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.revokeCalls++
	errs := make([]error, len(specs))
	for i, s := range specs {
		errs[i] = f.revoke(s)
	}
	return errs
}

func (f *fakeTarget) InspectMany(_ context.Context, specs []grant.Target) ([]target.Observation, []error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inspectCalls++
	obs := make([]target.Observation, len(specs))
	errs := make([]error, len(specs))
	for i, s := range specs {
		obs[i], errs[i] = f.inspect(s)
	}
	return obs, errs
}

func (f *fakeTarget) Close() error { return nil }

func (f *fakeTarget) set(key string, st target.State) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if st == target.Absent {
		delete(f.state, key)
		return
	}
	f.state[key] = st
}

func (f *fakeTarget) get(key string) target.State {
	f.mu.Lock()
	defer f.mu.Unlock()
	if st, ok := f.state[key]; ok {
		return st
	}
	return target.Absent
}

func (f *fakeTarget) setDown(conn string, down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down[conn] = down
}

// t0 is the start of every test's fake time.
var t0 = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

// fixture is an engine over a real SQLite ledger and a fake target.
type fixture struct {
	t   *testing.T
	ctx context.Context
	clk *clock.Fake
	led ledger.Store
	tgt *fakeTarget
	eng *Engine
	dsn string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	dsn := filepath.Join(t.TempDir(), "ledger.db")
	led, err := ledger.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("open ledger: %v", err)
	}
	t.Cleanup(func() { led.Close() })
	clk := clock.NewFake(t0)
	tgt := newFakeTarget(clk)
	return &fixture{
		t: t, ctx: ctx, clk: clk, led: led, tgt: tgt, dsn: dsn,
		eng: &Engine{Ledger: led, Target: tgt, Clock: clk, Backoff: func(n int) time.Duration { return baseBackoff(n) }},
	}
}

// grantOpts describe a grant to create.
type grantOpts struct {
	event, conn, role, member string
	ttl                       time.Duration
	admin                     bool
}

// create records an active grant and applies it at the fake target.
func (f *fixture) create(o grantOpts) *grant.Grant {
	f.t.Helper()
	if o.event == "" {
		o.event = "INC-1"
	}
	if o.conn == "" {
		o.conn = "main"
	}
	if o.member == "" {
		o.member = "robot"
	}
	if o.ttl == 0 {
		o.ttl = time.Hour
	}
	now := f.clk.Now()
	g := &grant.Grant{
		ID: grant.NewID(now), Owner: "team-db@example.com", Justification: "test",
		Event:     grant.Event{ID: o.event, Kind: grant.KindIncident},
		Target:    grant.Target{PostgreSQL: &grant.PostgreSQLTarget{Connection: o.conn, Role: o.role, Member: o.member, WithAdminOption: o.admin}},
		GrantedAt: now, ExpiresAt: now.Add(o.ttl), Status: grant.StatusActive,
	}
	if err := f.tgt.Grant(f.ctx, g.Target); err != nil {
		f.t.Fatal(err)
	}
	if err := f.led.CreateGrant(f.ctx, g, ledger.Entry{Type: ledger.EntryGranted, At: now, Actor: grant.ActorTerraform}); err != nil {
		f.t.Fatalf("create grant: %v", err)
	}
	return g
}

func (f *fixture) get(id string) *grant.Grant {
	f.t.Helper()
	g, err := f.led.GetGrant(f.ctx, id)
	if err != nil {
		f.t.Fatalf("get grant %s: %v", id, err)
	}
	return g
}

// count returns how many history entries of each type the grant has.
func (f *fixture) count(id string) map[ledger.EntryType]int {
	f.t.Helper()
	h, err := f.led.History(f.ctx, id)
	if err != nil {
		f.t.Fatalf("history %s: %v", id, err)
	}
	m := map[ledger.EntryType]int{}
	for _, e := range h {
		m[e.Type]++
	}
	return m
}

func (f *fixture) run() *Report {
	f.t.Helper()
	rep, err := f.eng.Run(f.ctx)
	if err != nil {
		f.t.Fatalf("run: %v", err)
	}
	return rep
}

func ids(items []Item) []string {
	out := []string{}
	for _, it := range items {
		out = append(out, it.ID)
	}
	return out
}

// stateOf is what the fake target holds for a key.
func (f *fakeTarget) stateOf(key string) target.State {
	f.mu.Lock()
	defer f.mu.Unlock()
	if st, ok := f.state[key]; ok {
		return st
	}
	return target.Absent
}

// Narrow removes a wider form: here, it counts and leaves the permission present.
func (f *fakeTarget) Narrow(_ context.Context, spec grant.Target) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.unreachable(spec); err != nil {
		return err
	}
	f.narrows++
	if _, ok := f.state[spec.Key()]; ok {
		f.state[spec.Key()] = target.Present
	}
	return nil
}

var _ target.Narrower = (*fakeTarget)(nil)
