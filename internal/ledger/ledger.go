// Package ledger is the record of every grant and every change to it: one
// interface, with an embedded SQLite store (the default) and, later, a shared
// PostgreSQL store. The history (grant_events) is append-only; grants is the
// current view, updated with compare-and-swap on a version.
package ledger

import (
	"context"
	"errors"
	"time"

	"github.com/eventaccess/terraform-provider-eventaccess/internal/grant"
)

// ErrNotFound: no grant (or event) with that id.
var ErrNotFound = errors.New("ledger: not found")

// ErrConflict: the row changed since it was read (compare-and-swap failed), or
// it is claimed by another writer.
var ErrConflict = errors.New("ledger: concurrent change")

// EntryType names a change in a grant's history.
type EntryType string

// History entry types.
const (
	EntryRequested       EntryType = "requested" // recorded before the target is touched
	EntryGranted         EntryType = "granted"
	EntryGrantFailed     EntryType = "grant_failed"
	EntryUpdated         EntryType = "updated" // owner, justification or event details changed
	EntryAdopted         EntryType = "adopted" // standing access taken over by the grant
	EntryShared          EntryType = "shared"  // the permission was already held by another grant
	EntryVerified        EntryType = "verified"
	EntryExtended        EntryType = "extended" // expiry moved later while active
	EntryRenewed         EntryType = "renewed"  // re-granted after it became due / went missing
	EntryShortened       EntryType = "shortened"
	EntryDue             EntryType = "due"
	EntryRevokeAttempted EntryType = "revoke_attempted"
	EntryRevokeFailed    EntryType = "revoke_failed"
	EntryRevoked         EntryType = "revoked"
	EntryKept            EntryType = "kept"     // ended, but another grant still holds the permission
	EntryNarrowed        EntryType = "narrowed" // ended; only the wider form it declared (ADMIN OPTION) was removed
	EntryDriftDetected   EntryType = "drift_detected"
	EntryRestored        EntryType = "restored" // missing permission put back by terraform
	EntryIrrevocable     EntryType = "irrevocable"
	EntryRetry           EntryType = "retry_requested"
	EntryImported        EntryType = "imported"
)

// Entry is one line of a grant's append-only history.
type Entry struct {
	Seq     int64 // assigned by the store
	GrantID string
	Type    EntryType
	At      time.Time
	Actor   grant.Actor
	// Detail is free text or JSON evidence; never secrets.
	Detail string
}

// Event is a business event known to the ledger.
type Event struct {
	ID          string
	Kind        grant.EventKind
	URL         string
	Open        bool
	ClosedAt    time.Time
	CloseReason string
	ClosedBy    grant.Actor
}

// Filter selects grants for List.
type Filter struct {
	Statuses []grant.Status // empty: all
	EventID  string
	Owner    string
	Limit    int // 0: no limit
}

// Store is the ledger. Every method is safe for concurrent use, including by
// several processes on the same ledger.
type Store interface {
	// CreateGrant inserts a new grant (Version becomes 1), upserts its business
	// event (open), and appends the entries, all in one transaction. g.ID must be set.
	CreateGrant(ctx context.Context, g *grant.Grant, entries ...Entry) error

	// GetGrant returns the grant with that id, or ErrNotFound.
	GetGrant(ctx context.Context, id string) (*grant.Grant, error)

	// UpdateGrant writes g if the stored version is still g.Version, appends the
	// entries, increments g.Version and releases any claim (it is the claim
	// holder's final write). It returns ErrConflict otherwise.
	UpdateGrant(ctx context.Context, g *grant.Grant, entries ...Entry) error

	// Append adds history entries without changing the grant.
	Append(ctx context.Context, entries ...Entry) error

	// ListGrants returns grants matching f, ordered by id.
	ListGrants(ctx context.Context, f Filter) ([]*grant.Grant, error)

	// Holders returns the ids of grants whose status still holds the permission
	// with that target key (active, due, irrevocable), excluding excludeID.
	Holders(ctx context.Context, targetKey, excludeID string) ([]string, error)

	// Due returns grants that must end at now, with no claim in force at now
	// (grants whose claim expired are returned again):
	//   - active or due grants whose expires_at <= now, or whose event is closed,
	//   - due grants whose next_attempt_at <= now (or zero),
	//   - irrevocable grants are not returned.
	// Ordered by connection then id, at most limit rows (0: no limit). The query
	// is indexed: it costs in proportion to the due grants, not the history.
	Due(ctx context.Context, now time.Time, limit int) ([]*grant.Grant, error)

	// Claim takes a grant for one writer until now+lease, with a fresh token, if
	// its version is still g.Version and no other claim is in force at now.
	// On success g.Version is incremented (later writes are fenced by it).
	// Returns ErrConflict if someone else changed or holds it.
	Claim(ctx context.Context, g *grant.Grant, token string, now time.Time, lease time.Duration) error

	// Tombstones returns revoked grants that ended at or after since, at most one
	// per target key (the latest), whose target key no grant holds any more:
	// the candidates for "lingering" drift (access present again after its end).
	// Ordered by connection then id, at most limit rows (0: no limit).
	Tombstones(ctx context.Context, since time.Time, limit int) ([]*grant.Grant, error)

	// History returns a grant's entries in order.
	History(ctx context.Context, grantID string) ([]Entry, error)

	// UpsertEvent records a business event (open unless already known).
	UpsertEvent(ctx context.Context, e Event) error
	// GetEvent returns a business event or ErrNotFound.
	GetEvent(ctx context.Context, id string) (*Event, error)
	// CloseEvent marks the event closed (creating it if unknown). Closing an
	// already closed event is a no-op that returns nil.
	CloseEvent(ctx context.Context, id, reason string, by grant.Actor, at time.Time) error

	Close() error
}
