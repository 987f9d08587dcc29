package sweep

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver (also used by the ledger)

	"github.com/eventaccess/terraform-provider-eventaccess/internal/grant"
	"github.com/eventaccess/terraform-provider-eventaccess/internal/ledger"
)

// prototypeBatch is a BENCHMARK-ONLY prototype of the BatchStore methods that
// this package proposes for the SQLite ledger: it runs the statements of the
// ledger's Claim and of the part of UpdateGrant that ending a grant changes, for
// a whole batch in one transaction, on the same file. It exists to measure what
// the engine gains once the ledger implements BatchStore; it is not used by any
// test of behaviour, and it follows the ledger's schema (migration 1).
type prototypeBatch struct {
	ledger.Store
	db *sql.DB
}

var _ BatchStore = (*prototypeBatch)(nil)

func openPrototypeBatch(ctx context.Context, store ledger.Store, path string) (*prototypeBatch, error) {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return &prototypeBatch{Store: store, db: db}, nil
}

func (p *prototypeBatch) Close() error {
	p.db.Close()
	return p.Store.Close()
}

func micros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

func (p *prototypeBatch) ClaimMany(ctx context.Context, gs []*grant.Grant, token string, now time.Time, lease time.Duration) ([]error, error) {
	errs := make([]error, len(gs))
	tx, err := p.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback() }()
	st, err := tx.PrepareContext(ctx, `UPDATE grants SET claim_token = ?, claim_until = ?, version = version + 1
		WHERE id = ? AND version = ? AND (claim_until IS NULL OR claim_until <= ?)`)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	until, n := now.Add(lease).UnixMicro(), now.UnixMicro()
	for i, g := range gs {
		res, err := st.ExecContext(ctx, token, until, g.ID, g.Version, n)
		if err != nil {
			return nil, err
		}
		if k, _ := res.RowsAffected(); k != 1 {
			errs[i] = fmt.Errorf("%w: claim grant %s", ledger.ErrConflict, g.ID)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	for i, g := range gs {
		if errs[i] == nil {
			g.Version++
		}
	}
	return errs, nil
}

func (p *prototypeBatch) UpdateMany(ctx context.Context, gs []*grant.Grant, entries [][]ledger.Entry) ([]error, error) {
	errs := make([]error, len(gs))
	tx, err := p.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback() }()
	up, err := tx.PrepareContext(ctx, `UPDATE grants SET status = ?, end_reason = ?, ended_at = ?, revoked_by = ?,
		verified_at = ?, drift = ?, revoke_attempts = ?, last_error = ?, next_attempt_at = ?, kept_by = ?,
		version = version + 1 WHERE id = ? AND version = ?`)
	if err != nil {
		return nil, err
	}
	defer up.Close()
	ins, err := tx.PrepareContext(ctx, `INSERT INTO grant_events (grant_id, type, at, actor, detail) VALUES (?, ?, ?, ?, ?)`)
	if err != nil {
		return nil, err
	}
	defer ins.Close()
	for i, g := range gs {
		res, err := up.ExecContext(ctx, string(g.Status), string(g.EndReason), micros(g.EndedAt), string(g.RevokedBy),
			micros(g.VerifiedAt), string(g.Drift), g.RevokeAttempts, g.LastError, micros(g.NextAttemptAt), g.KeptBy,
			g.ID, g.Version)
		if err != nil {
			return nil, err
		}
		if k, _ := res.RowsAffected(); k != 1 {
			errs[i] = fmt.Errorf("%w: update grant %s", ledger.ErrConflict, g.ID)
			continue
		}
		for _, e := range entries[i] {
			if _, err := ins.ExecContext(ctx, g.ID, string(e.Type), e.At.UnixMicro(), string(e.Actor), e.Detail); err != nil {
				return nil, err
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	for i, g := range gs {
		if errs[i] == nil {
			g.Version++
		}
	}
	return errs, nil
}
