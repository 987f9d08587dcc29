package sweep

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"sync"
	"time"

	"github.com/eventaccess/terraform-provider-eventaccess/internal/grant"
	"github.com/eventaccess/terraform-provider-eventaccess/internal/ledger"
	"github.com/eventaccess/terraform-provider-eventaccess/internal/target"
)

// errClaimed is returned for a grant that another process claimed or changed
// since it was read.
var errClaimed = errors.New("claimed or changed by another process since it was read")

// ledgerError marks an error of the ledger itself (as opposed to the target):
// Run stops on it, and the sweeper exits 2.
type ledgerError struct{ err error }

func (e ledgerError) Error() string { return e.err.Error() }
func (e ledgerError) Unwrap() error { return e.err }

// IsLedgerError reports whether err is a failure of the ledger (unreachable,
// unwritable) rather than of a target.
func IsLedgerError(err error) bool {
	var le ledgerError
	return errors.As(err, &le)
}

// session is one evaluation: one "now", one claim token, caches of events.
type session struct {
	e      *Engine
	now    time.Time
	token  string
	events map[string]eventState
}

type eventState struct {
	closed   bool
	closedAt time.Time
}

func (e *Engine) newSession() *session {
	return &session{e: e, now: e.Clock.Now().UTC(), token: newToken(), events: map[string]eventState{}}
}

// event returns whether the business event is closed at s.now.
func (s *session) event(ctx context.Context, id string) (eventState, error) {
	if st, ok := s.events[id]; ok {
		return st, nil
	}
	var st eventState
	ev, err := s.e.Ledger.GetEvent(ctx, id)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
	case err != nil:
		return st, ledgerError{fmt.Errorf("reading event %s from the ledger: %w", id, err)}
	case !ev.Open && (ev.ClosedAt.IsZero() || !ev.ClosedAt.After(s.now)):
		st = eventState{closed: true, closedAt: ev.ClosedAt}
	}
	s.events[id] = st
	return st, nil
}

// justifies reports whether g still justifies its permission at s.now: active,
// not expired, and its event open. Only such a grant keeps a shared permission
// alive when another grant on it ends.
func (s *session) justifies(ctx context.Context, g *grant.Grant) (bool, error) {
	if g.Status != grant.StatusActive || g.Expired(s.now) {
		return false, nil
	}
	st, err := s.event(ctx, g.Event.ID)
	if err != nil {
		return false, err
	}
	return !st.closed, nil
}

// dueReason says why a grant returned by ledger.Due must end at s.now, or
// ReasonNone when it need not (then it is left alone). A reason already
// recorded wins; otherwise expiry and event closure compete, and whichever
// came first is the reason.
func (s *session) dueReason(ctx context.Context, g *grant.Grant) (grant.EndReason, error) {
	if g.Status != grant.StatusActive && g.EndReason != grant.ReasonNone {
		return g.EndReason, nil
	}
	st, err := s.event(ctx, g.Event.ID)
	if err != nil {
		return grant.ReasonNone, err
	}
	expired := g.Expired(s.now)
	switch {
	case st.closed && expired:
		if !st.closedAt.IsZero() && st.closedAt.Before(g.ExpiresAt) {
			return grant.ReasonEventClosed, nil
		}
		return grant.ReasonExpired, nil
	case st.closed:
		return grant.ReasonEventClosed, nil
	case expired:
		return grant.ReasonExpired, nil
	}
	return grant.ReasonNone, nil
}

// work is one grant to end.
type work struct {
	g      *grant.Grant
	reason grant.EndReason
	drift  grant.Drift // the drift that made it due (widened), for the report
	detail string      // why, for the report (drift evidence)
}

// result is what happened to one work item.
type result struct {
	work
	claimed   bool
	skipped   bool // claimed or changed by another process: not ours to end
	terminate bool // end the member's sessions on revoke (asked by a grant of the group)
	touched   bool
	keptBy    string
	narrowed  bool // the admin option was removed; the membership kept for keptBy
	evidence  string
	err       error
}

func (r *result) outcome() Outcome {
	return Outcome{Grant: r.g, Touched: r.touched, KeptBy: r.keptBy, Evidence: r.evidence}
}

