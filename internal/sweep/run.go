package sweep

import (
	"context"
	"fmt"
	"sync"

	"github.com/eventaccess/terraform-provider-eventaccess/internal/grant"
	"github.com/eventaccess/terraform-provider-eventaccess/internal/ledger"
	"github.com/eventaccess/terraform-provider-eventaccess/internal/target"
)

// Run ends everything that is due and removes drift, as of the clock's now:
//
//  1. due grants (expired, or their event closed in the ledger; failed ones
//     once their backoff has passed) are ended, grouped per connection, revoked
//     and verified in batches, and recorded (end_reason expired or
//     event_closed, whichever came first);
//  2. active grants are inspected: a widened permission is revoked whole
//     (end_reason drift), a missing one is only reported (the sweeper never
//     adds access); ended grants of the last TombstoneWindow whose permission
//     is present again ("lingering") are revoked again and recorded as
//     drift_detected (they stay revoked: never recorded as revoked twice);
//  3. irrevocable grants are listed.
//
// Grants claimed by another process are left to it. Run returns an error only
// when the ledger fails (the report then holds what was done until then);
// grants that could not be revoked are in the report's Failed list.
func (e *Engine) Run(ctx context.Context) (*Report, error) {
	return e.sweep(ctx, false)
}

// Plan says what Run would do at the clock's now, without changing anything:
// no claim, no revoke, no record. It reads the ledger and inspects the targets.
func (e *Engine) Plan(ctx context.Context) (*Report, error) {
	return e.sweep(ctx, true)
}

func (e *Engine) sweep(ctx context.Context, dry bool) (*Report, error) {
	if err := e.check(); err != nil {
		return nil, err
	}
	s := e.newSession()
	rep := newReport(s.now, dry)
	defer rep.finish()
	e.log().Info("sweep started", "at", s.now, "dry_run", dry)
	if err := s.sweepDue(ctx, rep, dry); err != nil {
		return rep, err
	}
	if err := s.sweepDrift(ctx, rep, dry); err != nil {
		return rep, err
	}
	if err := s.sweepTombstones(ctx, rep, dry); err != nil {
		return rep, err
	}
	if err := s.listIrrevocable(ctx, rep); err != nil {
		return rep, err
	}
	e.log().Info("sweep finished", "dry_run", dry, "due", rep.Counts.Due, "revoked", len(rep.Revoked),
		"kept", len(rep.Kept), "failed", len(rep.Failed), "drift", len(rep.Drift), "irrevocable", len(rep.Irrevocable))
	return rep, nil
}

// sweepDue ends the grants the ledger says are due, a batch at a time.
func (s *session) sweepDue(ctx context.Context, rep *Report, dry bool) error {
	limit := s.e.batchSize()
	if dry {
		limit = 0 // a plan changes nothing, so pages would not advance: read all
	}
	seen := map[string]bool{}
	for {
		batch, err := s.e.Ledger.Due(ctx, s.now, limit)
		if err != nil {
			return ledgerError{fmt.Errorf("reading the due grants from the ledger: %w", err)}
		}
		fresh := 0
		var ws []work
		for _, g := range batch {
			if seen[g.ID] {
				continue
			}
			seen[g.ID] = true
			fresh++
			if g.Status == grant.StatusIrrevocable || g.Status.Ended() ||
				(g.Status == grant.StatusDue && g.NextAttemptAt.After(s.now)) {
				continue
			}
			reason, err := s.dueReason(ctx, g)
			if err != nil {
				return err
			}
			if reason == grant.ReasonNone {
				continue
			}
			ws = append(ws, work{g: g, reason: reason})
		}
		rep.Counts.Due += len(ws)
		if len(ws) > 0 {
			if err := s.end(ctx, ws, rep, dry); err != nil {
				return err
			}
		}
		switch {
		case limit == 0 || len(batch) < limit:
			return nil
		case fresh == 0:
			// A full page of grants left alone: look further.
			limit *= 2
		}
	}
}

// end ends ws (or, dry, says what ending them would do) and reports it.
func (s *session) end(ctx context.Context, ws []work, rep *Report, dry bool) error {
	if dry {
		return s.planEnd(ctx, ws, rep)
	}
	var lerr error
	for _, r := range s.endMany(ctx, ws, grant.ActorSweeper) {
		if r.skipped {
			continue
		}
		if r.err != nil && IsLedgerError(r.err) && lerr == nil {
			lerr = r.err
		}
		s.reportResult(r, rep)
	}
	return lerr
}

