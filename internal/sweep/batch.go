package sweep

import (
	"context"
	"time"

	"github.com/eventaccess/terraform-provider-eventaccess/internal/grant"
	"github.com/eventaccess/terraform-provider-eventaccess/internal/ledger"
)

// BatchStore is implemented by ledgers that can claim and record many grants
// in one transaction each. When the Engine's Ledger implements it, Run claims
// and records a whole batch of due grants at once instead of one transaction
// per grant (the ledger is then no longer the bottleneck of a large sweep).
//
// Both methods have the semantics of their single-grant counterparts, applied
// to each grant independently inside one transaction: errs[i] is what Claim or
// UpdateGrant would have returned for gs[i] (ErrConflict for a grant that
// changed or is claimed elsewhere), and the others still commit. The second
// return value is an error of the transaction as a whole (then nothing was
// written). On success each written grant's Version is incremented.
type BatchStore interface {
	ClaimMany(ctx context.Context, gs []*grant.Grant, token string, now time.Time, lease time.Duration) (errs []error, err error)
	UpdateMany(ctx context.Context, gs []*grant.Grant, entries [][]ledger.Entry) (errs []error, err error)
}

var _ BatchStore = (*ledger.SQLiteStore)(nil)