// endMany ends every work item: claims, decides who revokes per target key,
// revokes and verifies at the targets in batches per connection, and records.
// Results are index-aligned with ws.
func (s *session) endMany(ctx context.Context, ws []work, actor grant.Actor) []*result {
	e := s.e
	res := make([]*result, len(ws))
	for i, w := range ws {
		res[i] = &result{work: w}
	}

	// 1. Claim: from here on, no other sweeper touches these grants, and our
	// writes are fenced by the version the claim produced.
	for _, r := range res {
		if r.g.Status != grant.StatusActive && r.g.EndReason != grant.ReasonNone {
			r.reason = r.g.EndReason // the first reason to end a grant is its reason
		}
	}
	claimErrs, err := s.claim(ctx, res)
	var claimed []*result
	for i, r := range res {
		cerr := err
		if cerr == nil {
			cerr = claimErrs[i]
		}
		if cerr != nil {
			if errors.Is(cerr, ledger.ErrConflict) {
				r.skipped = true
				r.err = fmt.Errorf("grant %s is %w; re-read it and try again", r.g.ID, errClaimed)
				e.log().Debug("grant claimed elsewhere, skipped", "grant", r.g.ID)
				continue
			}
			r.err = ledgerError{fmt.Errorf("claiming grant %s in the ledger: %w", r.g.ID, cerr)}
			continue
		}
		r.claimed = true
		claimed = append(claimed, r)
	}

	// 2. Overlaps: per target key, the permission is only revoked when no other
	// grant still justifies it; among the grants ending now, the last revokes
	// and the others are recorded as kept by it.
	var revokers []*result
	for _, group := range groupByKey(claimed, func(r *result) string { return r.g.TargetKey() }) {
		k := group[0].g.TargetKey()
		keepers, err := s.keepers(ctx, k, group, false)
		if err != nil {
			for _, r := range group {
				r.err = err
			}
			continue
		}
		keeper := ""
		if len(keepers) > 0 {
			keeper = keepers[0].ID
			// The grants ending now may be the only ones that declared ADMIN
			// OPTION: the member must not keep it for the grants that remain.
			wider, kept := false, false
			for _, r := range group {
				wider = wider || declaresAdmin(r.g)
			}
			for _, h := range keepers {
				kept = kept || declaresAdmin(h)
			}
			if wider && !kept {
				s.narrow(ctx, group, keepers[0])
			}
		}
		if keeper == "" {
			last := group[len(group)-1]
			for _, r := range group {
				if r.g.Target.PostgreSQL != nil && r.g.Target.PostgreSQL.TerminateSessions {
					last.terminate = true
				}
			}
			revokers = append(revokers, last)
			keeper = last.g.ID
			group = group[:len(group)-1]
		}
		for _, r := range group {
			r.keptBy = keeper
		}
	}

	// 3. Revoke and verify at the targets, one batch per connection.
	s.revokeAndVerify(ctx, revokers)

	// 4. Record.
	var recs []*result
	var gs []*grant.Grant
	var entries [][]ledger.Entry
	for _, r := range claimed {
		if r.err != nil && IsLedgerError(r.err) {
			continue
		}
		ng, es, err := s.prepare(r, actor)
		if err != nil {
			r.err = err
			continue
		}
		recs, gs, entries = append(recs, r), append(gs, ng), append(entries, es)
	}
	errs, err := s.update(ctx, gs, entries)
	for i, r := range recs {
		uerr := err
		if uerr == nil {
			uerr = errs[i]
		}
		s.recorded(r, gs[i], uerr)
	}
	return res
}

// claim claims every grant of rs, in one transaction when the ledger supports it.
func (s *session) claim(ctx context.Context, rs []*result) ([]error, error) {
	errs := make([]error, len(rs))
	if b, ok := s.e.Ledger.(BatchStore); ok && len(rs) > 1 {
		gs := make([]*grant.Grant, len(rs))
		for i, r := range rs {
			gs[i] = r.g
		}
		return b.ClaimMany(ctx, gs, s.token, s.now, s.e.lease())
	}
	for i, r := range rs {
		errs[i] = s.e.Ledger.Claim(ctx, r.g, s.token, s.now, s.e.lease())
	}
	return errs, nil
}

