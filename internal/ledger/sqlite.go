package ledger

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/eventaccess/terraform-provider-eventaccess/internal/grant"
)

// SQLiteStore is the embedded ledger: one SQLite file in WAL mode, shared
// safely by several processes (the provider and one or more sweepers). Every
// write runs in a BEGIN IMMEDIATE transaction under a busy timeout, so writers
// queue instead of failing; within one process writes are also serialised by
// the store itself.
type SQLiteStore struct {
	db   *sql.DB
	path string
	// wmu serialises this process's writers (a channel so waiting honours ctx).
	wmu chan struct{}
}

var _ Store = (*SQLiteStore)(nil)

// OpenSQLite opens (creating if needed) the SQLite ledger named by dsn and
// applies the embedded migrations. See Open for the accepted forms of dsn.
func OpenSQLite(ctx context.Context, dsn string) (*SQLiteStore, error) {
	d, err := parseDSN(dsn)
	if err != nil {
		return nil, err
	}
	ddsn, err := d.driverDSN()
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", ddsn)
	if err != nil {
		return nil, fmt.Errorf("ledger %s: %w", d.path, err)
	}
	if d.memory {
		// Every connection to :memory: is a separate database: keep one.
		db.SetMaxOpenConns(1)
	}
	s := &SQLiteStore{db: db, path: d.path, wmu: make(chan struct{}, 1)}
	if err := s.write(ctx, func(tx *sql.Tx) error { return migrate(ctx, tx) }); err != nil {
		db.Close()
		return nil, openError(d, err)
	}
	return s, nil
}

// openError turns a failure to open or migrate into a message that says what
// is wrong with the ledger file.
func openError(d sqliteDSN, err error) error {
	path := d.path
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("ledger %s: %w", path, err)
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM, sqlite3.SQLITE_AUTH:
			return notWritable(d, err)
		case sqlite3.SQLITE_NOTADB:
			return fmt.Errorf("ledger %s is not a SQLite database (%w): point %s at an eventaccess ledger file or at a new path", path, err, EnvLedger)
		case sqlite3.SQLITE_CORRUPT:
			return fmt.Errorf("ledger %s is corrupt (%w): restore it from a backup", path, err)
		}
	}
	return fmt.Errorf("ledger %s: %w", path, err)
}

// Path returns the file the store was opened on, as given.
func (s *SQLiteStore) Path() string { return s.path }

// Close closes the database handle.
func (s *SQLiteStore) Close() error { return s.db.Close() }

// isBusy reports whether err is SQLite's "database is locked/busy".
func isBusy(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		c := se.Code() & 0xff
		return c == sqlite3.SQLITE_BUSY || c == sqlite3.SQLITE_LOCKED
	}
	return false
}

// retry runs fn again, with a short growing pause, while it fails with
// SQLITE_BUSY (which the busy timeout makes rare, but a lock held across the
// timeout, or a WAL recovery, can still produce).
func retry(ctx context.Context, fn func() error) error {
	const attempts = 8
	var err error
	for i := 0; i < attempts; i++ {
		if err = fn(); err == nil || !isBusy(err) {
			return err
		}
		t := time.NewTimer(time.Duration(i+1) * 25 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (while waiting for the ledger lock: %w)", ctx.Err(), err)
		case <-t.C:
		}
	}
	return fmt.Errorf("the ledger stayed locked by another process: %w; check for a stuck eventaccess process", err)
}

// write runs fn in a BEGIN IMMEDIATE transaction and commits it, retrying the
// whole transaction on SQLITE_BUSY. fn must only touch the database: it may
// run more than once. Side effects on the caller's values belong after write.
func (s *SQLiteStore) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	select {
	case s.wmu <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.wmu }()
	return retry(ctx, func() error {
		tx, err := s.db.BeginTx(ctx, nil) // BEGIN IMMEDIATE: _txlock=immediate
		if err != nil {
			return err
		}
		if err := fn(tx); err != nil {
			if rbErr := tx.Rollback(); rbErr != nil && !errors.Is(rbErr, sql.ErrTxDone) {
				return errors.Join(err, fmt.Errorf("rollback: %w", rbErr))
			}
			return err
		}
		return tx.Commit()
	})
}

// micros stores t as unix microseconds UTC; the zero time is NULL.
func micros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

// fromMicros is the inverse of micros.
func fromMicros(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.UnixMicro(n.Int64).UTC()
}

