// Package sweep is the engine that ends grants: it finds what is due (expired,
// event closed) or drifted, revokes it at the target, verifies at the target
// that the access is gone, and records the outcome in the ledger, where the
// Terraform provider reads it.
//
// The engine only ever removes access. It claims a grant in the ledger before it
// touches the target and fences every later write with the version the claim
// produced, so that it is safe to run twice at once and safe to kill at any
// point: a claim expires after its lease, a permission that is already absent at
// the target counts as revoked, and no grant is recorded as revoked twice.
//
// Time comes only from the injected clock.
package sweep

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/eventaccess/terraform-provider-eventaccess/internal/clock"
	"github.com/eventaccess/terraform-provider-eventaccess/internal/grant"
	"github.com/eventaccess/terraform-provider-eventaccess/internal/ledger"
	"github.com/eventaccess/terraform-provider-eventaccess/internal/target"
)

// Defaults of the Engine's settings.
const (
	DefaultMaxAttempts     = 6
	DefaultLease           = 5 * time.Minute
	DefaultTombstoneWindow = 30 * 24 * time.Hour
	DefaultBatchSize       = 2000
	// BackoffBase is the wait after the first failed attempt; it doubles with
	// every further failure, up to BackoffCap.
	BackoffBase = time.Minute
	// BackoffCap is the longest wait between two attempts.
	BackoffCap = 6 * time.Hour
)

// Engine ends grants: one at a time (End) or everything that is due or drifted
// (Run). The zero value is not usable: set Ledger, Target and Clock; the other
// fields have defaults.
type Engine struct {
	// Ledger records every grant and every change to it.
	Ledger ledger.Store
	// Target reaches the permissions (usually a target.Mux). When it implements
	// target.Batch, Run revokes and inspects many permissions per round trip.
	Target target.Target
	// Clock is the only source of "now".
	Clock clock.Clock
	// MaxAttempts is the number of failed revocations after which a grant
	// becomes irrevocable (default 6).
	MaxAttempts int
	// Backoff is the wait before the next attempt after the attempt-th failure
	// (default DefaultBackoff: exponential with jitter).
	Backoff func(attempt int) time.Duration
	// Lease is how long a claim on a grant holds (default 5m). A process killed
	// while it holds a claim delays that grant by at most the lease.
	Lease time.Duration
	// TombstoneWindow is how far back Run looks for ended grants whose
	// permission is present again ("lingering" drift); default 30 days.
	TombstoneWindow time.Duration
	// BatchSize is how many due grants Run takes from the ledger at a time
	// (default 2000).
	BatchSize int
	// Logger receives structured logs (never secrets); nil discards them.
	Logger *slog.Logger
}

// Outcome is what End did to one grant.
type Outcome struct {
	// Grant is the grant after End, as recorded in the ledger.
	Grant *grant.Grant `json:"grant"`
	// Touched reports whether the target was revoked (false when another grant
	// still holds the permission, or when the grant had already ended).
	Touched bool `json:"touched"`
	// KeptBy names the grant that still holds the permission, when the target
	// was left alone.
	KeptBy string `json:"kept_by,omitempty"`
	// Evidence is what the verifying inspection saw (or why it failed).
	Evidence string `json:"evidence,omitempty"`
	// AlreadyEnded reports that the grant was already revoked: nothing was done.
	AlreadyEnded bool `json:"already_ended,omitempty"`
}

// DefaultBackoff waits 1m after the first failure, doubling with every further
// failure up to 6h, with ±20% jitter so that many failed grants do not retry in
// lockstep.
func DefaultBackoff(attempt int) time.Duration {
	d := baseBackoff(attempt)
	jitter := 0.8 + 0.4*rand.Float64() //nolint:gosec // jitter, not a secret
	d = time.Duration(float64(d) * jitter)
	if d > BackoffCap {
		d = BackoffCap
	}
	return d
}

// baseBackoff is the backoff without jitter.
func baseBackoff(attempt int) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	d := BackoffBase
	for i := 1; i < attempt; i++ {
		d *= 2
		if d >= BackoffCap {
			return BackoffCap
		}
	}
	return d
}

func (e *Engine) maxAttempts() int {
	if e.MaxAttempts > 0 {
		return e.MaxAttempts
	}
	return DefaultMaxAttempts
}

func (e *Engine) backoff(attempt int) time.Duration {
	if e.Backoff != nil {
		return e.Backoff(attempt)
	}
	return DefaultBackoff(attempt)
}

func (e *Engine) lease() time.Duration {
	if e.Lease > 0 {
		return e.Lease
	}
	return DefaultLease
}

func (e *Engine) tombstoneWindow() time.Duration {
	if e.TombstoneWindow > 0 {
		return e.TombstoneWindow
	}
	return DefaultTombstoneWindow
}

func (e *Engine) batchSize() int {
	if e.BatchSize > 0 {
		return e.BatchSize
	}
	return DefaultBatchSize
}

var discard = slog.New(slog.DiscardHandler)

func (e *Engine) log() *slog.Logger {
	if e.Logger != nil {
		return e.Logger
	}
	return discard
}