// update writes every grant with its entries, in one transaction when the
// ledger supports it.
func (s *session) update(ctx context.Context, gs []*grant.Grant, entries [][]ledger.Entry) ([]error, error) {
	if b, ok := s.e.Ledger.(BatchStore); ok && len(gs) > 1 {
		return b.UpdateMany(ctx, gs, entries)
	}
	errs := make([]error, len(gs))
	for i, g := range gs {
		errs[i] = s.e.Ledger.UpdateGrant(ctx, g, entries[i]...)
	}
	return errs, nil
}

// keeper returns the id of a grant outside group that still justifies the
// permission with key k, or "".
func (s *session) keeper(ctx context.Context, k string, group []*result) (string, error) {
	ks, err := s.keepers(ctx, k, group, true)
	if err != nil || len(ks) == 0 {
		return "", err
	}
	return ks[0].ID, nil
}

// keepers returns the grants outside group that still justify the permission
// with key k, ordered by id: all of them, or only the first when first is set.
func (s *session) keepers(ctx context.Context, k string, group []*result, first bool) ([]*grant.Grant, error) {
	ids, err := s.e.Ledger.Holders(ctx, k, "")
	if err != nil {
		return nil, ledgerError{fmt.Errorf("reading the holders of %s from the ledger: %w", k, err)}
	}
	in := make(map[string]bool, len(group))
	for _, r := range group {
		in[r.g.ID] = true
	}
	sort.Strings(ids)
	var out []*grant.Grant
	for _, id := range ids {
		if in[id] {
			continue
		}
		h, err := s.e.Ledger.GetGrant(ctx, id)
		if errors.Is(err, ledger.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, ledgerError{fmt.Errorf("reading grant %s (a holder of %s) from the ledger: %w", id, k, err)}
		}
		ok, err := s.justifies(ctx, h)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, h)
			if first {
				break
			}
		}
	}
	return out, nil
}

// declaresAdmin reports whether a grant declares the wider form of its
// permission (PostgreSQL: WITH ADMIN OPTION).
func declaresAdmin(g *grant.Grant) bool {
	return g.Target.PostgreSQL != nil && g.Target.PostgreSQL.WithAdminOption
}

// narrow removes the admin option that ending grants of group declared, when
// keeper, which keeps the permission, does not declare it; then verifies that
// the target holds exactly what keeper declares. A failure fails the group's
// grants (they are retried like a failed revoke).
func (s *session) narrow(ctx context.Context, group []*result, keeper *grant.Grant) {
	err := func() error {
		n, ok := s.e.Target.(target.Narrower)
		if !ok {
			return fmt.Errorf("the target cannot remove the admin option of %s", keeper.Target)
		}
		if err := n.Narrow(ctx, keeper.Target); err != nil {
			return fmt.Errorf("removing the admin option of %s: %w", keeper.Target, err)
		}
		obs, err := s.e.Target.Inspect(ctx, keeper.Target)
		if err != nil {
			return fmt.Errorf("verifying %s after removing the admin option: %w", keeper.Target, err)
		}
		if obs.State != target.Present {
			return fmt.Errorf("after removing the admin option the target shows %s, want present without the option (%s)", obs.State, obs.Evidence)
		}
		for _, r := range group {
			r.narrowed, r.touched, r.evidence = true, true, evidenceJSON(obs, s.now)
		}
		return nil
	}()
	if err != nil {
		for _, r := range group {
			r.err = err
		}
	}
}

// revokeSpec is the spec the revoker applies: its own, ending the member's
// sessions if any grant ending with it on the same permission asked for it.
func revokeSpec(r *result) grant.Target {
	spec := r.g.Target
	if r.terminate && spec.PostgreSQL != nil && !spec.PostgreSQL.TerminateSessions {
		pg := *spec.PostgreSQL
		pg.TerminateSessions = true
		spec.PostgreSQL = &pg
	}
	return spec
}

