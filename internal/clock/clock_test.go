package clock

import (
	"testing"
	"time"
)

func TestFake(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.FixedZone("X", 3600))
	f := NewFake(t0)
	if !f.Now().Equal(t0) || f.Now().Location() != time.UTC {
		t.Fatalf("Now = %s", f.Now())
	}
	f.Advance(time.Hour)
	if !f.Now().Equal(t0.Add(time.Hour)) {
		t.Fatalf("Advance: %s", f.Now())
	}
	f.Set(t0)
	if !f.Now().Equal(t0) {
		t.Fatalf("Set: %s", f.Now())
	}
	if got := (Fixed(t0)).Now(); !got.Equal(t0) || got.Location() != time.UTC {
		t.Fatalf("Fixed: %s", got)
	}
	if r := (Real{}).Now(); r.Location() != time.UTC || r.Nanosecond()%1000 != 0 {
		t.Fatalf("Real must be UTC, microseconds: %s", r)
	}
}
