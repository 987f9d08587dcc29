// Package clock is the single source of "now" for eventaccess. Code below the
// entry points never calls time.Now: it asks a Clock, so tests and the sweeper's
// --at flag can move time without sleeping.
package clock

import (
	"sync"
	"time"
)

// Clock tells the current time.
type Clock interface {
	Now() time.Time
}

// Real is the wall clock, in UTC.
type Real struct{}

// Now returns the wall-clock time in UTC, truncated to microseconds so that
// values survive a round trip through the ledger unchanged.
func (Real) Now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// Fixed is a clock that always answers the same instant (the sweeper's --at).
type Fixed time.Time

// Now returns the fixed instant.
func (f Fixed) Now() time.Time { return time.Time(f).UTC() }

// Fake is a settable clock for tests. The zero value is not usable: use NewFake.
type Fake struct {
	mu  sync.Mutex
	now time.Time
}

// NewFake returns a fake clock set to t.
func NewFake(t time.Time) *Fake { return &Fake{now: t.UTC()} }

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// Set moves the fake clock to t.
func (f *Fake) Set(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = t.UTC()
}

// Advance moves the fake clock forward by d.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}