// reportResult adds one ended grant to the report.
func (s *session) reportResult(r *result, rep *Report) {
	var it Item
	switch {
	case r.err != nil:
		it = itemOf(r.g, ActionRevoke)
		if it.EndReason == grant.ReasonNone {
			it.EndReason = r.reason
		}
		it.Error = redact(r.err.Error())
		it.Detail = r.detail
		rep.Failed = append(rep.Failed, it)
	case r.keptBy != "":
		it = itemOf(r.g, ActionKeep)
		it.Detail = fmt.Sprintf("still held by grant %s: target not touched", r.keptBy)
		if r.narrowed {
			it.Detail = fmt.Sprintf("still held by grant %s: only the admin option was removed, verified: %s", r.keptBy, r.evidence)
		}
		rep.Kept = append(rep.Kept, it)
	default:
		it = itemOf(r.g, ActionRevoke)
		it.Detail = r.evidence
		rep.Revoked = append(rep.Revoked, it)
	}
	if r.drift != grant.DriftNone {
		d := it
		d.Drift = r.drift
		d.Detail = r.detail
		if r.keptBy != "" {
			d.Detail += fmt.Sprintf("; the permission is still held by grant %s, so the target was not touched", r.keptBy)
		}
		rep.Drift = append(rep.Drift, d)
	}
}

// planEnd reports what ending ws would do: revoke, or keep when another grant
// still holds the permission.
func (s *session) planEnd(ctx context.Context, ws []work, rep *Report) error {
	for _, group := range groupByKey(ws, func(w work) string { return w.g.TargetKey() }) {
		k := group[0].g.TargetKey()
		rs := make([]*result, len(group))
		for i, w := range group {
			rs[i] = &result{work: w}
		}
		keeper, err := s.keeper(ctx, k, rs)
		if err != nil {
			return err
		}
		for i, w := range group {
			kept := keeper
			if kept == "" && i < len(group)-1 {
				kept = group[len(group)-1].g.ID
			}
			it := itemOf(w.g, ActionRevoke)
			if w.g.Status == grant.StatusActive || it.EndReason == grant.ReasonNone {
				it.EndReason = w.reason
			}
			if kept != "" {
				it.Action, it.KeptBy = ActionKeep, kept
				it.Detail = fmt.Sprintf("would end; still held by grant %s: target not touched", kept)
				rep.Kept = append(rep.Kept, it)
			} else {
				it.Detail = fmt.Sprintf("would revoke %s and verify it is absent", w.g.Target)
				rep.Revoked = append(rep.Revoked, it)
			}
			if w.drift != grant.DriftNone {
				d := it
				d.Drift, d.Detail = w.drift, w.detail
				rep.Drift = append(rep.Drift, d)
			}
		}
	}
	return nil
}

// inspect observes the permission of each grant, one batch per connection,
// connections in parallel. Results are index-aligned with gs.
func (s *session) inspect(ctx context.Context, gs []*grant.Grant) ([]target.Observation, []error) {
	obs := make([]target.Observation, len(gs))
	errs := make([]error, len(gs))
	byConn := map[string][]int{}
	for i, g := range gs {
		c := g.Target.Connection()
		byConn[c] = append(byConn[c], i)
	}
	var wg sync.WaitGroup
	for _, idx := range byConn {
		wg.Add(1)
		go func() {
			defer wg.Done()
			specs := make([]grant.Target, len(idx))
			for j, i := range idx {
				specs[j] = gs[i].Target
			}
			o, e := target.InspectMany(ctx, s.e.Target, specs)
			for j, i := range idx {
				obs[i], errs[i] = o[j], e[j]
			}
		}()
	}
	wg.Wait()
	return obs, errs
}

// sweepDrift inspects the active grants: widened is ended (reason drift),
// missing is reported.
func (s *session) sweepDrift(ctx context.Context, rep *Report, dry bool) error {
	all, err := s.e.Ledger.ListGrants(ctx, ledger.Filter{Statuses: []grant.Status{grant.StatusActive}})
	if err != nil {
		return ledgerError{fmt.Errorf("reading the active grants from the ledger: %w", err)}
	}
	var active []*grant.Grant
	for _, g := range all {
		ok, err := s.justifies(ctx, g)
		if err != nil {
			return err
		}
		if ok { // the others are due: ended above, or by another sweeper
			active = append(active, g)
		}
	}
	// A membership held WITH ADMIN OPTION is only wider than declared when no
	// active grant of the same permission declares the option.
	adminDeclared := map[string]bool{}
	for _, g := range active {
		if p := g.Target.PostgreSQL; p != nil && p.WithAdminOption {
			adminDeclared[g.TargetKey()] = true
		}
	}
	rep.Counts.Inspected += len(active)
	obs, errs := s.inspect(ctx, active)
	var ws []work
	for i, g := range active {
		switch {
		case errs[i] != nil:
			it := itemOf(g, ActionNone)
			it.Error = redact(fmt.Sprintf("could not inspect %s for drift: %v", g.Target, errs[i]))
			rep.Failed = append(rep.Failed, it)
		case obs[i].State == target.Widened && !adminDeclared[g.TargetKey()]:
			ws = append(ws, work{g: g, reason: grant.ReasonDrift, drift: grant.DriftWidened,
				detail: "widened: the member holds more than the grant declares (" + obs[i].Evidence + "); revoked whole"})
		case obs[i].State == target.Absent:
			it := itemOf(g, ActionReport)
			it.Drift = grant.DriftMissing
			it.Detail = "missing: the grant is active but the permission is absent at the target (" + obs[i].Evidence +
				"); the sweeper never adds access: terraform apply restores it, or end the grant"
			rep.Drift = append(rep.Drift, it)
		}
	}
	if len(ws) == 0 {
		return nil
	}
	s.e.log().Warn("widened grants found", "count", len(ws))
	return s.end(ctx, ws, rep, dry)
}

