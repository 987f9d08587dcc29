package postgresql

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventaccess/terraform-provider-eventaccess/internal/grant"
	"github.com/eventaccess/terraform-provider-eventaccess/internal/pgtest"
	"github.com/eventaccess/terraform-provider-eventaccess/internal/target"
	"github.com/jackc/pgx/v5"
)

var srv *pgtest.Server

// TestMain starts a real PostgreSQL (pgtest) for the whole package and fails
// loudly when it cannot.
func TestMain(m *testing.M) {
	os.Exit(pgtest.RunMain(m, func(s *pgtest.Server) { srv = s }))
}

var roleSeq atomic.Int64

const memberPassword = "m3mber-pw"

func testCtx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

// role creates a role (login with memberPassword when login) whose name is
// unique to the test run, and drops it at cleanup.
func role(t testing.TB, base string, login bool) string {
	t.Helper()
	name := fmt.Sprintf("%s_%d", base, roleSeq.Add(1))
	if len(name) > grant.MaxIdentifierLength {
		t.Fatalf("role name %q too long", name)
	}
	pw := ""
	if login {
		pw = memberPassword
	}
	if err := srv.CreateRole(testCtx(t), name, login, pw); err != nil {
		t.Fatalf("create role %q: %v", name, err)
	}
	t.Cleanup(func() { _ = srv.DropRole(context.Background(), name) })
	return name
}