// revokeAndVerify revokes every revoker's permission and inspects it, in
// batches per connection (connections in parallel). It sets touched, evidence
// and err on each.
func (s *session) revokeAndVerify(ctx context.Context, rs []*result) {
	byConn := map[string][]*result{}
	for _, r := range rs {
		c := r.g.Target.Connection()
		byConn[c] = append(byConn[c], r)
	}
	var wg sync.WaitGroup
	for conn, group := range byConn {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.revokeConn(ctx, conn, group)
		}()
	}
	wg.Wait()
}

func (s *session) revokeConn(ctx context.Context, conn string, rs []*result) {
	e := s.e
	specs := make([]grant.Target, len(rs))
	for i, r := range rs {
		specs[i] = revokeSpec(r)
	}
	errs := target.RevokeMany(ctx, e.Target, specs)
	var verify []*result
	for i, r := range rs {
		r.touched = true
		if errs[i] != nil {
			r.err = fmt.Errorf("revoke at %s failed: %w", r.g.Target, errs[i])
			continue
		}
		verify = append(verify, r)
	}
	vspecs := make([]grant.Target, len(verify))
	for i, r := range verify {
		vspecs[i] = r.g.Target
	}
	obs, ierrs := target.InspectMany(ctx, e.Target, vspecs)
	for i, r := range verify {
		switch {
		case ierrs[i] != nil:
			r.err = fmt.Errorf("revoke at %s reported done, but it could not be verified: %w", r.g.Target, ierrs[i])
		case obs[i].Holds():
			r.evidence = obs[i].Evidence
			r.err = fmt.Errorf("revoke at %s reported done, but inspection still sees the permission (%s): %s", r.g.Target, obs[i].State, obs[i].Evidence)
		default:
			r.evidence = evidenceJSON(obs[i], s.now)
		}
	}
	e.log().Debug("revoked and inspected a batch", "connection", conn, "grants", len(rs))
}

// evidenceJSON is the verification evidence recorded in the history.
func evidenceJSON(o target.Observation, now time.Time) string {
	at := o.CheckedAt
	if at.IsZero() {
		at = now
	}
	// The target's own evidence is usually JSON already: embed it as is, so the
	// record reads as one document rather than a string of escaped quotes.
	var ev any
	if o.Evidence != "" {
		if json.Valid([]byte(o.Evidence)) {
			ev = json.RawMessage(o.Evidence)
		} else {
			ev = o.Evidence
		}
	}
	b, _ := json.Marshal(struct {
		State     target.State `json:"state"`
		CheckedAt time.Time    `json:"checked_at"`
		Evidence  any          `json:"evidence,omitempty"`
	}{o.State, at.UTC(), ev})
	return string(b)
}

// verifiedAt is when the verifying inspection ran.
func verifiedAt(evidence string, now time.Time) time.Time {
	var v struct {
		CheckedAt time.Time `json:"checked_at"`
	}
	if json.Unmarshal([]byte(evidence), &v) == nil && !v.CheckedAt.IsZero() {
		return v.CheckedAt
	}
	return now
}