// sweepTombstones revokes again the permissions of recently ended grants that
// are present again at the target (lingering drift).
func (s *session) sweepTombstones(ctx context.Context, rep *Report, dry bool) error {
	ts, err := s.e.Ledger.Tombstones(ctx, s.now.Add(-s.e.tombstoneWindow()), 0)
	if err != nil {
		return ledgerError{fmt.Errorf("reading the ended grants from the ledger: %w", err)}
	}
	// Grants ended by this run were just verified absent: no need to look again.
	var check []*grant.Grant
	for _, g := range ts {
		if !rep.endedHere(g.ID) {
			check = append(check, g)
		}
	}
	rep.Counts.Inspected += len(check)
	obs, errs := s.inspect(ctx, check)
	var lingering []*grant.Grant
	var seenBy []target.Observation
	for i, g := range check {
		switch {
		case errs[i] != nil:
			it := itemOf(g, ActionNone)
			it.Error = redact(fmt.Sprintf("could not inspect %s for lingering access: %v", g.Target, errs[i]))
			rep.Failed = append(rep.Failed, it)
		case obs[i].Holds():
			// Recheck: a grant made since the tombstones were read justifies it.
			ids, err := s.e.Ledger.Holders(ctx, g.TargetKey(), "")
			if err != nil {
				return ledgerError{fmt.Errorf("reading the holders of %s from the ledger: %w", g.TargetKey(), err)}
			}
			if len(ids) == 0 {
				lingering = append(lingering, g)
				seenBy = append(seenBy, obs[i])
			}
		}
	}
	if len(lingering) == 0 {
		return nil
	}
	if dry {
		for i, g := range lingering {
			it := itemOf(g, ActionRevokeAgain)
			it.Drift = grant.DriftLingering
			it.Detail = "lingering: present again after the grant ended (" + seenBy[i].Evidence + "); would revoke it again"
			rep.Drift = append(rep.Drift, it)
		}
		return nil
	}
	rs := make([]*result, len(lingering))
	for i, g := range lingering {
		rs[i] = &result{work: work{g: g, reason: g.EndReason, drift: grant.DriftLingering}}
	}
	s.revokeAndVerify(ctx, rs)
	for i, r := range rs {
		it := itemOf(r.g, ActionRevokeAgain)
		it.Drift = grant.DriftLingering
		detail := "lingering: the permission was present again after the grant ended (" + seenBy[i].Evidence + ")"
		if r.err != nil {
			it.Error = redact(r.err.Error())
			detail += "; revoking it again failed: " + it.Error
			rep.Failed = append(rep.Failed, it)
		} else {
			detail += "; revoked again and verified absent: " + r.evidence
		}
		it.Detail = detail
		rep.Drift = append(rep.Drift, it)
		err := s.e.Ledger.Append(ctx, ledger.Entry{GrantID: r.g.ID, Type: ledger.EntryDriftDetected, At: s.now, Actor: grant.ActorSweeper, Detail: detail})
		if err != nil {
			return ledgerError{fmt.Errorf("recording lingering drift of grant %s in the ledger: %w", r.g.ID, err)}
		}
		s.e.log().Warn("lingering access revoked again", "grant", r.g.ID, "event", r.g.Event.ID, "target", r.g.TargetKey(), "ok", r.err == nil)
	}
	return nil
}

// endedHere reports whether the grant was ended (revoked or kept) in this run.
func (r *Report) endedHere(id string) bool {
	if r.ended == nil {
		r.ended = map[string]bool{}
		for _, l := range [][]Item{r.Revoked, r.Kept} {
			for _, it := range l {
				r.ended[it.ID] = true
			}
		}
	}
	return r.ended[id]
}

// listIrrevocable adds every irrevocable grant to the report.
func (s *session) listIrrevocable(ctx context.Context, rep *Report) error {
	gs, err := s.e.Ledger.ListGrants(ctx, ledger.Filter{Statuses: []grant.Status{grant.StatusIrrevocable}})
	if err != nil {
		return ledgerError{fmt.Errorf("reading the irrevocable grants from the ledger: %w", err)}
	}
	for _, g := range gs {
		it := itemOf(g, ActionNone)
		it.Error = g.LastError
		it.Detail = fmt.Sprintf("revocation failed %d times; fix the cause, then: eventaccess-sweeper retry %s", g.RevokeAttempts, g.ID)
		rep.Irrevocable = append(rep.Irrevocable, it)
	}
	return nil
}