func driver(t testing.TB, opts ...Option) *Driver {
	d := New(target.Connections{Configured: map[string]string{"legacy": srv.URL(), "other": srv.URL()}}, opts...)
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func pg(role, member string) grant.Target {
	return grant.Target{PostgreSQL: &grant.PostgreSQLTarget{Connection: "legacy", Role: role, Member: member}}
}

// canSetRole connects as member and tries SET ROLE.
func canSetRole(t *testing.T, member, role string) bool {
	t.Helper()
	ctx := testCtx(t)
	c, err := pgx.Connect(ctx, srv.URLFor(member, memberPassword, ""))
	if err != nil {
		t.Fatalf("connect as %q: %v", member, err)
	}
	defer c.Close(ctx)
	_, err = c.Exec(ctx, "SET ROLE "+QuoteIdent(role))
	return err == nil
}

func mustState(t *testing.T, d *Driver, spec grant.Target, want target.State) target.Observation {
	t.Helper()
	o, err := d.Inspect(testCtx(t), spec)
	if err != nil {
		t.Fatalf("inspect %s: %v", spec, err)
	}
	if o.State != want {
		t.Fatalf("inspect %s: %s, want %s (evidence %s)", spec, o.State, want, o.Evidence)
	}
	if !o.CheckedAt.IsZero() {
		t.Fatal("the driver must not stamp CheckedAt")
	}
	return o
}

func TestGrantRevokeSetRole(t *testing.T) {
	ctx := testCtx(t)
	d := driver(t)
	r, m := role(t, "app_rw", false), role(t, "svc", true)
	spec := pg(r, m)

	if err := d.Check(ctx, spec); err != nil {
		t.Fatal(err)
	}
	mustState(t, d, spec, target.Absent)
	if canSetRole(t, m, r) {
		t.Fatal("member can SET ROLE before the grant")
	}
	for i := 0; i < 2; i++ { // idempotent
		if err := d.Grant(ctx, spec); err != nil {
			t.Fatalf("grant #%d: %v", i+1, err)
		}
	}
	o := mustState(t, d, spec, target.Present)
	if !strings.Contains(o.Evidence, `"found":true`) || !strings.Contains(o.Evidence, `"admin_option":false`) {
		t.Fatalf("evidence %s", o.Evidence)
	}
	if !canSetRole(t, m, r) {
		t.Fatal("member cannot SET ROLE after the grant")
	}
	for i := 0; i < 2; i++ { // idempotent: already absent is success
		if err := d.Revoke(ctx, spec); err != nil {
			t.Fatalf("revoke #%d: %v", i+1, err)
		}
	}
	mustState(t, d, spec, target.Absent)
	if canSetRole(t, m, r) {
		t.Fatal("member can still SET ROLE after the revoke")
	}
}

func TestAdminOption(t *testing.T) {
	ctx := testCtx(t)
	d := driver(t)
	r, m := role(t, "ops", false), role(t, "svc", true)
	plain, admin := pg(r, m), pg(r, m)
	admin.PostgreSQL = &grant.PostgreSQLTarget{Connection: "legacy", Role: r, Member: m, WithAdminOption: true}

	if err := d.Grant(ctx, admin); err != nil {
		t.Fatal(err)
	}
	mustState(t, d, admin, target.Present)
	o := mustState(t, d, plain, target.Widened)
	if !strings.Contains(o.Evidence, `"admin_option":true`) {
		t.Fatalf("evidence %s", o.Evidence)
	}
	// A grant without admin option leaves the admin option alone.
	if err := d.Grant(ctx, plain); err != nil {
		t.Fatal(err)
	}
	mustState(t, d, plain, target.Widened)
	// Revoke removes the membership with its admin option.
	if err := d.Revoke(ctx, plain); err != nil {
		t.Fatal(err)
	}
	mustState(t, d, admin, target.Absent)

	// Plain membership, then a grant that declares admin option upgrades it.
	if err := d.Grant(ctx, plain); err != nil {
		t.Fatal(err)
	}
	mustState(t, d, plain, target.Present)
	if err := d.Grant(ctx, admin); err != nil {
		t.Fatal(err)
	}
	mustState(t, d, plain, target.Widened)
	mustState(t, d, admin, target.Present)
}

func TestWeirdIdentifiersAreData(t *testing.T) {
	ctx := testCtx(t)
	d := driver(t)
	// A role literally called x must survive a role named `...; DROP ROLE x`.
	victim := "x"
	if err := srv.CreateRole(ctx, victim, false, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.DropRole(context.Background(), victim) })
	m := role(t, `Mëmber "quoted"; x`, true)
	for _, base := range []string{`we"ird; DROP ROLE x`, "MixedCase", "Ünïcødé_rôle", "with space", `'; DROP ROLE x; --`} {
		r := role(t, base, false)
		spec := pg(r, m)
		if err := d.Check(ctx, spec); err != nil {
			t.Fatalf("%q: %v", r, err)
		}
		if err := d.Grant(ctx, spec); err != nil {
			t.Fatalf("grant %q: %v", r, err)
		}
		mustState(t, d, spec, target.Present)
		if !canSetRole(t, m, r) {
			t.Fatalf("member cannot SET ROLE %q", r)
		}
		if err := d.Revoke(ctx, spec); err != nil {
			t.Fatalf("revoke %q: %v", r, err)
		}
		mustState(t, d, spec, target.Absent)
	}
	// MixedCase is not folded: "mixedcase_N" does not exist.
	mixed := role(t, "MixedCase", false)
	lower := strings.ToLower(mixed)
	err := d.Check(ctx, pg(lower, m))
	if !errors.Is(err, target.ErrNotFound) {
		t.Fatalf("lower-cased name must not match, got %v", err)
	}
	var exists bool
	pool, _ := srv.Pool(ctx)
	if err := pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'x')").Scan(&exists); err != nil || !exists {
		t.Fatalf("role x was dropped (%v): identifiers were run as SQL", err)
	}
}

