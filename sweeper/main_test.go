package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eventaccess/terraform-provider-eventaccess/internal/grant"
	"github.com/eventaccess/terraform-provider-eventaccess/internal/ledger"
	"github.com/eventaccess/terraform-provider-eventaccess/internal/pgtest"
	"github.com/eventaccess/terraform-provider-eventaccess/internal/target"
	"github.com/eventaccess/terraform-provider-eventaccess/internal/target/postgresql"
)

var (
	// bin is the eventaccess-sweeper binary built for the tests.
	bin string
	// srv is the throwaway PostgreSQL shared by the tests.
	srv *pgtest.Server
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "eventaccess-sweeper-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "eventaccess-sweeper")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "FATAL: building eventaccess-sweeper: %v\n", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := pgtest.RunMain(m, func(s *pgtest.Server) { srv = s })
	os.RemoveAll(dir)
	os.Exit(code)
}

// t0 is the moment the test grants are made; runs use --at relative to it.
var t0 = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

func at(d time.Duration) string { return t0.Add(d).Format(time.RFC3339) }

// env is a test's world: a ledger file, a config file, a PostgreSQL server.
type env struct {
	t      *testing.T
	ctx    context.Context
	srv    *pgtest.Server
	dir    string
	ledger string
	config string
	led    ledger.Store
	driver *postgresql.Driver
	prefix string
	roles  []string // created, dropped at the end
	extra  []string // environment for the binary
}

// envSeq makes role names unique across repeated tests on one server.
var envSeq atomic.Int64

func newEnv(t *testing.T, s *pgtest.Server) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	e := &env{
		t: t, ctx: ctx, srv: s, dir: dir,
		ledger: filepath.Join(dir, "ledger.db"), config: filepath.Join(dir, "config.json"),
		prefix: fmt.Sprintf("%s_%d_", strings.ToLower(strings.NewReplacer("/", "_", "Test", "").Replace(t.Name())), envSeq.Add(1)),
	}
	e.writeConfig(s.URL(), 0)
	led, err := ledger.Open(ctx, e.ledger)
	if err != nil {
		t.Fatalf("open ledger: %v", err)
	}
	e.led = led
	e.driver = postgresql.New(target.Connections{Configured: map[string]string{"main": s.URL()}})
	t.Cleanup(func() {
		e.driver.Close()
		led.Close()
		for _, r := range e.roles {
			_ = e.srv.DropRole(ctx, r) // best effort: the server may be gone
		}
	})
	return e
}