// grantColumns is the column list scanGrant reads, in order.
const grantColumns = `id, owner, justification, event_id, event_kind, event_url, target_json,
	adopt_existing, requested, granted_at, expires_at, status, end_reason, ended_at, revoked_by,
	verified_at, drift, revoke_attempts, last_error, next_attempt_at, kept_by, version`

type rowScanner interface{ Scan(dest ...any) error }

func scanGrant(r rowScanner) (*grant.Grant, error) {
	var (
		g                                                       grant.Grant
		kind, targetJSON, status, reason, revokedBy, drift      string
		requested                                               int64
		adopt                                                   bool
		grantedAt, expiresAt, endedAt, verifiedAt, nextAttempts sql.NullInt64
	)
	if err := r.Scan(&g.ID, &g.Owner, &g.Justification, &g.Event.ID, &kind, &g.Event.URL, &targetJSON,
		&adopt, &requested, &grantedAt, &expiresAt, &status, &reason, &endedAt, &revokedBy,
		&verifiedAt, &drift, &g.RevokeAttempts, &g.LastError, &nextAttempts, &g.KeptBy, &g.Version); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(targetJSON), &g.Target); err != nil {
		return nil, fmt.Errorf("grant %s: the stored target is not valid JSON (%w); the ledger row was changed outside eventaccess", g.ID, err)
	}
	g.Event.Kind = grant.EventKind(kind)
	g.AdoptExisting = adopt
	g.Requested = time.Duration(requested)
	g.GrantedAt = fromMicros(grantedAt)
	g.ExpiresAt = fromMicros(expiresAt)
	g.Status = grant.Status(status)
	g.EndReason = grant.EndReason(reason)
	g.EndedAt = fromMicros(endedAt)
	g.RevokedBy = grant.Actor(revokedBy)
	g.VerifiedAt = fromMicros(verifiedAt)
	g.Drift = grant.Drift(drift)
	g.NextAttemptAt = fromMicros(nextAttempts)
	return &g, nil
}

