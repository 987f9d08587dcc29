// Package target is the one interface eventaccess uses for "a permission
// somewhere". Each kind of target system lives in a sub-package.
package target

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/eventaccess/terraform-provider-eventaccess/internal/grant"
)

// State is what an inspection saw at the target.
type State string

// Observed states.
const (
	// Present: the member holds exactly the declared permission.
	Present State = "present"
	// Absent: the member does not hold the permission.
	Absent State = "absent"
	// Widened: the member holds the permission and more than declared
	// (for PostgreSQL: ADMIN OPTION that was not granted).
	Widened State = "widened"
)

// Observation is the evidence of one inspection.
type Observation struct {
	State     State
	CheckedAt time.Time
	// Evidence says what was checked and what was found, for the ledger. No secrets.
	Evidence string
}

// Holds reports whether the member holds the permission at all.
func (o Observation) Holds() bool { return o.State == Present || o.State == Widened }

// ErrNotFound is wrapped by errors about an object (role, member, ...) that does
// not exist at the target.
var ErrNotFound = errors.New("does not exist at the target")

// Target applies, removes and inspects one kind of permission.
type Target interface {
	// Check verifies the spec can be applied: the connection resolves and the
	// objects it names exist. It changes nothing.
	Check(ctx context.Context, spec grant.Target) error
	// Grant applies the permission. Idempotent.
	Grant(ctx context.Context, spec grant.Target) error
	// Revoke removes the permission. Idempotent: already absent is success.
	Revoke(ctx context.Context, spec grant.Target) error
	// Inspect observes the permission at the target.
	Inspect(ctx context.Context, spec grant.Target) (Observation, error)
	// Close releases connections.
	Close() error
}

// Resolver maps a connection name to its URL (a secret: never log or store it).
type Resolver interface {
	Resolve(name string) (string, error)
}

// ResolverFunc adapts a function to Resolver.
type ResolverFunc func(name string) (string, error)

// Resolve calls f.
func (f ResolverFunc) Resolve(name string) (string, error) { return f(name) }

// Mux dispatches to the target of the spec's kind.
type Mux map[grant.TargetKind]Target

func (m Mux) pick(spec grant.Target) (Target, error) {
	k := spec.Kind()
	t, ok := m[k]
	if !ok {
		return nil, fmt.Errorf("no target driver for kind %q", k)
	}
	return t, nil
}

// Check dispatches to the kind's target.
func (m Mux) Check(ctx context.Context, spec grant.Target) error {
	t, err := m.pick(spec)
	if err != nil {
		return err
	}
	return t.Check(ctx, spec)
}

// Grant dispatches to the kind's target.
func (m Mux) Grant(ctx context.Context, spec grant.Target) error {
	t, err := m.pick(spec)
	if err != nil {
		return err
	}
	return t.Grant(ctx, spec)
}

// Revoke dispatches to the kind's target.
func (m Mux) Revoke(ctx context.Context, spec grant.Target) error {
	t, err := m.pick(spec)
	if err != nil {
		return err
	}
	return t.Revoke(ctx, spec)
}

// Inspect dispatches to the kind's target.
func (m Mux) Inspect(ctx context.Context, spec grant.Target) (Observation, error) {
	t, err := m.pick(spec)
	if err != nil {
		return Observation{}, err
	}
	return t.Inspect(ctx, spec)
}

// Close closes every target.
func (m Mux) Close() error {
	var errs []error
	for _, t := range m {
		errs = append(errs, t.Close())
	}
	return errors.Join(errs...)
}

var _ Target = Mux(nil)

// Batch is implemented by targets that can revoke or inspect many permissions in
// few round trips (the sweeper uses it when available). Results are index-aligned
// with specs; a nil error means that spec succeeded.
type Batch interface {
	RevokeMany(ctx context.Context, specs []grant.Target) []error
	InspectMany(ctx context.Context, specs []grant.Target) ([]Observation, []error)
}

// RevokeMany revokes each spec, in batches where the kind's target supports it.
func RevokeMany(ctx context.Context, t Target, specs []grant.Target) []error {
	if b, ok := t.(Batch); ok {
		return b.RevokeMany(ctx, specs)
	}
	errs := make([]error, len(specs))
	for i, s := range specs {
		errs[i] = t.Revoke(ctx, s)
	}
	return errs
}

// InspectMany inspects each spec, in batches where the kind's target supports it.
func InspectMany(ctx context.Context, t Target, specs []grant.Target) ([]Observation, []error) {
	if b, ok := t.(Batch); ok {
		return b.InspectMany(ctx, specs)
	}
	obs := make([]Observation, len(specs))
	errs := make([]error, len(specs))
	for i, s := range specs {
		obs[i], errs[i] = t.Inspect(ctx, s)
	}
	return obs, errs
}

// RevokeMany groups specs by kind and uses each kind's batch support.
func (m Mux) RevokeMany(ctx context.Context, specs []grant.Target) []error {
	errs := make([]error, len(specs))
	m.perKind(specs, errs, func(t Target, sub []grant.Target, idx []int) {
		for j, err := range RevokeMany(ctx, t, sub) {
			errs[idx[j]] = err
		}
	})
	return errs
}

// InspectMany groups specs by kind and uses each kind's batch support.
func (m Mux) InspectMany(ctx context.Context, specs []grant.Target) ([]Observation, []error) {
	obs := make([]Observation, len(specs))
	errs := make([]error, len(specs))
	m.perKind(specs, errs, func(t Target, sub []grant.Target, idx []int) {
		o, e := InspectMany(ctx, t, sub)
		for j, i := range idx {
			obs[i], errs[i] = o[j], e[j]
		}
	})
	return obs, errs
}

// perKind calls f once per target kind with that kind's specs and their
// indexes in specs; specs of a kind without a driver get an error in errs.
func (m Mux) perKind(specs []grant.Target, errs []error, f func(t Target, sub []grant.Target, idx []int)) {
	byKind := map[grant.TargetKind][]int{}
	for i, s := range specs {
		byKind[s.Kind()] = append(byKind[s.Kind()], i)
	}
	for kind, idx := range byKind {
		t, ok := m[kind]
		if !ok {
			for _, i := range idx {
				errs[i] = fmt.Errorf("no target driver for kind %q", kind)
			}
			continue
		}
		sub := make([]grant.Target, len(idx))
		for j, i := range idx {
			sub[j] = specs[i]
		}
		f(t, sub, idx)
	}
}

var _ Batch = Mux(nil)

// Narrower is implemented by targets where a permission can be held in a wider
// form than declared (PostgreSQL: WITH ADMIN OPTION). Narrow removes what the
// member holds beyond spec and keeps the permission itself; it is idempotent.
// The sweeper uses it when a grant that declared the wider form ends while a
// grant that declares the narrower form keeps the permission.
type Narrower interface {
	Narrow(ctx context.Context, spec grant.Target) error
}

// Narrow dispatches to the kind's target when it can narrow.
func (m Mux) Narrow(ctx context.Context, spec grant.Target) error {
	t, err := m.pick(spec)
	if err != nil {
		return err
	}
	n, ok := t.(Narrower)
	if !ok {
		return fmt.Errorf("target kind %q cannot narrow a permission", spec.Kind())
	}
	return n.Narrow(ctx, spec)
}

var _ Narrower = Mux(nil)