func TestMissingRoles(t *testing.T) {
	ctx := testCtx(t)
	d := driver(t)
	r, m := role(t, "present", false), role(t, "svc", true)
	cases := []struct {
		spec grant.Target
		want []string
	}{
		{pg("no_such_role_zz", m), []string{`role "no_such_role_zz" does not exist on connection "legacy"`}},
		{pg(r, "no_such_member_zz"), []string{`member role "no_such_member_zz" does not exist on connection "legacy"`}},
		{pg("no_such_role_zz", "no_such_member_zz"), []string{`role "no_such_role_zz"`, `member role "no_such_member_zz"`}},
	}
	for _, c := range cases {
		for name, f := range map[string]func(context.Context, grant.Target) error{"check": d.Check, "grant": d.Grant} {
			err := f(ctx, c.spec)
			if !errors.Is(err, target.ErrNotFound) {
				t.Fatalf("%s %s: %v, want ErrNotFound", name, c.spec, err)
			}
			for _, w := range append(c.want, "create it first or fix the name") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%s: %q lacks %q", name, err, w)
				}
			}
		}
		// Nothing to revoke: success. Nothing held: absent.
		if err := d.Revoke(ctx, c.spec); err != nil {
			t.Fatalf("revoke %s: %v", c.spec, err)
		}
		mustState(t, d, c.spec, target.Absent)
	}
	if err := d.Check(ctx, grant.Target{PostgreSQL: &grant.PostgreSQLTarget{Connection: "nowhere", Role: r, Member: m}}); err == nil ||
		!strings.Contains(err.Error(), "EVENTACCESS_CONNECTION_NOWHERE") {
		t.Fatalf("unknown connection: %v", err)
	}
	if err := d.Grant(ctx, grant.Target{}); err == nil {
		t.Fatal("empty target accepted")
	}
}