func (s *SQLiteStore) queryGrants(ctx context.Context, query string, args ...any) ([]*grant.Grant, error) {
	var out []*grant.Grant
	err := retry(ctx, func() error {
		out = nil
		rows, err := s.db.QueryContext(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			g, err := scanGrant(rows)
			if err != nil {
				return err
			}
			out = append(out, g)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("ledger %s: %w", s.path, err)
	}
	return out, nil
}

// grantValues returns the stored form of g's fields, in the order of the
// grants columns id .. kept_by used by insert and update.
func grantValues(g *grant.Grant) ([]any, error) {
	tj, err := json.Marshal(g.Target)
	if err != nil {
		return nil, fmt.Errorf("grant %s: cannot encode the target: %w", g.ID, err)
	}
	return []any{
		g.ID, g.Owner, g.Justification, g.Event.ID, string(g.Event.Kind), g.Event.URL,
		string(g.Target.Kind()), string(tj), g.Target.Key(), g.Target.Connection(),
		g.AdoptExisting, int64(g.Requested), micros(g.GrantedAt), micros(g.ExpiresAt),
		string(g.Status), string(g.EndReason), micros(g.EndedAt), string(g.RevokedBy),
		micros(g.VerifiedAt), string(g.Drift), g.RevokeAttempts, g.LastError,
		micros(g.NextAttemptAt), g.KeptBy,
	}, nil
}

func checkGrant(g *grant.Grant) error {
	switch {
	case g == nil:
		return errors.New("ledger: nil grant")
	case g.ID == "":
		return errors.New("ledger: the grant has no id; set it (grant.NewID) before writing it")
	case g.Event.ID == "":
		return fmt.Errorf("ledger: grant %s has no event id; every grant names its business event", g.ID)
	case g.Status == "":
		return fmt.Errorf("ledger: grant %s has no status; set it (normally %q) before writing it", g.ID, grant.StatusActive)
	}
	return nil
}

// upsertEvent records the event as open unless it is already known, updating
// kind and url when given, and returns whether it is closed.
func upsertEvent(ctx context.Context, tx *sql.Tx, id string, kind grant.EventKind, url string) (closed bool, err error) {
	if _, err := tx.ExecContext(ctx, `INSERT INTO events (id, kind, url, open) VALUES (?, ?, ?, 1)
		ON CONFLICT (id) DO UPDATE SET
			kind = CASE WHEN excluded.kind <> '' THEN excluded.kind ELSE events.kind END,
			url  = CASE WHEN excluded.url  <> '' THEN excluded.url  ELSE events.url  END`,
		id, string(kind), url); err != nil {
		return false, err
	}
	var open bool
	if err := tx.QueryRowContext(ctx, `SELECT open FROM events WHERE id = ?`, id).Scan(&open); err != nil {
		return false, err
	}
	return !open, nil
}

// prepareEntries checks entries and fills GrantID from defaultID when empty.
func prepareEntries(defaultID string, entries []Entry) error {
	for i := range entries {
		e := &entries[i]
		if e.GrantID == "" {
			e.GrantID = defaultID
		}
		switch {
		case e.GrantID == "":
			return fmt.Errorf("ledger: history entry %d (%s) names no grant; set Entry.GrantID", i, e.Type)
		case e.Type == "":
			return fmt.Errorf("ledger: history entry %d for grant %s has no type", i, e.GrantID)
		case e.At.IsZero():
			return fmt.Errorf("ledger: history entry %q for grant %s has no time; set Entry.At from the clock", e.Type, e.GrantID)
		}
	}
	return nil
}

// insertEntries appends entries and records their sequence numbers in seqs.
func insertEntries(ctx context.Context, tx *sql.Tx, entries []Entry, seqs []int64) error {
	for i, e := range entries {
		res, err := tx.ExecContext(ctx, `INSERT INTO grant_events (grant_id, type, at, actor, detail) VALUES (?, ?, ?, ?, ?)`,
			e.GrantID, string(e.Type), e.At.UnixMicro(), string(e.Actor), e.Detail)
		if err != nil {
			if isForeignKey(err) {
				return fmt.Errorf("%w: history entry %q names grant %s, which is not in the ledger", ErrNotFound, e.Type, e.GrantID)
			}
			return err
		}
		if seqs[i], err = res.LastInsertId(); err != nil {
			return err
		}
	}
	return nil
}

func isForeignKey(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}

func setSeqs(entries []Entry, seqs []int64) {
	for i := range entries {
		entries[i].Seq = seqs[i]
	}
}

// CreateGrant inserts g with Version 1, records its event as open (unless the
// event is already known) and appends entries, in one transaction. Entries
// without a GrantID get g.ID; every entry needs a Type and an At. The store
// fills GrantID and Seq in the entries slice it was given. A grant id that
// already exists is ErrConflict. A grant of an event already closed is due at once.
func (s *SQLiteStore) CreateGrant(ctx context.Context, g *grant.Grant, entries ...Entry) error {
	if err := checkGrant(g); err != nil {
		return err
	}
	if err := prepareEntries(g.ID, entries); err != nil {
		return err
	}
	vals, err := grantValues(g)
	if err != nil {
		return err
	}
	seqs := make([]int64, len(entries))
	err = s.write(ctx, func(tx *sql.Tx) error {
		var exists int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM grants WHERE id = ?`, g.ID).Scan(&exists)
		switch {
		case err == nil:
			return fmt.Errorf("%w: grant %s already exists in the ledger; create grants with a new id", ErrConflict, g.ID)
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		closed, err := upsertEvent(ctx, tx, g.Event.ID, g.Event.Kind, g.Event.URL)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO grants (id, owner, justification, event_id, event_kind, event_url,
			target_kind, target_json, target_key, connection, adopt_existing, requested, granted_at, expires_at,
			status, end_reason, ended_at, revoked_by, verified_at, drift, revoke_attempts, last_error,
			next_attempt_at, kept_by, event_closed, version)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)`,
			append(vals, closed)...); err != nil {
			return err
		}
		return insertEntries(ctx, tx, entries, seqs)
	})
	if err != nil {
		return s.wrap(err)
	}
	g.Version = 1
	setSeqs(entries, seqs)
	return nil
}

// wrap adds the ledger path to errors that are not one of the package's
// sentinel-carrying messages.
func (s *SQLiteStore) wrap(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("ledger %s: %w", s.path, err)
}

// GetGrant returns the grant with that id, or ErrNotFound.
func (s *SQLiteStore) GetGrant(ctx context.Context, id string) (*grant.Grant, error) {
	gs, err := s.queryGrants(ctx, `SELECT `+grantColumns+` FROM grants WHERE id = ?`, id)
	if err != nil {
		return nil, err
	}
	if len(gs) == 0 {
		return nil, fmt.Errorf("%w: no grant %s in the ledger", ErrNotFound, id)
	}
	return gs[0], nil
}

// notFoundOrConflict explains why a compare-and-swap on grant id matched no row.
func notFoundOrConflict(ctx context.Context, tx *sql.Tx, id string, version int64, what string) error {
	var stored int64
	var claimUntil sql.NullInt64
	err := tx.QueryRowContext(ctx, `SELECT version, claim_until FROM grants WHERE id = ?`, id).Scan(&stored, &claimUntil)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%w: no grant %s in the ledger", ErrNotFound, id)
	case err != nil:
		return err
	case stored != version:
		return fmt.Errorf("%w: %s grant %s: it changed since it was read (version %d, now %d); read it again and retry", ErrConflict, what, id, version, stored)
	default:
		return fmt.Errorf("%w: %s grant %s: it is claimed by another writer until %s", ErrConflict, what, id, fromMicros(claimUntil).Format(time.RFC3339))
	}
}

