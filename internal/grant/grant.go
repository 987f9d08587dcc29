// Package grant is the domain of eventaccess: a grant is one permission, at one
// target, for one business event, owned by one accountable owner, with one hard
// expiry. It knows nothing of Terraform, SQL or HTTP.
package grant

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// EventKind classifies the business event that justifies a grant.
type EventKind string

// The event kinds a grant may name.
const (
	KindIncident   EventKind = "incident"
	KindMigration  EventKind = "migration"
	KindRelease    EventKind = "release"
	KindDRTest     EventKind = "dr_test"
	KindOnboarding EventKind = "onboarding"
	KindProject    EventKind = "project"
	KindBackup     EventKind = "backup"
	KindOther      EventKind = "other"
)

// EventKinds lists every valid event kind, in documentation order.
func EventKinds() []string {
	return []string{
		string(KindIncident), string(KindMigration), string(KindRelease), string(KindDRTest),
		string(KindOnboarding), string(KindProject), string(KindBackup), string(KindOther),
	}
}

// ValidKind reports whether k is a known event kind.
func ValidKind(k string) bool {
	for _, v := range EventKinds() {
		if v == k {
			return true
		}
	}
	return false
}

// Event is the business event that justifies a grant.
type Event struct {
	ID   string
	Kind EventKind
	URL  string
}

// Status is where a grant stands in its life.
type Status string

// Grant statuses (see DESIGN.md, "Status").
const (
	StatusActive      Status = "active"
	StatusDue         Status = "due"
	StatusRevoked     Status = "revoked"
	StatusIrrevocable Status = "irrevocable"
)

// Holds reports whether a grant in this status still counts as a holder of its
// permission (it has not been revoked yet).
func (s Status) Holds() bool { return s == StatusActive || s == StatusDue || s == StatusIrrevocable }

// Ended reports whether the grant is a tombstone.
func (s Status) Ended() bool { return s == StatusRevoked }

// EndReason says why a grant ended.
type EndReason string

// End reasons.
const (
	ReasonNone        EndReason = ""
	ReasonExpired     EndReason = "expired"
	ReasonEventClosed EndReason = "event_closed"
	ReasonDestroyed   EndReason = "destroyed"
	ReasonDrift       EndReason = "drift"
	ReasonManual      EndReason = "manual"
)

// Actor is who performed a change.
type Actor string

// Actors that write to the ledger.
const (
	ActorTerraform Actor = "terraform"
	ActorSweeper   Actor = "sweeper"
	ActorCLI       Actor = "cli"
)

// Drift is a difference between the ledger and the target.
type Drift string

// Drift values.
const (
	DriftNone Drift = ""
	// DriftMissing: the grant is active but the permission is absent at the target.
	DriftMissing Drift = "missing"
	// DriftWidened: the member holds more than the grant declared (e.g. ADMIN OPTION).
	DriftWidened Drift = "widened"
	// DriftLingering: the grant ended but the permission is present again at the target.
	DriftLingering Drift = "lingering"
)

// TargetKind names a kind of target system.
type TargetKind string

// Target kinds.
const (
	TargetPostgreSQL TargetKind = "postgresql"
)

// Target is the permission a grant applies: exactly one kind is set.
type Target struct {
	PostgreSQL *PostgreSQLTarget `json:"postgresql,omitempty"`
}

// Kind returns the kind of the target, or "" when none is set.
func (t Target) Kind() TargetKind {
	if t.PostgreSQL != nil {
		return TargetPostgreSQL
	}
	return ""
}

// Connection returns the named connection the target is reached through.
func (t Target) Connection() string {
	if t.PostgreSQL != nil {
		return t.PostgreSQL.Connection
	}
	return ""
}

// Key is the canonical identity of the permission. Two grants with the same key
// hold the same permission. Every part is escaped, so no part can forge a
// separator.
func (t Target) Key() string {
	switch {
	case t.PostgreSQL != nil:
		return t.PostgreSQL.Key()
	default:
		return ""
	}
}

// String is a short human-readable description (no secrets: targets hold none).
func (t Target) String() string {
	if t.PostgreSQL != nil {
		return t.PostgreSQL.String()
	}
	return "<no target>"
}

// Validate checks the target has exactly one kind and its fields are complete.
func (t Target) Validate() error {
	if t.PostgreSQL == nil {
		return errors.New("target: exactly one target kind must be set (postgresql)")
	}
	return t.PostgreSQL.Validate()
}