func TestTerminateSessions(t *testing.T) {
	ctx := testCtx(t)
	d := driver(t)
	r, m := role(t, "break_glass", false), role(t, "svc", true)
	spec := pg(r, m)
	if err := d.Grant(ctx, spec); err != nil {
		t.Fatal(err)
	}
	open := func() *pgx.Conn {
		c, err := pgx.Connect(ctx, srv.URLFor(m, memberPassword, ""))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Exec(ctx, "SET ROLE "+QuoteIdent(r)); err != nil {
			t.Fatal(err)
		}
		return c
	}

	// Why: without termination, a session that ran SET ROLE keeps the role.
	kept := open()
	defer kept.Close(ctx)
	if err := d.Revoke(ctx, spec); err != nil {
		t.Fatal(err)
	}
	var cur string
	if err := kept.QueryRow(ctx, "SELECT current_role").Scan(&cur); err != nil || cur != r {
		t.Fatalf("expected the SET ROLE session to keep %q (got %q, %v)", r, cur, err)
	}
	kept.Close(ctx)

	if err := d.Grant(ctx, spec); err != nil {
		t.Fatal(err)
	}
	sess := open()
	defer sess.Close(ctx)
	spec.PostgreSQL.TerminateSessions = true
	if err := d.Revoke(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := sess.QueryRow(ctx, "SELECT current_role").Scan(&cur); err == nil {
		t.Fatalf("the member's session survived terminate_sessions (current_role %q)", cur)
	}
	mustState(t, d, spec, target.Absent)
	// The driver's own pooled session is not terminated (it is not the member's).
	if err := d.Revoke(ctx, spec); err != nil {
		t.Fatal(err)
	}
}

func TestBatchRevokeAndInspect(t *testing.T) {
	ctx := testCtx(t)
	d := driver(t, WithBatchSize(64))
	const n = 200
	roles := make([]string, 10)
	for i := range roles {
		roles[i] = role(t, fmt.Sprintf(`batch "r"; %d`, i), false)
	}
	members := make([]string, n/len(roles))
	for i := range members {
		members[i] = role(t, "bm", true)
	}
	var specs []grant.Target
	for i := 0; i < n; i++ {
		conn := "legacy"
		if i%3 == 0 {
			conn = "other"
		}
		p := &grant.PostgreSQLTarget{Connection: conn, Role: roles[i%len(roles)], Member: members[i/len(roles)], TerminateSessions: i%7 == 0}
		specs = append(specs, grant.Target{PostgreSQL: p})
	}
	// Grant all but every 5th; give every 11th admin option.
	for i, s := range specs {
		if i%5 == 0 {
			continue
		}
		g := *s.PostgreSQL
		g.WithAdminOption = i%11 == 0
		if err := d.Grant(ctx, grant.Target{PostgreSQL: &g}); err != nil {
			t.Fatal(err)
		}
	}
	// Extra specs: a duplicate, a missing role, an invalid spec.
	specs = append(specs, specs[1], pg("no_such_role_batch", members[0]), grant.Target{})

	obs, errs := d.InspectMany(ctx, specs)
	for i := 0; i < n; i++ {
		if errs[i] != nil {
			t.Fatalf("inspect %d: %v", i, errs[i])
		}
		want := target.Present
		switch {
		case i%5 == 0:
			want = target.Absent
		case i%11 == 0:
			want = target.Widened
		}
		if obs[i].State != want {
			t.Fatalf("inspect %d: %s, want %s (%s)", i, obs[i].State, want, obs[i].Evidence)
		}
		single := mustState(t, d, specs[i], want)
		if single.Evidence != obs[i].Evidence {
			t.Fatalf("batch and single evidence differ:\n%s\n%s", obs[i].Evidence, single.Evidence)
		}
	}
	if obs[n].State != target.Present || obs[n+1].State != target.Absent || errs[n+2] == nil {
		t.Fatalf("extras: %v %v %v", obs[n].State, obs[n+1].State, errs[n+2])
	}

	rerrs := d.RevokeMany(ctx, specs)
	for i := 0; i < n+2; i++ {
		if rerrs[i] != nil {
			t.Fatalf("revoke %d: %v", i, rerrs[i])
		}
	}
	if rerrs[n+2] == nil {
		t.Fatal("invalid spec revoked without error")
	}
	obs, errs = d.InspectMany(ctx, specs[:n])
	for i := range obs {
		if errs[i] != nil || obs[i].State != target.Absent {
			t.Fatalf("after RevokeMany %d: %s %v", i, obs[i].State, errs[i])
		}
	}
	// Again: all absent, all success.
	for i, err := range d.RevokeMany(ctx, specs[:n]) {
		if err != nil {
			t.Fatalf("second RevokeMany %d: %v", i, err)
		}
	}
	// Through the target package helpers (Mux dispatch to Batch).
	mux := target.Mux{grant.TargetPostgreSQL: d}
	for i, err := range mux.RevokeMany(ctx, specs[:n]) {
		if err != nil {
			t.Fatalf("mux RevokeMany %d: %v", i, err)
		}
	}
}

// TestBatchFallsBackPerMembership: when one REVOKE in a batch fails, the others
// still happen and only that membership reports the error.
func TestBatchFallsBackPerMembership(t *testing.T) {
	ctx := testCtx(t)
	// A limited admin: holds ADMIN OPTION on one role only.
	limited := role(t, "limited_admin", true)
	ok, denied := role(t, "ok_role", false), role(t, "denied_role", false)
	m1, m2 := role(t, "svc", true), role(t, "svc", true)
	su := driver(t)
	for _, s := range []grant.Target{pg(ok, m1), pg(denied, m2), pg(ok, m2)} {
		if err := su.Grant(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if err := su.Grant(ctx, grant.Target{PostgreSQL: &grant.PostgreSQLTarget{Connection: "legacy", Role: ok, Member: limited, WithAdminOption: true}}); err != nil {
		t.Fatal(err)
	}
	d := New(target.Connections{Configured: map[string]string{"legacy": srv.URLFor(limited, memberPassword, "")}})
	defer d.Close()
	specs := []grant.Target{pg(ok, m1), pg(denied, m2), pg(ok, m2)}
	errs := d.RevokeMany(ctx, specs)
	if errs[0] != nil || errs[2] != nil {
		t.Fatalf("permitted revokes failed: %v, %v", errs[0], errs[2])
	}
	if errs[1] == nil || !strings.Contains(errs[1].Error(), `connection "legacy": revoke role`) {
		t.Fatalf("denied revoke: %v", errs[1])
	}
	if strings.Contains(errs[1].Error(), memberPassword) {
		t.Fatal("password in error")
	}
	mustState(t, su, specs[0], target.Absent)
	mustState(t, su, specs[1], target.Present)
	mustState(t, su, specs[2], target.Absent)
}

// TestServerDown: a stopped server gives an error without the password, and
// the driver recovers when the server is back.
func TestServerDown(t *testing.T) {
	ctx := testCtx(t)
	r, m := role(t, "down", false), role(t, "svc", true)
	spec := pg(r, m)
	u := srv.URL()
	secret := strings.TrimPrefix(strings.Split(strings.Split(u, "@")[0], "//")[1], "postgres:")
	if srv.External() {
		// Cannot stop an external server: point at a closed port instead.
		u = strings.Replace(u, fmt.Sprintf(":%d/", srv.Port()), ":1/", 1)
	}
	d := New(target.Connections{Configured: map[string]string{"legacy": u}}, WithConnectTimeout(3*time.Second))
	defer d.Close()
	if !srv.External() {
		if err := d.Grant(ctx, spec); err != nil { // warm the pool
			t.Fatal(err)
		}
		if err := srv.Stop(); err != nil {
			t.Fatal(err)
		}
		defer func() {
			// Start on a running server does nothing; this only matters when
			// the test failed before its own restart.
			if err := srv.Start(ctx); err != nil {
				t.Fatalf("restart: %v", err)
			}
		}()
	}
	check := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: no error with the server down", what)
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), u) {
			t.Fatalf("%s: error leaks the password: %s", what, err)
		}
		if !errors.Is(err, ErrCannotConnect) || !strings.HasPrefix(err.Error(), `connection "legacy": cannot connect: `) {
			t.Fatalf("%s: %s", what, err)
		}
	}
	check("revoke", d.Revoke(ctx, spec))
	_, err := d.Inspect(ctx, spec)
	check("inspect", err)
	check("check", d.Check(ctx, spec))
	check("grant", d.Grant(ctx, spec))
	for _, err := range d.RevokeMany(ctx, []grant.Target{spec, spec}) {
		check("revoke many", err)
	}
	_, errs := d.InspectMany(ctx, []grant.Target{spec})
	check("inspect many", errs[0])
	t.Logf("error with the server down: %v", errs[0])

	if srv.External() {
		return
	}
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.Revoke(ctx, spec); err != nil {
		t.Fatalf("revoke after the server came back: %v", err)
	}
	mustState(t, d, spec, target.Absent)
}

