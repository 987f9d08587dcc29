package ledger

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/eventaccess/terraform-provider-eventaccess/internal/grant"
)

// BenchmarkDue measures Due with a fixed number of due grants (50) against a
// small and a large history (ended grants, each with two history entries, and
// active grants not yet due). ns/due-row should not grow with the history.
func BenchmarkDue(b *testing.B) {
	const due = 50
	for _, hist := range []int{1_000, 100_000} {
		b.Run(fmt.Sprintf("history=%d", hist), func(b *testing.B) {
			s, _ := openTemp(b)
			seedBench(b, s, hist, due)
			ctx := context.Background()
			now := t0.Add(2 * time.Hour)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				gs, err := s.Due(ctx, now, 0)
				if err != nil {
					b.Fatal(err)
				}
				if len(gs) != due {
					b.Fatalf("Due returned %d grants, want %d", len(gs), due)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*due), "ns/due-row")
		})
	}
}

// seedBench writes hist tombstones (with two history entries each), hist/10
// active grants that are not due, and due active grants past their expiry.
func seedBench(b *testing.B, s *SQLiteStore, hist, due int) {
	b.Helper()
	ctx := context.Background()
	err := s.write(ctx, func(tx *sql.Tx) error {
		if _, err := upsertEvent(ctx, tx, "INC-1", grant.KindIncident, ""); err != nil {
			return err
		}
		ins, err := tx.PrepareContext(ctx, `INSERT INTO grants (id, owner, justification, event_id, event_kind, event_url,
			target_kind, target_json, target_key, connection, adopt_existing, requested, granted_at, expires_at,
			status, end_reason, ended_at, revoked_by, verified_at, drift, revoke_attempts, last_error,
			next_attempt_at, kept_by, event_closed, version)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 1)`)
		if err != nil {
			return err
		}
		defer ins.Close()
		hev, err := tx.PrepareContext(ctx, `INSERT INTO grant_events (grant_id, type, at, actor, detail) VALUES (?, ?, ?, 'sweeper', '')`)
		if err != nil {
			return err
		}
		defer hev.Close()
		put := func(g *grant.Grant, entries int) error { return seedPut(ctx, ins, hev, g, entries) }
		for i := 0; i < hist; i++ {
			g := newGrant(fmt.Sprintf("H%07d", i), fmt.Sprintf("c%d", i%5), "r", fmt.Sprintf("m%d", i), "INC-1", time.Hour)
			g.GrantedAt, g.ExpiresAt = t0.Add(-48*time.Hour), t0.Add(-47*time.Hour)
			if err := g.MarkRevoked(grant.ReasonExpired, grant.ActorSweeper, t0.Add(-47*time.Hour)); err != nil {
				return err
			}
			if err := put(g, 2); err != nil {
				return err
			}
		}
		for i := 0; i < hist/10; i++ {
			if err := put(newGrant(fmt.Sprintf("L%07d", i), "c1", "r", fmt.Sprintf("l%d", i), "INC-1", 5*time.Hour), 1); err != nil {
				return err
			}
		}
		for i := 0; i < due; i++ {
			if err := put(newGrant(fmt.Sprintf("D%07d", i), "c2", "r", fmt.Sprintf("d%d", i), "INC-1", time.Hour), 1); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

// seedPut inserts g with ins and gives it entries history rows with hev.
func seedPut(ctx context.Context, ins, hev *sql.Stmt, g *grant.Grant, entries int) error {
	vals, err := grantValues(g)
	if err != nil {
		return err
	}
	if _, err := ins.ExecContext(ctx, vals...); err != nil {
		return err
	}
	for e := 0; e < entries; e++ {
		if _, err := hev.ExecContext(ctx, g.ID, "verified", t0.UnixMicro()); err != nil {
			return err
		}
	}
	return nil
}