func (e *Engine) check() error {
	switch {
	case e == nil:
		return errors.New("sweep: nil engine")
	case e.Ledger == nil:
		return errors.New("sweep: the engine has no ledger: set Engine.Ledger")
	case e.Target == nil:
		return errors.New("sweep: the engine has no target: set Engine.Target (usually a target.Mux)")
	case e.Clock == nil:
		return errors.New("sweep: the engine has no clock: set Engine.Clock (clock.Real{} in production)")
	}
	return nil
}

// newToken returns a fresh claim token.
func newToken() string {
	var b [16]byte
	_, _ = crand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// End ends one grant now, for reason, on behalf of actor. It is what the
// provider calls on destroy (and for a grant found expired at apply), and what
// Run does for every due grant, in batches.
//
// End claims the grant (g.Version must be the version last read; the claim
// fences later writes). If another grant still justifies the same permission
// (same target key, active, not expired, event open), the target is not
// touched: g is recorded revoked with an entry "kept" naming that grant
// (g.KeptBy). Otherwise the permission is revoked at the target and inspected:
// only an inspection that sees it absent is success; then g is recorded revoked
// with reason, actor, EndedAt, VerifiedAt and the evidence. On failure the
// attempt is recorded (RevokeAttempts, LastError, NextAttemptAt after a backoff,
// status due, entry revoke_failed) and, after MaxAttempts, the grant becomes
// irrevocable; End then returns the outcome and an error.
//
// g is updated in place to what the ledger holds afterwards. Ending a grant
// that is already revoked does nothing (Outcome.AlreadyEnded).
func (e *Engine) End(ctx context.Context, g *grant.Grant, reason grant.EndReason, actor grant.Actor) (Outcome, error) {
	if err := e.check(); err != nil {
		return Outcome{}, err
	}
	if g == nil {
		return Outcome{}, errors.New("sweep: End called with a nil grant")
	}
	if g.Status.Ended() {
		return Outcome{Grant: g, AlreadyEnded: true, KeptBy: g.KeptBy}, nil
	}
	if reason == grant.ReasonNone {
		return Outcome{}, fmt.Errorf("sweep: ending grant %s needs a reason (expired, event_closed, destroyed, drift or manual)", g.ID)
	}
	s := e.newSession()
	// A grant that still justifies its permission is first recorded as due.
	// Two grants of one permission ended at the same moment (terraform destroys
	// resources in parallel) would otherwise each see the other as the holder
	// that keeps the access, and neither would revoke it. Each one marks itself
	// due before it looks for a keeper, so whichever looks last revokes.
	ok, err := s.justifies(ctx, g)
	if err != nil {
		return Outcome{}, err
	}
	if ok {
		if err := g.MarkDue(reason); err != nil {
			return Outcome{}, err
		}
		entry := ledger.Entry{GrantID: g.ID, Type: ledger.EntryDue, At: s.now, Actor: actor, Detail: "ending: " + string(reason)}
		if err := e.Ledger.UpdateGrant(ctx, g, entry); err != nil {
			if errors.Is(err, ledger.ErrConflict) {
				return Outcome{}, fmt.Errorf("grant %s was changed by another process since it was read; read it again and retry: %w", g.ID, err)
			}
			return Outcome{}, ledgerError{fmt.Errorf("recording grant %s as due: %w", g.ID, err)}
		}
	}
	res := s.endMany(ctx, []work{{g: g, reason: reason}}, actor)
	if len(res) != 1 {
		return Outcome{}, fmt.Errorf("sweep: internal error: ending grant %s produced %d results", g.ID, len(res))
	}
	r := res[0]
	return r.outcome(), r.err
}

// Retry moves an irrevocable grant back to due, on request (actor cli): the
// next Run attempts it again with a fresh count of attempts.
func (e *Engine) Retry(ctx context.Context, grantID string) error {
	if err := e.check(); err != nil {
		return err
	}
	g, err := e.Ledger.GetGrant(ctx, grantID)
	if err != nil {
		if errors.Is(err, ledger.ErrNotFound) {
			return fmt.Errorf("grant %s is not in the ledger: check the id (eventaccess-sweeper list shows the grants)", grantID)
		}
		return fmt.Errorf("reading grant %s from the ledger: %w", grantID, err)
	}
	if g.Status != grant.StatusIrrevocable {
		return fmt.Errorf("grant %s is %s, not irrevocable: only irrevocable grants can be retried (due grants are retried by every run)", grantID, g.Status)
	}
	now := e.Clock.Now()
	prevAttempts := g.RevokeAttempts
	g.Status = grant.StatusDue
	g.RevokeAttempts = 0
	g.NextAttemptAt = time.Time{}
	entry := ledger.Entry{
		GrantID: g.ID, Type: ledger.EntryRetry, At: now, Actor: grant.ActorCLI,
		Detail: fmt.Sprintf("irrevocable after %d attempts (last error: %s); due again, the next run retries it", prevAttempts, g.LastError),
	}
	if err := e.Ledger.UpdateGrant(ctx, g, entry); err != nil {
		if errors.Is(err, ledger.ErrConflict) {
			return fmt.Errorf("grant %s changed while it was being marked for retry: run the command again", grantID)
		}
		return fmt.Errorf("recording the retry of grant %s: %w", grantID, err)
	}
	e.log().Info("grant marked for retry", "grant", g.ID, "event", g.Event.ID, "target", g.TargetKey())
	return nil
}