// prepare computes the record of one claimed grant: the grant as it is to be
// written (a copy) and its history entries.
func (s *session) prepare(r *result, actor grant.Actor) (*grant.Grant, []ledger.Entry, error) {
	e := s.e
	ng := *r.g
	now := s.now
	var entries []ledger.Entry
	entry := func(t ledger.EntryType, detail string) {
		entries = append(entries, ledger.Entry{GrantID: ng.ID, Type: t, At: now, Actor: actor, Detail: detail})
	}
	switch {
	case r.keptBy != "" && r.err == nil:
		if err := ng.MarkRevoked(r.reason, actor, now); err != nil {
			return nil, nil, err
		}
		ng.KeptBy = r.keptBy
		ng.Drift = grant.DriftNone
		if r.narrowed {
			ng.VerifiedAt = verifiedAt(r.evidence, now)
			entry(ledger.EntryNarrowed, r.evidence)
			entry(ledger.EntryKept, fmt.Sprintf("ended (%s); the permission %s is still held by grant %s: only the admin option this grant declared was removed", r.reason, ng.TargetKey(), r.keptBy))
		} else {
			entry(ledger.EntryKept, fmt.Sprintf("ended (%s); the permission %s is still held by grant %s, so the target was not touched", r.reason, ng.TargetKey(), r.keptBy))
		}
	case r.err == nil:
		ng.RevokeAttempts++
		if err := ng.MarkRevoked(r.reason, actor, now); err != nil {
			return nil, nil, err
		}
		ng.KeptBy = ""
		ng.Drift = grant.DriftNone
		ng.VerifiedAt = verifiedAt(r.evidence, now)
		entry(ledger.EntryRevoked, r.evidence)
	default:
		msg := redact(r.err.Error())
		if ng.Status == grant.StatusActive {
			if err := ng.MarkDue(r.reason); err != nil {
				return nil, nil, err
			}
		}
		if ng.EndReason == grant.ReasonNone {
			ng.EndReason = r.reason
		}
		ng.RevokeAttempts++
		ng.LastError = msg
		if ng.RevokeAttempts >= e.maxAttempts() {
			if err := ng.MarkIrrevocable(msg); err != nil {
				return nil, nil, err
			}
			ng.NextAttemptAt = time.Time{}
			entry(ledger.EntryRevokeFailed, fmt.Sprintf("attempt %d of %d: %s", ng.RevokeAttempts, e.maxAttempts(), msg))
			entry(ledger.EntryIrrevocable, fmt.Sprintf("revocation failed %d times; retried only on request (eventaccess-sweeper retry %s)", ng.RevokeAttempts, ng.ID))
		} else {
			ng.NextAttemptAt = now.Add(e.backoff(ng.RevokeAttempts))
			entry(ledger.EntryRevokeFailed, fmt.Sprintf("attempt %d of %d: %s; next attempt after %s", ng.RevokeAttempts, e.maxAttempts(), msg, ng.NextAttemptAt.Format(time.RFC3339)))
		}
	}
	return &ng, entries, nil
}

// recorded finishes one grant after its record was written (err nil) or not.
func (s *session) recorded(r *result, ng *grant.Grant, err error) {
	e := s.e
	if err != nil {
		if errors.Is(err, ledger.ErrConflict) {
			r.err = fmt.Errorf("grant %s changed in the ledger while it was being ended (its claim expired and another process took it over?); the next run finishes it", ng.ID)
			return
		}
		r.err = ledgerError{fmt.Errorf("recording the end of grant %s in the ledger: %w", ng.ID, err)}
		return
	}
	*r.g = *ng
	switch {
	case ng.Status != grant.StatusRevoked:
		r.err = errors.New(ng.LastError)
		e.log().Warn("revoke failed", "grant", ng.ID, "event", ng.Event.ID, "target", ng.TargetKey(),
			"attempt", ng.RevokeAttempts, "status", ng.Status, "error", ng.LastError)
	case r.keptBy != "":
		e.log().Info("grant ended, permission kept by another grant", "grant", ng.ID, "event", ng.Event.ID,
			"target", ng.TargetKey(), "end_reason", ng.EndReason, "kept_by", r.keptBy)
	default:
		e.log().Info("grant revoked and verified", "grant", ng.ID, "event", ng.Event.ID, "target", ng.TargetKey(),
			"end_reason", ng.EndReason)
	}
}

var (
	reURLUserinfo = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@]*@`)
	rePassword    = regexp.MustCompile(`(?i)(password|passwd|pwd|secret|token)(\s*[=:]\s*)('[^']*'|"[^"]*"|\S+)`)
)

// redact removes anything that looks like a credential from an error message
// before it is recorded or printed.
func redact(s string) string {
	s = reURLUserinfo.ReplaceAllString(s, "${1}<redacted>@")
	s = rePassword.ReplaceAllString(s, "${1}${2}<redacted>")
	return s
}

// groupByKey splits items into groups of equal key, in the order each key
// first appears.
func groupByKey[T any](items []T, key func(T) string) [][]T {
	index := map[string]int{}
	var groups [][]T
	for _, it := range items {
		k := key(it)
		i, ok := index[k]
		if !ok {
			i = len(groups)
			index[k] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], it)
	}
	return groups
}