// writeConfig writes the sweeper's config file for connection "main".
func (e *env) writeConfig(url string, maxAttempts int) {
	e.t.Helper()
	cfg := map[string]any{"connections": map[string]any{"main": map[string]string{"url": url}}, "lease": "5m", "batch_size": 25}
	if maxAttempts > 0 {
		cfg["max_attempts"] = maxAttempts
	}
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(e.config, b, 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// role creates a NOLOGIN role named prefix+name and returns its name.
func (e *env) role(name string) string {
	e.t.Helper()
	n := e.prefix + name
	if err := e.srv.CreateRole(e.ctx, n, false, ""); err != nil {
		e.t.Fatalf("create role %s: %v", n, err)
	}
	e.roles = append(e.roles, n)
	return n
}

// member creates a LOGIN role with password "pw-"+name.
func (e *env) member(name string) string {
	e.t.Helper()
	n := e.prefix + name
	if err := e.srv.CreateRole(e.ctx, n, true, "pw-"+name); err != nil {
		e.t.Fatalf("create member %s: %v", n, err)
	}
	e.roles = append(e.roles, n)
	return n
}

// grant applies role to member at PostgreSQL and records the grant in the
// ledger, made at t0 for ttl.
func (e *env) grant(event, role, member string, ttl time.Duration) *grant.Grant {
	e.t.Helper()
	g := &grant.Grant{
		ID: grant.NewID(t0), Owner: "team-db@example.com", Justification: "test",
		Event:     grant.Event{ID: event, Kind: grant.KindMigration},
		Target:    grant.Target{PostgreSQL: &grant.PostgreSQLTarget{Connection: "main", Role: role, Member: member}},
		GrantedAt: t0, ExpiresAt: t0.Add(ttl), Status: grant.StatusActive,
	}
	if err := e.driver.Grant(e.ctx, g.Target); err != nil {
		e.t.Fatalf("grant %s to %s: %v", role, member, err)
	}
	if err := e.led.CreateGrant(e.ctx, g, ledger.Entry{Type: ledger.EntryGranted, At: t0, Actor: grant.ActorTerraform}); err != nil {
		e.t.Fatalf("record grant: %v", err)
	}
	return g
}

// holds reports whether member is a member of role, from the catalog.
func (e *env) holds(role, member string) bool {
	e.t.Helper()
	p, err := e.srv.Pool(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	var ok bool
	if err := p.QueryRow(e.ctx, `SELECT EXISTS (SELECT 1 FROM pg_auth_members m
		JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles u ON u.oid = m.member
		WHERE r.rolname = $1 AND u.rolname = $2)`, role, member).Scan(&ok); err != nil {
		e.t.Fatal(err)
	}
	return ok
}

// canSetRole connects as member and tries SET ROLE role.
func (e *env) canSetRole(member, pw, role string) bool {
	e.t.Helper()
	conn, err := pgx.Connect(e.ctx, e.srv.URLFor(member, pw, ""))
	if err != nil {
		e.t.Fatalf("connect as %s: %v", member, err)
	}
	defer conn.Close(e.ctx)
	_, err = conn.Exec(e.ctx, "SET ROLE "+pgx.Identifier{role}.Sanitize())
	if err != nil && !strings.Contains(err.Error(), "permission denied") {
		e.t.Fatalf("SET ROLE %s as %s: unexpected error %v", role, member, err)
	}
	return err == nil
}

func (e *env) get(id string) *grant.Grant {
	e.t.Helper()
	g, err := e.led.GetGrant(e.ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return g
}

// ended counts the history entries that end a grant (revoked or kept).
func (e *env) ended(id string) (revoked, kept, drift int) {
	e.t.Helper()
	h, err := e.led.History(e.ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, en := range h {
		switch en.Type {
		case ledger.EntryRevoked:
			revoked++
		case ledger.EntryKept:
			kept++
		case ledger.EntryDriftDetected:
			drift++
		}
	}
	return
}

// out is the result of one run of the binary.
type out struct {
	stdout, stderr string
	code           int
}

// cmd prepares the binary with the env's ledger and config.
func (e *env) cmd(args ...string) *exec.Cmd {
	full := append([]string{"--ledger", e.ledger, "--config", e.config}, args...)
	c := exec.Command(bin, full...)
	c.Env = append(cleanEnviron(), e.extra...)
	return c
}

// sweeper runs the binary to completion.
func (e *env) sweeper(args ...string) out {
	e.t.Helper()
	c := e.cmd(args...)
	var so, se bytes.Buffer
	c.Stdout, c.Stderr = &so, &se
	err := c.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("running %v: %v", args, err)
	}
	o := out{so.String(), se.String(), code}
	if strings.Contains(o.stdout+o.stderr, e.srv.URL()) || strings.Contains(o.stdout+o.stderr, "secret-pw") {
		e.t.Fatalf("a connection URL or password was printed:\n%s\n%s", o.stdout, o.stderr)
	}
	return o
}

func cleanEnviron() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "EVENTACCESS_") {
			env = append(env, kv)
		}
	}
	return env
}

// jsonItem and jsonReport are the documented JSON contract of run and plan.
type jsonItem struct {
	ID        string `json:"id"`
	EventID   string `json:"event_id"`
	Owner     string `json:"owner"`
	Target    string `json:"target"`
	EndReason string `json:"end_reason"`
	Drift     string `json:"drift"`
	Error     string `json:"error"`
}

type jsonReport struct {
	Revoked     []jsonItem `json:"revoked"`
	Kept        []jsonItem `json:"kept"`
	Failed      []jsonItem `json:"failed"`
	Drift       []jsonItem `json:"drift"`
	Irrevocable []jsonItem `json:"irrevocable"`
}

func (e *env) report(o out) jsonReport {
	e.t.Helper()
	var r jsonReport
	if err := json.Unmarshal([]byte(o.stdout), &r); err != nil {
		e.t.Fatalf("stdout is not a JSON report (%v):\n%s\nstderr:\n%s", err, o.stdout, o.stderr)
	}
	if r.Revoked == nil || r.Failed == nil || r.Drift == nil {
		e.t.Fatalf("JSON report lacks revoked, failed or drift arrays:\n%s", o.stdout)
	}
	return r
}

func itemIDs(items []jsonItem) []string {
	ids := []string{}
	for _, it := range items {
		ids = append(ids, it.ID)
	}
	sort.Strings(ids)
	return ids
}

func expectCode(t *testing.T, o out, want int) {
	t.Helper()
	if o.code != want {
		t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", o.code, want, o.stdout, o.stderr)
	}
}

func TestRunRevokesExactlyTheExpiredGrant(t *testing.T) {
	e := newEnv(t, srv)
	reader, writer := e.role("reader"), e.role("writer")
	robot := e.member("robot")
	short := e.grant("CHG-1", reader, robot, time.Hour)
	long := e.grant("CHG-1", writer, robot, 6*time.Hour)
	if !e.canSetRole(robot, "pw-robot", reader) || !e.canSetRole(robot, "pw-robot", writer) {
		t.Fatal("setup: the grants do not work")
	}

	// The plan says what the run will do, and changes nothing.
	o := e.sweeper("plan", "--at", at(2*time.Hour))
	expectCode(t, o, 0)
	if !strings.Contains(o.stdout, short.ID) || !strings.Contains(o.stdout, "would be revoked") || strings.Contains(o.stdout, long.ID) {
		t.Fatalf("plan output:\n%s", o.stdout)
	}
	if g := e.get(short.ID); g.Status != grant.StatusActive || !e.holds(reader, robot) {
		t.Fatal("plan changed something")
	}

	o = e.sweeper("run", "--json", "--at", at(2*time.Hour))
	expectCode(t, o, 0)
	r := e.report(o)
	if len(r.Revoked) != 1 || len(r.Failed) != 0 {
		t.Fatalf("report: %+v", r)
	}
	want := jsonItem{ID: short.ID, EventID: "CHG-1", Owner: "team-db@example.com", Target: short.TargetKey(), EndReason: "expired"}
	if r.Revoked[0] != want {
		t.Fatalf("revoked item %+v, want %+v", r.Revoked[0], want)
	}
	if e.canSetRole(robot, "pw-robot", reader) {
		t.Fatal("the member can still SET ROLE to the revoked role")
	}
	if !e.canSetRole(robot, "pw-robot", writer) {
		t.Fatal("the member lost the role that is still granted")
	}
	g := e.get(short.ID)
	if g.Status != grant.StatusRevoked || g.RevokedBy != grant.ActorSweeper || g.EndReason != grant.ReasonExpired ||
		!g.EndedAt.Equal(t0.Add(2*time.Hour)) || g.VerifiedAt.IsZero() {
		t.Fatalf("ledger: %+v", g)
	}

	// A second run has nothing to do.
	o = e.sweeper("run", "--json", "--at", at(2*time.Hour+time.Minute))
	expectCode(t, o, 0)
	if r := e.report(o); len(r.Revoked)+len(r.Failed)+len(r.Drift) != 0 {
		t.Fatalf("second run: %+v", r)
	}
	if rev, kept, _ := e.ended(short.ID); rev != 1 || kept != 0 {
		t.Fatalf("history: %d revoked, %d kept", rev, kept)
	}

	// list shows both.
	o = e.sweeper("list", "--at", at(2*time.Hour))
	expectCode(t, o, 0)
	if !strings.Contains(o.stdout, short.ID) || !strings.Contains(o.stdout, "revoked") || !strings.Contains(o.stdout, long.ID) {
		t.Fatalf("list:\n%s", o.stdout)
	}
	o = e.sweeper("list", "--json", "--status", "active")
	expectCode(t, o, 0)
	var l struct{ Grants []jsonItem }
	if err := json.Unmarshal([]byte(o.stdout), &l); err != nil || len(l.Grants) != 1 || l.Grants[0].ID != long.ID {
		t.Fatalf("list --json --status active: %v\n%s", err, o.stdout)
	}
}

func TestConnectionFromEnvironment(t *testing.T) {
	e := newEnv(t, srv)
	if err := os.WriteFile(e.config, []byte(`{"max_attempts": 3}`), 0o600); err != nil {
		t.Fatal(err)
	}
	role, robot := e.role("r"), e.member("robot")
	g := e.grant("INC-5", role, robot, time.Hour)
	e.extra = []string{"EVENTACCESS_CONNECTION_MAIN=" + srv.URL()}
	o := e.sweeper("run", "--json", "--at", at(2*time.Hour))
	expectCode(t, o, 0)
	if ids := itemIDs(e.report(o).Revoked); len(ids) != 1 || ids[0] != g.ID || e.holds(role, robot) {
		t.Fatalf("revoked %v", ids)
	}
}

func TestCloseEventEndsItsGrants(t *testing.T) {
	e := newEnv(t, srv)
	a, b, c := e.role("a"), e.role("b"), e.role("c")
	robot := e.member("robot")
	ga := e.grant("CHG-7", a, robot, 6*time.Hour)
	gb := e.grant("CHG-7", b, robot, 6*time.Hour)
	gc := e.grant("CHG-8", c, robot, 6*time.Hour)

	o := e.sweeper("close-event", "CHG-7", "--reason", "change done", "--json", "--at", at(time.Hour))
	expectCode(t, o, 0)
	var closed struct {
		EventID string   `json:"event_id"`
		Due     []string `json:"due"`
	}
	if err := json.Unmarshal([]byte(o.stdout), &closed); err != nil || closed.EventID != "CHG-7" || len(closed.Due) != 2 {
		t.Fatalf("close-event: %v\n%s", err, o.stdout)
	}
	ev, err := e.led.GetEvent(e.ctx, "CHG-7")
	if err != nil || ev.Open || ev.CloseReason != "change done" || ev.ClosedBy != grant.ActorCLI {
		t.Fatalf("event: %+v %v", ev, err)
	}

	o = e.sweeper("run", "--json", "--at", at(time.Hour+time.Minute))
	expectCode(t, o, 0)
	r := e.report(o)
	if got, want := itemIDs(r.Revoked), []string{ga.ID, gb.ID}; strings.Join(got, ",") != strings.Join(sorted(want), ",") {
		t.Fatalf("revoked %v, want %v", got, want)
	}
	for _, it := range r.Revoked {
		if it.EndReason != "event_closed" {
			t.Fatalf("end_reason %q", it.EndReason)
		}
	}
	if e.holds(a, robot) || e.holds(b, robot) || !e.holds(c, robot) || e.get(gc.ID).Status != grant.StatusActive {
		t.Fatal("target state after close-event + run is wrong")
	}
	// Closing again is a no-op.
	o = e.sweeper("close-event", "CHG-7", "--at", at(2*time.Hour))
	expectCode(t, o, 0)
	if !strings.Contains(o.stdout, "already closed") {
		t.Fatalf("second close-event:\n%s", o.stdout)
	}
}

func sorted(s []string) []string {
	s = append([]string(nil), s...)
	sort.Strings(s)
	return s
}

func TestRegrantedByHandIsRevokedAgainAsDrift(t *testing.T) {
	e := newEnv(t, srv)
	role, robot := e.role("ops"), e.member("robot")
	g := e.grant("INC-9", role, robot, time.Hour)
	expectCode(t, e.sweeper("run", "--at", at(2*time.Hour)), 0)
	if e.holds(role, robot) {
		t.Fatal("not revoked")
	}
	// Someone grants it again by hand.
	if err := srv.Exec(e.ctx, "GRANT "+pgx.Identifier{role}.Sanitize()+" TO "+pgx.Identifier{robot}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	o := e.sweeper("plan", "--json", "--at", at(3*time.Hour))
	expectCode(t, o, 0)
	if r := e.report(o); len(r.Drift) != 1 || r.Drift[0].Drift != "lingering" || !e.holds(role, robot) {
		t.Fatalf("plan: %+v", r)
	}
	o = e.sweeper("run", "--json", "--at", at(3*time.Hour))
	expectCode(t, o, 0)
	r := e.report(o)
	if len(r.Drift) != 1 || r.Drift[0].ID != g.ID || r.Drift[0].Drift != "lingering" || r.Drift[0].Target != g.TargetKey() || len(r.Revoked) != 0 {
		t.Fatalf("report: %+v", r)
	}
	if e.holds(role, robot) || e.canSetRole(robot, "pw-robot", role) {
		t.Fatal("the re-granted membership is still there")
	}
	if rev, _, drift := e.ended(g.ID); rev != 1 || drift != 1 || e.get(g.ID).Status != grant.StatusRevoked {
		t.Fatalf("history: %d revoked, %d drift_detected", rev, drift)
	}
	// And it is quiet afterwards.
	o = e.sweeper("run", "--json", "--at", at(4*time.Hour))
	expectCode(t, o, 0)
	if r := e.report(o); len(r.Drift) != 0 {
		t.Fatalf("drift again: %+v", r.Drift)
	}
}

func TestStoppedPostgreSQLThenBack(t *testing.T) {
	own, err := pgtest.Start(context.Background())
	if err != nil {
		t.Fatalf("cannot start a second PostgreSQL: %v", err)
	}
	defer own.Close()
	if own.External() {
		t.Fatal("this test stops its server: unset " + pgtest.EnvURL)
	}
	e := newEnv(t, own)
	role, robot := e.role("ops"), e.member("robot")
	g := e.grant("INC-3", role, robot, time.Hour)
	e.driver.Close() // keep no connection open across the stop
	if err := own.Stop(); err != nil {
		t.Fatal(err)
	}

	o := e.sweeper("run", "--json", "--at", at(2*time.Hour))
	expectCode(t, o, 1)
	r := e.report(o)
	if len(r.Failed) != 1 || r.Failed[0].ID != g.ID || r.Failed[0].Error == "" || len(r.Revoked) != 0 {
		t.Fatalf("report: %+v", r)
	}
	s := e.get(g.ID)
	if s.Status != grant.StatusDue || s.RevokeAttempts != 1 || s.LastError == "" || s.NextAttemptAt.IsZero() {
		t.Fatalf("ledger after a failed attempt: %+v", s)
	}
	if err := own.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	o = e.sweeper("run", "--json", "--at", at(3*time.Hour))
	expectCode(t, o, 0)
	if ids := itemIDs(e.report(o).Revoked); len(ids) != 1 || ids[0] != g.ID {
		t.Fatalf("second run revoked %v\n%s", ids, o.stderr)
	}
	if e.holds(role, robot) {
		t.Fatal("still a member")
	}
	if s := e.get(g.ID); s.Status != grant.StatusRevoked || s.RevokeAttempts != 2 || s.EndReason != grant.ReasonExpired {
		t.Fatalf("ledger: %+v", s)
	}
}

func TestIrrevocableAfterMaxAttemptsThenRetry(t *testing.T) {
	e := newEnv(t, srv)
	role, robot := e.role("ops"), e.member("robot")
	g := e.grant("INC-4", role, robot, time.Hour)
	// The sweeper's connection points at nothing (and carries a password that
	// must never be printed).
	e.writeConfig("postgres://admin:secret-pw@127.0.0.1:1/postgres?connect_timeout=2", 2)

	expectCode(t, e.sweeper("run", "--at", at(2*time.Hour)), 1)
	if s := e.get(g.ID); s.Status != grant.StatusDue || s.RevokeAttempts != 1 || strings.Contains(s.LastError, "secret-pw") {
		t.Fatalf("after attempt 1: %+v", s)
	}
	o := e.sweeper("run", "--json", "--at", at(3*time.Hour))
	expectCode(t, o, 1)
	r := e.report(o)
	if len(r.Irrevocable) != 1 || r.Irrevocable[0].ID != g.ID {
		t.Fatalf("report: %+v", r)
	}
	if s := e.get(g.ID); s.Status != grant.StatusIrrevocable || s.RevokeAttempts != 2 {
		t.Fatalf("after attempt 2: %+v", s)
	}
	// It stays loud, and runs leave it alone.
	o = e.sweeper("plan", "--at", at(30*time.Hour))
	expectCode(t, o, 1)
	if !strings.Contains(o.stdout, "IRREVOCABLE") || !strings.Contains(o.stdout, "retry "+g.ID) {
		t.Fatalf("plan:\n%s", o.stdout)
	}
	// Fixed and retried on request.
	e.writeConfig(srv.URL(), 2)
	expectCode(t, e.sweeper("retry", g.ID, "--at", at(30*time.Hour)), 0)
	expectCode(t, e.sweeper("retry", g.ID, "--at", at(30*time.Hour)), 2) // not irrevocable any more
	o = e.sweeper("run", "--json", "--at", at(31*time.Hour))
	expectCode(t, o, 0)
	if ids := itemIDs(e.report(o).Revoked); len(ids) != 1 || ids[0] != g.ID || e.holds(role, robot) {
		t.Fatalf("after retry: %v", ids)
	}
}

// many creates n grants over roles × members, all expiring at t0+1h.
func (e *env) many(n, members int) []*grant.Grant {
	e.t.Helper()
	var ms []string
	for j := 0; j < members; j++ {
		ms = append(ms, e.member(fmt.Sprintf("m%d", j)))
	}
	var gs []*grant.Grant
	for i := 0; len(gs) < n; i++ {
		r := e.role(fmt.Sprintf("r%d", i))
		for j := 0; j < members && len(gs) < n; j++ {
			gs = append(gs, e.grant(fmt.Sprintf("INC-%d", i%5), r, ms[j], time.Hour))
		}
	}
	return gs
}

// allEndedOnce checks that every grant is revoked in the ledger, its
// membership is gone, and its history ends it exactly once.
func (e *env) allEndedOnce(gs []*grant.Grant) {
	e.t.Helper()
	for _, g := range gs {
		s := e.get(g.ID)
		rev, kept, _ := e.ended(g.ID)
		if s.Status != grant.StatusRevoked || rev+kept != 1 {
			e.t.Fatalf("grant %s: status %s, %d revoked + %d kept entries", g.ID, s.Status, rev, kept)
		}
		if e.holds(g.Target.PostgreSQL.Role, g.Target.PostgreSQL.Member) {
			e.t.Fatalf("grant %s: still a member at PostgreSQL", g.ID)
		}
	}
}

func TestSIGKILLDuringRunThenRerun(t *testing.T) {
	e := newEnv(t, srv)
	gs := e.many(300, 10)

	c := e.cmd("run", "--log-level", "debug", "--at", at(2*time.Hour))
	stderr, err := c.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill it when its second batch is revoked at PostgreSQL but not yet
	// recorded: it then holds claims on grants whose access is already gone.
	sc := bufio.NewScanner(stderr)
	batches, killed := 0, false
	for sc.Scan() {
		if strings.Contains(sc.Text(), "revoked and inspected a batch") {
			if batches++; batches == 2 {
				if err := c.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				killed = true
				break
			}
		}
	}
	_ = c.Wait()
	if !killed {
		t.Fatal("the run ended before it could be killed")
	}
	count := func() (revoked int) {
		for _, g := range gs {
			if e.get(g.ID).Status == grant.StatusRevoked {
				revoked++
			}
		}
		return revoked
	}
	done := count()
	if done == len(gs) {
		t.Fatal("the killed run had already finished every grant: nothing left to test")
	}
	t.Logf("killed after %d of %d grants were recorded", done, len(gs))

	// Within the lease, the dead run's claims hold: a rerun does the rest.
	o := e.sweeper("run", "--json", "--at", at(2*time.Hour+time.Minute))
	expectCode(t, o, 0)
	r1 := e.report(o)
	left := len(gs) - count()
	if left == 0 {
		t.Fatal("the grants claimed by the killed run were taken before their lease expired")
	}
	t.Logf("rerun within the lease ended %d; %d wait for the lease", len(r1.Revoked)+len(r1.Kept), left)
	// After the lease, a rerun finishes the job.
	o = e.sweeper("run", "--json", "--at", at(2*time.Hour+6*time.Minute))
	expectCode(t, o, 0)
	r2 := e.report(o)
	if len(r2.Revoked)+len(r2.Kept) != left || len(r2.Failed) != 0 {
		t.Fatalf("rerun after the lease ended %d, want %d: %+v", len(r2.Revoked)+len(r2.Kept), left, r2.Failed)
	}
	e.allEndedOnce(gs)
}

func TestTwoConcurrentRuns(t *testing.T) {
	e := newEnv(t, srv)
	gs := e.many(200, 10)
	var wg sync.WaitGroup
	outs := make([]out, 2)
	for i := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := e.cmd("run", "--json", "--at", at(2*time.Hour))
			var so, se bytes.Buffer
			c.Stdout, c.Stderr = &so, &se
			err := c.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			}
			outs[i] = out{so.String(), se.String(), code}
		}()
	}
	wg.Wait()
	seen := map[string]int{}
	for i, o := range outs {
		expectCode(t, o, 0)
		r := e.report(o)
		for _, it := range append(r.Revoked, r.Kept...) {
			seen[it.ID]++
		}
		t.Logf("run %d: %d revoked, %d kept", i, len(r.Revoked), len(r.Kept))
	}
	for _, g := range gs {
		if seen[g.ID] != 1 {
			t.Fatalf("grant %s reported ended by %d runs", g.ID, seen[g.ID])
		}
	}
	e.allEndedOnce(gs)
}

