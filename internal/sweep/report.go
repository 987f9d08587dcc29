package sweep

import (
	"sort"
	"time"

	"github.com/eventaccess/terraform-provider-eventaccess/internal/grant"
)

// Actions named in report items.
const (
	// ActionRevoke: the permission is (or would be) revoked at the target and verified absent.
	ActionRevoke = "revoke"
	// ActionKeep: the grant ends, but another grant still holds the permission:
	// the target is not touched.
	ActionKeep = "keep"
	// ActionReport: drift that the sweeper only reports (a missing permission is
	// never put back by the sweeper).
	ActionReport = "report"
	// ActionRevokeAgain: an ended grant's permission is present again
	// (lingering) and is (or would be) revoked again.
	ActionRevokeAgain = "revoke_again"
	// ActionNone: nothing can be done (irrevocable, or an error).
	ActionNone = "none"
)

// Item is one grant in a report.
type Item struct {
	ID      string `json:"id"`
	EventID string `json:"event_id"`
	Owner   string `json:"owner"`
	// Target is the target key, the canonical identity of the permission.
	Target string `json:"target"`
	// Description is the target in words (no secrets: targets hold none).
	Description string          `json:"description"`
	Status      grant.Status    `json:"status"`
	EndReason   grant.EndReason `json:"end_reason,omitempty"`
	ExpiresAt   time.Time       `json:"expires_at"`
	Action      string          `json:"action"`
	Drift       grant.Drift     `json:"drift,omitempty"`
	KeptBy      string          `json:"kept_by,omitempty"`
	Attempts    int             `json:"attempts,omitempty"`
	// NextAttemptAt is when a failed grant is tried again (zero: not scheduled).
	NextAttemptAt time.Time `json:"next_attempt_at,omitzero"`
	// Detail says what was seen or done (evidence); Error why it failed.
	Detail string `json:"detail,omitempty"`
	Error  string `json:"error,omitempty"`
}

// Counts summarises a report.
type Counts struct {
	Due         int `json:"due"`
	Revoked     int `json:"revoked"`
	Kept        int `json:"kept"`
	Failed      int `json:"failed"`
	Drift       int `json:"drift"`
	Irrevocable int `json:"irrevocable"`
	Inspected   int `json:"inspected"`
}

// Report is what a Run did, or what a Plan says a Run would do.
type Report struct {
	// DryRun is true for a Plan: nothing was changed.
	DryRun bool `json:"dry_run"`
	// EvaluatedAt is the moment the sweep was evaluated at (the clock's now).
	EvaluatedAt time.Time `json:"evaluated_at"`
	// Revoked lists grants revoked at the target and verified absent (in a
	// plan: that would be).
	Revoked []Item `json:"revoked"`
	// Kept lists grants that ended while another grant still holds the permission.
	Kept []Item `json:"kept"`
	// Failed lists grants that could not be revoked or verified in this run.
	Failed []Item `json:"failed"`
	// Drift lists differences between the ledger and the targets: widened
	// (revoked whole), missing (reported only) and lingering (revoked again).
	Drift []Item `json:"drift"`
	// Irrevocable lists every grant the sweeper gave up on: they stay here,
	// loud, until retried on request or ended.
	Irrevocable []Item `json:"irrevocable"`
	Counts      Counts `json:"counts"`

	ended map[string]bool // ids ended in this run (see endedHere)
}

// Clean reports whether nothing failed and nothing is irrevocable (the
// sweeper's exit code 0).
func (r *Report) Clean() bool { return len(r.Failed) == 0 && len(r.Irrevocable) == 0 }

func newReport(now time.Time, dry bool) *Report {
	return &Report{
		DryRun: dry, EvaluatedAt: now,
		Revoked: []Item{}, Kept: []Item{}, Failed: []Item{}, Drift: []Item{}, Irrevocable: []Item{},
	}
}

// finish sorts the lists and fills the counts.
func (r *Report) finish() {
	for _, l := range [][]Item{r.Revoked, r.Kept, r.Failed, r.Drift, r.Irrevocable} {
		sort.SliceStable(l, func(i, j int) bool { return l[i].ID < l[j].ID })
	}
	r.Counts.Revoked = len(r.Revoked)
	r.Counts.Kept = len(r.Kept)
	r.Counts.Failed = len(r.Failed)
	r.Counts.Drift = len(r.Drift)
	r.Counts.Irrevocable = len(r.Irrevocable)
}

// itemOf describes g for a report.
func itemOf(g *grant.Grant, action string) Item {
	return Item{
		ID: g.ID, EventID: g.Event.ID, Owner: g.Owner,
		Target: g.TargetKey(), Description: g.Target.String(),
		Status: g.Status, EndReason: g.EndReason, ExpiresAt: g.ExpiresAt,
		Action: action, Drift: g.Drift, KeptBy: g.KeptBy,
		Attempts: g.RevokeAttempts, NextAttemptAt: g.NextAttemptAt,
	}
}