func TestMultiGrantorDetection(t *testing.T) {
	ctx := testCtx(t)
	d := driver(t)
	c, err := d.conn("legacy")
	if err != nil {
		t.Fatal(err)
	}
	mg, err := c.isMultiGrantor(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var num int
	pool, _ := srv.Pool(ctx)
	if err := pool.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&num); err != nil {
		t.Fatal(err)
	}
	if mg != (num >= 160000) {
		t.Fatalf("server %d: multi-grantor detected %v", num, mg)
	}
}

func TestClose(t *testing.T) {
	d := driver(t)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Check(testCtx(t), pg("a", "b")); err == nil {
		t.Fatal("closed driver still works")
	}
}

// TestSimpleProtocolURL: a URL that asks for the simple protocol (as behind a
// transaction pooler) works for every operation, batch included.
func TestSimpleProtocolURL(t *testing.T) {
	ctx := testCtx(t)
	d := New(target.Connections{Configured: map[string]string{"legacy": srv.URL() + "&default_query_exec_mode=simple_protocol"}})
	defer d.Close()
	r, m := role(t, "simple", false), role(t, "svc", true)
	spec := pg(r, m)
	if err := d.Check(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := d.Grant(ctx, spec); err != nil {
		t.Fatal(err)
	}
	mustState(t, d, spec, target.Present)
	obs, errs := d.InspectMany(ctx, []grant.Target{spec, pg(r, "nobody_here")})
	if errs[0] != nil || errs[1] != nil || obs[0].State != target.Present || obs[1].State != target.Absent {
		t.Fatalf("InspectMany: %v %v", obs, errs)
	}
	spec.PostgreSQL.TerminateSessions = true
	for _, err := range d.RevokeMany(ctx, []grant.Target{spec}) {
		if err != nil {
			t.Fatal(err)
		}
	}
	mustState(t, d, spec, target.Absent)
}

// Two grants of one permission applied at the same moment (terraform applies
// resources in parallel) both succeed: the loser of the catalog race finds the
// membership there and is done.
func TestConcurrentGrantsOfOneMembership(t *testing.T) {
	ctx := testCtx(t)
	r, m := role(t, "race_role", false), role(t, "race_member", false)
	drivers := []*Driver{driver(t), driver(t), driver(t), driver(t)}
	for round := 0; round < 15; round++ {
		errs := concurrently(drivers, func(d *Driver) error { return d.Grant(ctx, pg(r, m)) })
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d, driver %d: concurrent grant failed: %v", round, i, err)
			}
		}
		mustState(t, drivers[0], pg(r, m), target.Present)
		if err := drivers[0].Revoke(ctx, pg(r, m)); err != nil {
			t.Fatal(err)
		}
	}
}

