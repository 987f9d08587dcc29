package sweep

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eventaccess/terraform-provider-eventaccess/internal/clock"
	"github.com/eventaccess/terraform-provider-eventaccess/internal/grant"
	"github.com/eventaccess/terraform-provider-eventaccess/internal/ledger"
	"github.com/eventaccess/terraform-provider-eventaccess/internal/pgtest"
	"github.com/eventaccess/terraform-provider-eventaccess/internal/target"
	"github.com/eventaccess/terraform-provider-eventaccess/internal/target/postgresql"
)

const (
	benchRoles   = 100
	benchMembers = 100
)

func benchRole(i int) string   { return fmt.Sprintf("bench_role_%03d", i) }
func benchMember(j int) string { return fmt.Sprintf("bench_member_%03d", j) }

// BenchmarkSweep10000 measures, side by side in one run against one throwaway
// PostgreSQL, (a) a bare loop of 10,000 "REVOKE role FROM member" statements
// over one connection and (b) the sweeper engine's Run over 10,000 due grants
// in a SQLite ledger (claim, revoke, verify, record). Every membership is
// granted again before each measurement.
//
//	go test -run '^$' -bench . -benchtime 1x ./internal/sweep/
func BenchmarkSweep10000(b *testing.B) {
	ctx := context.Background()
	srv, err := pgtest.Start(ctx)
	if err != nil {
		b.Fatalf("cannot start PostgreSQL for the benchmark: %v", err)
	}
	defer srv.Close()
	setup := fmt.Sprintf(`DO $$
BEGIN
  FOR i IN 0..%d LOOP
    EXECUTE format('CREATE ROLE %%I NOLOGIN', 'bench_role_' || lpad(i::text, 3, '0'));
  END LOOP;
  FOR j IN 0..%d LOOP
    EXECUTE format('CREATE ROLE %%I NOLOGIN', 'bench_member_' || lpad(j::text, 3, '0'));
  END LOOP;
END $$`, benchRoles-1, benchMembers-1)
	if err := srv.Exec(ctx, setup); err != nil {
		b.Fatalf("creating roles: %v", err)
	}
	grantAll := func() {
		b.Helper()
		q := fmt.Sprintf(`DO $$
BEGIN
  FOR i IN 0..%d LOOP
    FOR j IN 0..%d LOOP
      EXECUTE format('GRANT %%I TO %%I', 'bench_role_' || lpad(i::text, 3, '0'), 'bench_member_' || lpad(j::text, 3, '0'));
    END LOOP;
  END LOOP;
END $$`, benchRoles-1, benchMembers-1)
		if err := srv.Exec(ctx, q); err != nil {
			b.Fatalf("granting: %v", err)
		}
	}
	countMemberships := func() int {
		b.Helper()
		p, err := srv.Pool(ctx)
		if err != nil {
			b.Fatal(err)
		}
		var n int
		if err := p.QueryRow(ctx, `SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid
			WHERE r.rolname LIKE 'bench_role_%'`).Scan(&n); err != nil {
			b.Fatal(err)
		}
		return n
	}
	const n = benchRoles * benchMembers

	// sweepOnce grants everything again, records n due grants in a new SQLite
	// ledger, and times the engine's Run over them.
	sweepOnce := func(batched bool) time.Duration {
		b.Helper()
		grantAll()
		led, _, clk := benchLedger(b, ctx, n)
		defer led.Close()
		if !batched {
			led = perGrantStore{led} // hides BatchStore: one transaction per claim and per record
		}
		driver := postgresql.New(target.Connections{Configured: map[string]string{"bench": srv.URL()}})
		defer driver.Close()
		eng := &Engine{Ledger: led, Target: target.Mux{grant.TargetPostgreSQL: driver}, Clock: clk}
		start := time.Now()
		rep, err := eng.Run(ctx)
		el := time.Since(start)
		if err != nil {
			b.Fatalf("run: %v", err)
		}
		if len(rep.Revoked) != n || !rep.Clean() {
			b.Fatalf("run revoked %d of %d; failed %d (first: %+v)", len(rep.Revoked), n, len(rep.Failed), first(rep.Failed))
		}
		if left := countMemberships(); left != 0 {
			b.Fatalf("sweep left %d memberships", left)
		}
		return el
	}

	var bare, sweep, batched time.Duration
	for it := 0; it < b.N; it++ {
		// (a) bare loop over one connection.
		grantAll()
		conn, err := pgx.Connect(ctx, srv.URL())
		if err != nil {
			b.Fatalf("connecting: %v", err)
		}
		start := time.Now()
		for i := 0; i < benchRoles; i++ {
			for j := 0; j < benchMembers; j++ {
				q := "REVOKE " + pgx.Identifier{benchRole(i)}.Sanitize() + " FROM " + pgx.Identifier{benchMember(j)}.Sanitize()
				if _, err := conn.Exec(ctx, q); err != nil {
					b.Fatalf("bare revoke: %v", err)
				}
			}
		}
		bare += time.Since(start)
		conn.Close(ctx)
		if left := countMemberships(); left != 0 {
			b.Fatalf("bare loop left %d memberships", left)
		}
		// (b) the engine on the SQLite ledger (BatchStore: one transaction per batch).
		batched += sweepOnce(true)
		// (c) the same, one ledger transaction per claim and per record (for comparison).
		sweep += sweepOnce(false)
	}
	total := float64(n * b.N)
	bareRate, sweepRate, batchedRate := total/bare.Seconds(), total/sweep.Seconds(), total/batched.Seconds()
	b.ReportMetric(bareRate, "bare_grants/s")
	b.ReportMetric(batchedRate, "sweep_grants/s")
	b.ReportMetric(sweepRate, "sweep_pergrant_tx_grants/s")
	b.ReportMetric(batchedRate/bareRate, "ratio")
	b.ReportMetric(sweepRate/bareRate, "ratio_pergrant_tx")
	b.ReportMetric(0, "ns/op") // one op mixes all three measurements: see the table
	row := func(name string, d time.Duration, rate float64) {
		fmt.Printf("%-52s %8d %9.3f %10.0f %6.2f\n", name, n*b.N, d.Seconds(), rate, rate/bareRate)
	}
	fmt.Printf("\n%-52s %8s %9s %10s %6s\n", "", "grants", "seconds", "grants/s", "ratio")
	row("bare loop: REVOKE over 1 connection", bare, bareRate)
	row("sweeper Run: claim+revoke+verify+record", batched, batchedRate)
	row("sweeper Run, one ledger transaction per grant", sweep, sweepRate)
	fmt.Println()
}

