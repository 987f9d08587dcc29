package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/eventaccess/terraform-provider-eventaccess/internal/grant"
)

// ClaimMany is Claim for many grants in one transaction: errs[i] is what Claim
// would have returned for gs[i] (ErrConflict for a grant that changed or that
// another writer holds), and the other claims still commit. err is a failure
// of the transaction as a whole, and then nothing was written. Each claimed
// grant's Version is incremented.
func (s *SQLiteStore) ClaimMany(ctx context.Context, gs []*grant.Grant, token string, now time.Time, lease time.Duration) ([]error, error) {
	switch {
	case token == "":
		return nil, errors.New("ledger: ClaimMany needs a non-empty token")
	case now.IsZero():
		return nil, errors.New("ledger: ClaimMany needs the current time; pass the clock's now")
	case lease <= 0:
		return nil, fmt.Errorf("ledger: ClaimMany needs a positive lease, got %s", lease)
	}
	errs := make([]error, len(gs))
	for i, g := range gs {
		if g == nil || g.ID == "" {
			errs[i] = errors.New("ledger: ClaimMany needs grants with an id")
		}
	}
	n, until := now.UnixMicro(), now.Add(lease).UnixMicro()
	err := s.write(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `UPDATE grants SET claim_token = ?, claim_until = ?, version = version + 1
			WHERE id = ? AND version = ? AND (claim_until IS NULL OR claim_until <= ?)`)
		if err != nil {
			return err
		}
		defer func() { _ = stmt.Close() }()
		for i, g := range gs {
			if g == nil || g.ID == "" {
				continue
			}
			errs[i] = nil // write may run this function again
			res, err := stmt.ExecContext(ctx, token, until, g.ID, g.Version, n)
			if err != nil {
				return err
			}
			if k, err := res.RowsAffected(); err != nil {
				return err
			} else if k != 1 {
				errs[i] = notFoundOrConflict(ctx, tx, g.ID, g.Version, "claim")
				if !errors.Is(errs[i], ErrConflict) && !errors.Is(errs[i], ErrNotFound) {
					return errs[i]
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, s.wrap(err)
	}
	for i, g := range gs {
		if errs[i] == nil {
			g.Version++
		}
	}
	return errs, nil
}

// UpdateMany is UpdateGrant for many grants in one transaction: entries[i]
// are appended with gs[i]; errs[i] is what UpdateGrant would have returned for
// gs[i], and the other writes still commit. err is a failure of the
// transaction as a whole, and then nothing was written. Each written grant's
// Version is incremented and its claim released.
func (s *SQLiteStore) UpdateMany(ctx context.Context, gs []*grant.Grant, entries [][]Entry) ([]error, error) {
	if len(entries) != len(gs) {
		return nil, fmt.Errorf("ledger: UpdateMany got %d grants and %d entry lists", len(gs), len(entries))
	}
	errs := make([]error, len(gs))
	vals := make([][]any, len(gs))
	seqs := make([][]int64, len(gs))
	for i, g := range gs {
		if err := checkGrant(g); err != nil {
			errs[i] = err
			continue
		}
		if err := prepareEntries(g.ID, entries[i]); err != nil {
			errs[i] = err
			continue
		}
		v, err := grantValues(g)
		if err != nil {
			errs[i] = err
			continue
		}
		vals[i] = v
		seqs[i] = make([]int64, len(entries[i]))
	}
	written := make([]bool, len(gs))
	err := s.write(ctx, func(tx *sql.Tx) error {
		upd, err := tx.PrepareContext(ctx, updateGrantSQL)
		if err != nil {
			return err
		}
		defer func() { _ = upd.Close() }()
		closedByEvent := map[string]bool{}
		for i, g := range gs {
			if vals[i] == nil {
				continue
			}
			written[i] = false // write may run this function again
			errs[i] = nil
			closed, seen := closedByEvent[g.Event.ID]
			if !seen {
				if closed, err = upsertEvent(ctx, tx, g.Event.ID, g.Event.Kind, g.Event.URL); err != nil {
					return err
				}
				closedByEvent[g.Event.ID] = closed
			}
			args := append(append([]any{}, vals[i][1:]...), closed, g.ID, g.Version)
			res, err := upd.ExecContext(ctx, args...)
			if err != nil {
				return err
			}
			if k, err := res.RowsAffected(); err != nil {
				return err
			} else if k != 1 {
				errs[i] = notFoundOrConflict(ctx, tx, g.ID, g.Version, "update")
				if !errors.Is(errs[i], ErrConflict) && !errors.Is(errs[i], ErrNotFound) {
					return errs[i]
				}
				continue
			}
			if err := insertEntries(ctx, tx, entries[i], seqs[i]); err != nil {
				return err
			}
			written[i] = true
		}
		return nil
	})
	if err != nil {
		return nil, s.wrap(err)
	}
	for i, g := range gs {
		if written[i] {
			g.Version++
			setSeqs(entries[i], seqs[i])
		}
	}
	return errs, nil
}