// PostgreSQLTarget is a role membership: GRANT role TO member.
type PostgreSQLTarget struct {
	Connection        string `json:"connection"`
	Role              string `json:"role"`
	Member            string `json:"member"`
	WithAdminOption   bool   `json:"with_admin_option,omitempty"`
	TerminateSessions bool   `json:"terminate_sessions,omitempty"`
}

// Key is postgresql/<connection>/<role>/<member>, each part path-escaped.
// Options such as ADMIN OPTION are not part of the identity: two grants of the
// same role to the same member share one membership.
func (p PostgreSQLTarget) Key() string {
	return "postgresql/" + url.PathEscape(p.Connection) + "/" + url.PathEscape(p.Role) + "/" + url.PathEscape(p.Member)
}

func (p PostgreSQLTarget) String() string {
	s := fmt.Sprintf("postgresql %s: role %q to member %q", p.Connection, p.Role, p.Member)
	if p.WithAdminOption {
		s += " with admin option"
	}
	return s
}

// Validate checks the fields of a PostgreSQL target.
func (p PostgreSQLTarget) Validate() error {
	var errs []error
	if err := ValidConnectionName(p.Connection); err != nil {
		errs = append(errs, err)
	}
	if err := validIdentifier("role", p.Role); err != nil {
		errs = append(errs, err)
	}
	if err := validIdentifier("member", p.Member); err != nil {
		errs = append(errs, err)
	}
	if p.Role != "" && p.Role == p.Member {
		errs = append(errs, fmt.Errorf("target.postgresql: role and member are the same (%q): a role cannot be granted to itself", p.Role))
	}
	return errors.Join(errs...)
}

// MaxIdentifierLength is PostgreSQL's NAMEDATALEN-1 in bytes.
const MaxIdentifierLength = 63

func validIdentifier(what, v string) error {
	switch {
	case v == "":
		return fmt.Errorf("target.postgresql.%s must not be empty", what)
	case len(v) > MaxIdentifierLength:
		return fmt.Errorf("target.postgresql.%s %q is %d bytes long; PostgreSQL identifiers are at most %d bytes", what, v, len(v), MaxIdentifierLength)
	case strings.ContainsRune(v, 0):
		return fmt.Errorf("target.postgresql.%s must not contain a NUL character", what)
	}
	return nil
}

// ValidConnectionName checks a connection name: non-empty, letters, digits, '_' and '-'.
func ValidConnectionName(name string) error {
	if name == "" {
		return errors.New("connection name must not be empty")
	}
	for _, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-'
		if !ok {
			return fmt.Errorf("connection name %q may contain only letters, digits, '_' and '-'", name)
		}
	}
	return nil
}

// ConnectionEnvVar is the environment variable that holds the URL of a named
// connection that is not configured explicitly: EVENTACCESS_CONNECTION_<NAME>,
// the name upper-cased and every character other than A-Z and 0-9 as '_'.
func ConnectionEnvVar(name string) string {
	var b strings.Builder
	b.WriteString("EVENTACCESS_CONNECTION_")
	for _, r := range strings.ToUpper(name) {
		if r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// Grant is one permission held for one event.
type Grant struct {
	ID            string
	Owner         string
	Justification string
	Event         Event
	Target        Target
	AdoptExisting bool

	// Requested is the duration asked for ("" when an absolute expiry was given).
	Requested time.Duration
	GrantedAt time.Time
	ExpiresAt time.Time

	Status         Status
	EndReason      EndReason
	EndedAt        time.Time // zero while the grant holds
	RevokedBy      Actor     // "" while the grant holds
	VerifiedAt     time.Time // last successful verification at the target
	Drift          Drift
	RevokeAttempts int
	LastError      string
	NextAttemptAt  time.Time // zero: as soon as due
	// KeptBy names the grant that still held the permission when this one ended
	// (the target was then not revoked).
	KeptBy string

	// Version is the ledger's compare-and-swap counter.
	Version int64
}

// TargetKey is the canonical identity of the grant's permission.
func (g *Grant) TargetKey() string { return g.Target.Key() }

// Expired reports whether the grant's hard expiry has passed at now.
func (g *Grant) Expired(now time.Time) bool { return !now.Before(g.ExpiresAt) }