func first(items []Item) Item {
	if len(items) == 0 {
		return Item{}
	}
	return items[0]
}

// benchLedger creates a SQLite ledger with n active grants (one per
// membership) and returns it, its file, and a clock past their expiry.
func benchLedger(b *testing.B, ctx context.Context, n int) (ledger.Store, string, clock.Clock) {
	b.Helper()
	path := filepath.Join(b.TempDir(), "ledger.db")
	led, err := ledger.Open(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	for i := 0; i < benchRoles; i++ {
		for j := 0; j < benchMembers; j++ {
			g := &grant.Grant{
				ID: grant.NewID(now), Owner: "bench@example.com",
				Event:     grant.Event{ID: fmt.Sprintf("BENCH-%d", i%10), Kind: grant.KindOther},
				Target:    grant.Target{PostgreSQL: &grant.PostgreSQLTarget{Connection: "bench", Role: benchRole(i), Member: benchMember(j)}},
				GrantedAt: now, ExpiresAt: now.Add(time.Hour), Status: grant.StatusActive,
			}
			if err := led.CreateGrant(ctx, g, ledger.Entry{Type: ledger.EntryGranted, At: now, Actor: grant.ActorTerraform}); err != nil {
				b.Fatal(err)
			}
		}
	}
	return led, path, clock.Fixed(now.Add(2 * time.Hour))
}

// perGrantStore hides the ledger's BatchStore methods, so Run claims and
// records each grant in its own transaction.
type perGrantStore struct{ ledger.Store }