func TestBadConfigurationExits2(t *testing.T) {
	e := newEnv(t, srv)
	bad := filepath.Join(e.dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"conections": {}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, args := range map[string][]string{
		"unknown command":    {"sweep"},
		"no command":         {},
		"bad --at":           {"run", "--at", "tomorrow"},
		"config typo":        {"run", "--config", bad},
		"missing config":     {"run", "--config", filepath.Join(e.dir, "nope.json")},
		"ledger unreachable": {"run", "--ledger", filepath.Join(e.dir, "no", "such", "dir", "ledger.db")},
		"close-event no id":  {"close-event"},
		"retry unknown":      {"retry", "01ARZ3NDEKTSV4RRFFQ69G5FAV"},
	} {
		o := e.sweeper(args...)
		if o.code != 2 {
			t.Errorf("%s: exit %d, want 2\n%s", name, o.code, o.stderr)
		}
		if strings.TrimSpace(o.stderr) == "" {
			t.Errorf("%s: nothing on stderr", name)
		}
	}
}

// A connection that no config names and no environment variable provides is a
// configuration mistake: exit 2 before anything is touched, and no attempt is
// counted towards irrevocable.
func TestUnconfiguredConnectionExits2(t *testing.T) {
	e := newEnv(t, srv)
	if err := os.WriteFile(e.config, []byte(`{}`), 0o600); err != nil {
		t.Fatal(err)
	}
	role, robot := e.role("r"), e.member("robot")
	g := e.grant("INC-6", role, robot, time.Hour)
	for _, cmd := range []string{"plan", "run"} {
		o := e.sweeper(cmd, "--at", at(2*time.Hour))
		expectCode(t, o, 2)
		if !strings.Contains(o.stderr, "EVENTACCESS_CONNECTION_MAIN") {
			t.Fatalf("%s: stderr does not say what to set:\n%s", cmd, o.stderr)
		}
	}
	if got := e.get(g.ID); got.Status != grant.StatusActive || got.RevokeAttempts != 0 {
		t.Fatalf("grant after a misconfigured run: %s with %d attempts, want active with 0", got.Status, got.RevokeAttempts)
	}
	if !e.holds(role, robot) {
		t.Fatal("the membership was touched")
	}
}
