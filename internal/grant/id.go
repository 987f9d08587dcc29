package grant

import (
	"time"

	"github.com/oklog/ulid/v2"
)

// NewID returns a new sortable grant id (a ULID) stamped with now.
func NewID(now time.Time) string {
	return ulid.MustNew(ulid.Timestamp(now), ulid.DefaultEntropy()).String()
}

// ValidID reports whether s is a well-formed grant id.
func ValidID(s string) bool {
	_, err := ulid.ParseStrict(s)
	return err == nil
}