// updateGrantSQL writes every field of a grant (grantValues without the id,
// then event_closed), if its version is still the one read, and releases any
// claim: the writer either holds the claim or read the grant after it.
const updateGrantSQL = `UPDATE grants SET owner = ?, justification = ?, event_id = ?, event_kind = ?,
	event_url = ?, target_kind = ?, target_json = ?, target_key = ?, connection = ?, adopt_existing = ?,
	requested = ?, granted_at = ?, expires_at = ?, status = ?, end_reason = ?, ended_at = ?,
	revoked_by = ?, verified_at = ?, drift = ?, revoke_attempts = ?, last_error = ?,
	next_attempt_at = ?, kept_by = ?, event_closed = ?, version = version + 1,
	claim_token = NULL, claim_until = NULL
	WHERE id = ? AND version = ?`

// UpdateGrant writes g if the stored version is still g.Version, appends the
// entries (GrantID defaults to g.ID), and increments g.Version. It returns
// ErrConflict if the grant changed, ErrNotFound if it does not exist. The write
// releases any claim on the grant: it is the claim holder's final write (the
// holder writes with the version Claim returned; anyone who read the grant
// before the claim fails the version check).
func (s *SQLiteStore) UpdateGrant(ctx context.Context, g *grant.Grant, entries ...Entry) error {
	errs, err := s.UpdateMany(ctx, []*grant.Grant{g}, [][]Entry{entries})
	if err != nil {
		return err
	}
	return errs[0]
}

// Append adds history entries without changing any grant. Every entry must
// name an existing grant (ErrNotFound otherwise).
func (s *SQLiteStore) Append(ctx context.Context, entries ...Entry) error {
	if len(entries) == 0 {
		return nil
	}
	if err := prepareEntries("", entries); err != nil {
		return err
	}
	seqs := make([]int64, len(entries))
	if err := s.write(ctx, func(tx *sql.Tx) error { return insertEntries(ctx, tx, entries, seqs) }); err != nil {
		return s.wrap(err)
	}
	setSeqs(entries, seqs)
	return nil
}

// ListGrants returns grants matching f, ordered by id.
func (s *SQLiteStore) ListGrants(ctx context.Context, f Filter) ([]*grant.Grant, error) {
	var (
		where []string
		args  []any
	)
	if len(f.Statuses) > 0 {
		ph := make([]string, len(f.Statuses))
		for i, st := range f.Statuses {
			ph[i] = "?"
			args = append(args, string(st))
		}
		where = append(where, "status IN ("+strings.Join(ph, ", ")+")")
	}
	if f.EventID != "" {
		where = append(where, "event_id = ?")
		args = append(args, f.EventID)
	}
	if f.Owner != "" {
		where = append(where, "owner = ?")
		args = append(args, f.Owner)
	}
	q := `SELECT ` + grantColumns + ` FROM grants`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id" + limitClause(f.Limit)
	return s.queryGrants(ctx, q, args...)
}

func limitClause(limit int) string {
	if limit <= 0 {
		return ""
	}
	return fmt.Sprintf(" LIMIT %d", limit)
}

// holdingStatuses is the SQL list of statuses that still hold a permission
// (grant.Status.Holds).
const holdingStatuses = `('active', 'due', 'irrevocable')`