// Two revokes of one membership at the same moment (two sweepers, or a
// sweeper and terraform destroy) both succeed: absent is success.
func TestConcurrentRevokesOfOneMembership(t *testing.T) {
	ctx := testCtx(t)
	r, m := role(t, "race_role", false), role(t, "race_member", false)
	drivers := []*Driver{driver(t), driver(t), driver(t), driver(t)}
	for round := 0; round < 15; round++ {
		if err := drivers[0].Grant(ctx, pg(r, m)); err != nil {
			t.Fatal(err)
		}
		errs := concurrently(drivers, func(d *Driver) error { return d.Revoke(ctx, pg(r, m)) })
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d, driver %d: concurrent revoke failed: %v", round, i, err)
			}
		}
		mustState(t, drivers[0], pg(r, m), target.Absent)
	}
}

// Narrow removes only the admin option: the member keeps the role and can
// still SET ROLE, but can no longer grant it on.
func TestNarrowRemovesOnlyTheAdminOption(t *testing.T) {
	ctx := testCtx(t)
	d := driver(t)
	r, m := role(t, "ops", false), role(t, "svc", true)
	plain, admin := pg(r, m), pg(r, m)
	admin.PostgreSQL = &grant.PostgreSQLTarget{Connection: "legacy", Role: r, Member: m, WithAdminOption: true}
	if err := d.Grant(ctx, admin); err != nil {
		t.Fatal(err)
	}
	mustState(t, d, plain, target.Widened)
	for i := 0; i < 2; i++ { // idempotent
		if err := d.Narrow(ctx, plain); err != nil {
			t.Fatal(err)
		}
		mustState(t, d, plain, target.Present)
	}
	if !canSetRole(t, m, r) {
		t.Fatal("narrowing removed the membership")
	}
	// A spec that declares the option, or a missing membership: nothing to do.
	if err := d.Narrow(ctx, admin); err != nil {
		t.Fatal(err)
	}
	if err := d.Revoke(ctx, plain); err != nil {
		t.Fatal(err)
	}
	if err := d.Narrow(ctx, plain); err != nil {
		t.Fatal(err)
	}
	mustState(t, d, plain, target.Absent)
}

// concurrently runs f on every driver at once and returns the errors in order.
func concurrently(drivers []*Driver, f func(*Driver) error) []error {
	var wg sync.WaitGroup
	errs := make([]error, len(drivers))
	for i, d := range drivers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(d)
		}()
	}
	wg.Wait()
	return errs
}
