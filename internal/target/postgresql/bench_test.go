package postgresql

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/eventaccess/terraform-provider-eventaccess/internal/grant"
	"github.com/eventaccess/terraform-provider-eventaccess/internal/target"
)

// memberships creates roles×members roles and returns the specs of every
// membership between them (not granted yet) and a function that grants them all
// in one round trip.
func memberships(tb testing.TB, roles, members int) ([]grant.Target, func()) {
	tb.Helper()
	ctx := testCtx(tb)
	rs := make([]string, roles)
	for i := range rs {
		rs[i] = role(tb, "bench_r", false)
	}
	ms := make([]string, members)
	for i := range ms {
		ms[i] = role(tb, "bench_m", false)
	}
	var specs []grant.Target
	var sql strings.Builder
	for _, r := range rs {
		for _, m := range ms {
			p := grant.PostgreSQLTarget{Connection: "legacy", Role: r, Member: m}
			specs = append(specs, grant.Target{PostgreSQL: &p})
			sql.WriteString(GrantSQL(p) + ";\n")
		}
	}
	grantAll := func() {
		if err := srv.Exec(ctx, sql.String()); err != nil {
			tb.Fatal(err)
		}
	}
	return specs, grantAll
}

// bareLoop revokes each membership with one REVOKE statement on one pooled
// connection: the floor a batch must beat.
func bareLoop(tb testing.TB, specs []grant.Target) {
	ctx := testCtx(tb)
	pool, err := srv.Pool(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	for _, s := range specs {
		if _, err := pool.Exec(ctx, RevokeSQL(*s.PostgreSQL)); err != nil {
			tb.Fatal(err)
		}
	}
}

func revokeMany(tb testing.TB, d *Driver, specs []grant.Target) {
	for i, err := range d.RevokeMany(testCtx(tb), specs) {
		if err != nil {
			tb.Fatalf("%d: %v", i, err)
		}
	}
}

func BenchmarkRevoke500(b *testing.B) {
	specs, grantAll := memberships(b, 25, 20)
	d := driver(b)
	cases := []struct {
		name string
		run  func()
	}{
		{"RevokeMany", func() { revokeMany(b, d, specs) }},
		{"DriverLoop", func() {
			for _, s := range specs {
				if err := d.Revoke(context.Background(), s); err != nil {
					b.Fatal(err)
				}
			}
		}},
		{"BareLoop", func() { bareLoop(b, specs) }},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				grantAll()
				b.StartTimer()
				c.run()
			}
			b.ReportMetric(float64(len(specs))*float64(b.N)/b.Elapsed().Seconds(), "revokes/s")
		})
	}
}

// BenchmarkRevokeManyVsLoop revokes the same 500 memberships with RevokeMany
// and with a bare loop of single REVOKEs in every iteration, timing each side
// separately, and reports both throughputs and their ratio side by side.
func BenchmarkRevokeManyVsLoop(b *testing.B) {
	specs, grantAll := memberships(b, 25, 20)
	d := driver(b)
	grantAll()
	revokeMany(b, d, specs) // warm the pool
	var batch, loop time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		grantAll()
		start := time.Now()
		b.StartTimer()
		revokeMany(b, d, specs)
		b.StopTimer()
		batch += time.Since(start)
		grantAll()
		start = time.Now()
		b.StartTimer()
		bareLoop(b, specs)
		b.StopTimer()
		loop += time.Since(start)
	}
	revokes := float64(len(specs)) * float64(b.N)
	b.ReportMetric(revokes/batch.Seconds(), "RevokeMany-revokes/s")
	b.ReportMetric(revokes/loop.Seconds(), "loop-revokes/s")
	b.ReportMetric(loop.Seconds()/batch.Seconds(), "speedup")
	obs, errs := d.InspectMany(testCtx(b), specs)
	for i := range obs {
		if errs[i] != nil || obs[i].State != target.Absent {
			b.Fatalf("%d still %s (%v)", i, obs[i].State, errs[i])
		}
	}
}
