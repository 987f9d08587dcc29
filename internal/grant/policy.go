package grant

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Time is time.Time; the alias keeps signatures short.
type Time = time.Time

// DefaultMaxDuration caps every grant unless the provider says otherwise.
const DefaultMaxDuration = 168 * time.Hour

// Policy holds the rules every grant must satisfy.
type Policy struct {
	// MaxDuration caps the time from granting to expiry.
	MaxDuration time.Duration
}

// DefaultPolicy is the policy with default settings.
func DefaultPolicy() Policy { return Policy{MaxDuration: DefaultMaxDuration} }

// Expiry is the requested lifetime: exactly one of Duration or At is set.
type Expiry struct {
	Duration time.Duration
	At       time.Time
}

// Resolve computes the hard expiry for a grant made at now and checks it
// against the policy.
func (p Policy) Resolve(e Expiry, now time.Time) (time.Time, error) {
	hasDur, hasAt := e.Duration != 0, !e.At.IsZero()
	switch {
	case hasDur && hasAt:
		return time.Time{}, errors.New("set exactly one of duration or expires_at, not both")
	case !hasDur && !hasAt:
		return time.Time{}, errors.New("set exactly one of duration or expires_at: no grant is open-ended")
	}
	var at time.Time
	if hasDur {
		if e.Duration < 0 {
			return time.Time{}, fmt.Errorf("duration %s is negative; give a positive duration such as \"72h\"", e.Duration)
		}
		at = now.Add(e.Duration)
	} else {
		at = e.At.UTC()
	}
	if !at.After(now) {
		return time.Time{}, fmt.Errorf("expires_at %s is not in the future (now is %s); choose a later time", at.Format(time.RFC3339), now.Format(time.RFC3339))
	}
	if p.MaxDuration > 0 && at.Sub(now) > p.MaxDuration {
		return time.Time{}, fmt.Errorf("the grant would last %s, longer than max_duration %s; shorten it or raise the provider's max_duration", FormatDuration(at.Sub(now)), FormatDuration(p.MaxDuration))
	}
	return at, nil
}

// CheckDuration checks a requested duration against the policy without a clock.
func (p Policy) CheckDuration(d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("duration must be positive, got %s", d)
	}
	if p.MaxDuration > 0 && d > p.MaxDuration {
		return fmt.Errorf("duration %s is longer than max_duration %s; shorten it or raise the provider's max_duration", FormatDuration(d), FormatDuration(p.MaxDuration))
	}
	return nil
}

// ValidateRequest checks the fields a new grant must have, apart from the expiry.
func ValidateRequest(g *Grant) error {
	var errs []error
	if strings.TrimSpace(g.Owner) == "" {
		errs = append(errs, errors.New("owner is required: name who answers for this access (an email or team handle)"))
	}
	if strings.TrimSpace(g.Event.ID) == "" {
		errs = append(errs, errors.New("event.id is required: name the business event that justifies this access (for example CHG-2291)"))
	}
	if g.Event.Kind != "" && !ValidKind(string(g.Event.Kind)) {
		errs = append(errs, fmt.Errorf("event.kind %q is not one of %s", g.Event.Kind, strings.Join(EventKinds(), ", ")))
	}
	if err := g.Target.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// FormatDuration prints a duration the way a user wrote it: 72h, 90m, 1h30m.
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
