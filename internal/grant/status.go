package grant

import "fmt"

// transitions lists the status changes the machine allows.
//
//	active      -> active (renewed/extended), due, revoked (terraform destroy)
//	due         -> active (renewed while the event is open), due (retry), revoked, irrevocable
//	irrevocable -> due (retry on request), revoked
//	revoked     -> active only by an explicit renewal (Renew) while the event is
//	               open; the ended period stays in the history for ever
var transitions = map[Status][]Status{
	StatusActive:      {StatusActive, StatusDue, StatusRevoked},
	StatusDue:         {StatusActive, StatusDue, StatusRevoked, StatusIrrevocable},
	StatusIrrevocable: {StatusActive, StatusDue, StatusRevoked, StatusIrrevocable},
	StatusRevoked:     {StatusActive},
}

// ErrInvalidTransition is returned for a status change the machine forbids.
type ErrInvalidTransition struct {
	From, To Status
}

func (e ErrInvalidTransition) Error() string {
	if e.From == StatusRevoked {
		return fmt.Sprintf("grant is %s: an ended grant never comes back; declare a new grant (a new event) instead", e.From)
	}
	return fmt.Sprintf("grant status cannot change from %q to %q", e.From, e.To)
}

// CanTransition reports whether from -> to is allowed.
func CanTransition(from, to Status) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// MarkDue moves an active grant to due with the reason it must end.
func (g *Grant) MarkDue(reason EndReason) error {
	if !CanTransition(g.Status, StatusDue) {
		return ErrInvalidTransition{g.Status, StatusDue}
	}
	g.Status = StatusDue
	g.EndReason = reason
	return nil
}

// MarkRevoked ends the grant: it becomes a tombstone.
func (g *Grant) MarkRevoked(reason EndReason, by Actor, at Time) error {
	if !CanTransition(g.Status, StatusRevoked) {
		return ErrInvalidTransition{g.Status, StatusRevoked}
	}
	g.Status = StatusRevoked
	g.EndReason = reason
	g.EndedAt = at
	g.RevokedBy = by
	g.NextAttemptAt = Time{}
	g.LastError = ""
	return nil
}

// MarkIrrevocable records that revocation failed too many times.
func (g *Grant) MarkIrrevocable(lastErr string) error {
	if !CanTransition(g.Status, StatusIrrevocable) {
		return ErrInvalidTransition{g.Status, StatusIrrevocable}
	}
	g.Status = StatusIrrevocable
	g.LastError = lastErr
	return nil
}

// Renew sets a new expiry and makes the grant active again. On an ended grant
// this is an explicit renewal: the caller re-grants at the target and sets
// GrantedAt; it must first check the event is still open.
func (g *Grant) Renew(expiresAt Time) error {
	if !CanTransition(g.Status, StatusActive) {
		return ErrInvalidTransition{g.Status, StatusActive}
	}
	g.Status = StatusActive
	g.ExpiresAt = expiresAt
	g.EndReason = ReasonNone
	g.EndedAt = Time{}
	g.RevokedBy = ""
	g.KeptBy = ""
	g.Drift = DriftNone
	g.RevokeAttempts = 0
	g.LastError = ""
	g.NextAttemptAt = Time{}
	return nil
}