// Holders returns, ordered by id, the ids of grants that still hold the
// permission with that target key (active, due, irrevocable), excluding excludeID.
func (s *SQLiteStore) Holders(ctx context.Context, targetKey, excludeID string) ([]string, error) {
	var ids []string
	err := retry(ctx, func() error {
		ids = nil
		rows, err := s.db.QueryContext(ctx, `SELECT id FROM grants
			WHERE target_key = ? AND status IN `+holdingStatuses+` AND id <> ? ORDER BY id`, targetKey, excludeID)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, s.wrap(err)
	}
	return ids, nil
}

// dueQuery selects the grants that must end at ?1 (unix micros), with no
// claim in force. Its three parts are disjoint, and each is an index search:
//   - active grants past expiry (grants_active_expiry),
//   - active grants, not past expiry, whose event is closed (grants_active_event_closed),
//   - due grants whose next attempt has come (grants_due).
//
// Each part names its partial index (INDEXED BY), so the plan cannot drift to
// a scan of all active grants, or of the history, as the tables grow.
//
// Irrevocable grants are never returned. An active grant's next_attempt_at is
// ignored: nothing may postpone the end of an active grant past its expiry.
const dueQuery = `
SELECT ` + grantColumns + `, connection AS c_, id AS i_ FROM grants INDEXED BY grants_active_expiry
	WHERE status = 'active' AND expires_at <= ?1
	AND (claim_until IS NULL OR claim_until <= ?1)
UNION ALL
SELECT ` + grantColumns + `, connection, id FROM grants INDEXED BY grants_active_event_closed
	WHERE status = 'active' AND event_closed = 1 AND (expires_at IS NULL OR expires_at > ?1)
	AND (claim_until IS NULL OR claim_until <= ?1)
UNION ALL
SELECT ` + grantColumns + `, connection, id FROM grants INDEXED BY grants_due
	WHERE status = 'due' AND (next_attempt_at IS NULL OR next_attempt_at <= ?1)
	AND (claim_until IS NULL OR claim_until <= ?1)
ORDER BY c_, i_`

// Due returns grants that must end at now, with no claim in force at now,
// ordered by connection then id, at most limit rows (0: no limit): active
// grants past their expiry or whose event is closed, and due grants whose
// next attempt time has come (or is zero). Irrevocable grants are excluded.
// The query is indexed: it costs in proportion to the due grants.
func (s *SQLiteStore) Due(ctx context.Context, now time.Time, limit int) ([]*grant.Grant, error) {
	if now.IsZero() {
		return nil, errors.New("ledger: Due needs the current time; pass the clock's now")
	}
	return s.queryDue(ctx, dueQuery+limitClause(limit), now.UnixMicro())
}

func (s *SQLiteStore) queryDue(ctx context.Context, query string, args ...any) ([]*grant.Grant, error) {
	var out []*grant.Grant
	err := retry(ctx, func() error {
		out = nil
		rows, err := s.db.QueryContext(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var c, i string
			g, err := scanGrant(extraCols{rows, []any{&c, &i}})
			if err != nil {
				return err
			}
			out = append(out, g)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, s.wrap(err)
	}
	return out, nil
}

// extraCols scans trailing columns (sort keys) after the grant columns.
type extraCols struct {
	r     rowScanner
	extra []any
}

func (e extraCols) Scan(dest ...any) error { return e.r.Scan(append(dest, e.extra...)...) }

// Claim takes g for one writer until now+lease with token, if its version is
// still g.Version and no other claim is in force at now. On success g.Version
// is incremented: the holder's later UpdateGrant calls are fenced by it.
// Returns ErrConflict if someone else changed or holds the grant.
func (s *SQLiteStore) Claim(ctx context.Context, g *grant.Grant, token string, now time.Time, lease time.Duration) error {
	switch {
	case g == nil || g.ID == "":
		return errors.New("ledger: Claim needs a grant with an id")
	case token == "":
		return fmt.Errorf("ledger: Claim of grant %s needs a non-empty token", g.ID)
	case now.IsZero():
		return fmt.Errorf("ledger: Claim of grant %s needs the current time; pass the clock's now", g.ID)
	case lease <= 0:
		return fmt.Errorf("ledger: Claim of grant %s needs a positive lease, got %s", g.ID, lease)
	}
	n := now.UnixMicro()
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE grants SET claim_token = ?, claim_until = ?, version = version + 1
			WHERE id = ? AND version = ? AND (claim_until IS NULL OR claim_until <= ?)`,
			token, now.Add(lease).UnixMicro(), g.ID, g.Version, n)
		if err != nil {
			return err
		}
		if k, err := res.RowsAffected(); err != nil {
			return err
		} else if k != 1 {
			return notFoundOrConflict(ctx, tx, g.ID, g.Version, "claim")
		}
		return nil
	})
	if err != nil {
		return s.wrap(err)
	}
	g.Version++
	return nil
}

// tombstonesQuery selects, for ?1 (unix micros), the latest tombstone of each
// target key that ended at or after ?1 and that no grant holds any more. It
// walks grants_revoked_ended from ?1 and probes grants_target_key per row.
const tombstonesQuery = `SELECT ` + grantColumns + ` FROM grants AS g INDEXED BY grants_revoked_ended
	WHERE g.status = 'revoked' AND g.ended_at >= ?1
	AND g.id = (SELECT t.id FROM grants AS t
		WHERE t.target_key = g.target_key AND t.status = 'revoked'
		ORDER BY t.ended_at DESC, t.id DESC LIMIT 1)
	AND NOT EXISTS (SELECT 1 FROM grants AS h
		WHERE h.target_key = g.target_key AND h.status IN ` + holdingStatuses + `)
	ORDER BY g.connection, g.id`

// Tombstones returns revoked grants that ended at or after since, at most one
// per target key (the latest to end), whose target key no grant holds any
// more, ordered by connection then id, at most limit rows (0: no limit).
func (s *SQLiteStore) Tombstones(ctx context.Context, since time.Time, limit int) ([]*grant.Grant, error) {
	from := int64(math.MinInt64)
	if !since.IsZero() {
		from = since.UnixMicro()
	}
	return s.queryGrants(ctx, tombstonesQuery+limitClause(limit), from)
}

// History returns a grant's entries in order, or ErrNotFound if the grant is
// not in the ledger.
func (s *SQLiteStore) History(ctx context.Context, grantID string) ([]Entry, error) {
	var out []Entry
	err := retry(ctx, func() error {
		out = nil
		rows, err := s.db.QueryContext(ctx, `SELECT seq, grant_id, type, at, actor, detail FROM grant_events
			WHERE grant_id = ? ORDER BY seq`, grantID)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				e          Entry
				typ, actor string
				at         sql.NullInt64
			)
			if err := rows.Scan(&e.Seq, &e.GrantID, &typ, &at, &actor, &e.Detail); err != nil {
				return err
			}
			e.Type, e.Actor, e.At = EntryType(typ), grant.Actor(actor), fromMicros(at)
			out = append(out, e)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, s.wrap(err)
	}
	if len(out) == 0 {
		if _, err := s.GetGrant(ctx, grantID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// UpsertEvent records a business event: a new event is open; a known one keeps
// its open/closed state, and its kind and url are updated when given.
func (s *SQLiteStore) UpsertEvent(ctx context.Context, e Event) error {
	if e.ID == "" {
		return errors.New("ledger: an event needs an id")
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := upsertEvent(ctx, tx, e.ID, e.Kind, e.URL)
		return err
	})
	return s.wrap(err)
}

// GetEvent returns a business event or ErrNotFound.
func (s *SQLiteStore) GetEvent(ctx context.Context, id string) (*Event, error) {
	var (
		e                Event
		kind, reason, by string
		closedAt         sql.NullInt64
	)
	err := retry(ctx, func() error {
		return s.db.QueryRowContext(ctx, `SELECT id, kind, url, open, closed_at, close_reason, closed_by
			FROM events WHERE id = ?`, id).Scan(&e.ID, &kind, &e.URL, &e.Open, &closedAt, &reason, &by)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: no event %s in the ledger", ErrNotFound, id)
	}
	if err != nil {
		return nil, s.wrap(err)
	}
	e.Kind, e.CloseReason, e.ClosedBy, e.ClosedAt = grant.EventKind(kind), reason, grant.Actor(by), fromMicros(closedAt)
	return &e, nil
}

// CloseEvent marks the event closed at at (creating it if unknown), which
// makes every active grant for it due. Closing a closed event is a no-op.
func (s *SQLiteStore) CloseEvent(ctx context.Context, id, reason string, by grant.Actor, at time.Time) error {
	switch {
	case id == "":
		return errors.New("ledger: CloseEvent needs an event id")
	case at.IsZero():
		return fmt.Errorf("ledger: closing event %s needs the time it closed; pass the clock's now", id)
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO events (id, open, closed_at, close_reason, closed_by) VALUES (?, 0, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET open = 0, closed_at = excluded.closed_at,
				close_reason = excluded.close_reason, closed_by = excluded.closed_by
			WHERE events.open = 1`, id, at.UnixMicro(), reason, string(by))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err // already closed: nothing to do
		}
		_, err = tx.ExecContext(ctx, `UPDATE grants SET event_closed = 1 WHERE event_id = ? AND event_closed = 0`, id)
		return err
	})
	return s.wrap(err)
}
