// Package postgresql is the eventaccess target for PostgreSQL role membership:
// GRANT role TO member [WITH ADMIN OPTION], REVOKE role FROM member, and an
// inspection of pg_auth_members that says whether the member holds the role
// (present), does not (absent), or holds more than declared (widened: ADMIN
// OPTION that was not granted).
//
// Role names are data: they are quoted as identifiers in GRANT and REVOKE, and
// passed as parameters in every query. Connections are named and resolved by a
// target.Resolver; their URLs are secrets and never appear in errors.
//
// On PostgreSQL 16 and later a membership can have several grantors and a plain
// REVOKE removes only the current user's grant; the driver detects this from the
// catalog (the set_option and inherit_option columns of pg_auth_members) and
// revokes GRANTED BY each grantor.
//
// The driver never reads the clock: observations leave CheckedAt zero for the
// caller to stamp.
package postgresql

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventaccess/terraform-provider-eventaccess/internal/grant"
	"github.com/eventaccess/terraform-provider-eventaccess/internal/target"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Defaults for a Driver.
const (
	DefaultMaxConns       = 4
	DefaultBatchSize      = 500
	DefaultConnectTimeout = 10 * time.Second
)

// SQLSTATE undefined_object: a role named in GRANT/REVOKE does not exist.
const codeUndefinedObject = "42704"

// Option tunes a Driver.
type Option func(*Driver)

// WithMaxConns sets the size of each connection's pool (default 4).
func WithMaxConns(n int32) Option {
	return func(d *Driver) {
		if n > 0 {
			d.maxConns = n
		}
	}
}

// WithBatchSize sets how many memberships RevokeMany and InspectMany handle per
// round trip (default 500).
func WithBatchSize(n int) Option {
	return func(d *Driver) {
		if n > 0 {
			d.batchSize = n
		}
	}
}

// WithConnectTimeout sets the connect timeout used when a connection's URL sets
// none (default 10s).
func WithConnectTimeout(t time.Duration) Option {
	return func(d *Driver) {
		if t > 0 {
			d.connectTimeout = t
		}
	}
}

// Driver is the PostgreSQL target. It keeps one small pool per connection name,
// created on first use. It is safe for concurrent use.
type Driver struct {
	resolver       target.Resolver
	maxConns       int32
	batchSize      int
	connectTimeout time.Duration

	mu     sync.Mutex
	conns  map[string]*conn
	closed bool
}

var (
	_ target.Target = (*Driver)(nil)
	_ target.Batch  = (*Driver)(nil)
)

// New returns a driver that resolves connection names with resolver.
func New(resolver target.Resolver, opts ...Option) *Driver {
	d := &Driver{
		resolver:       resolver,
		maxConns:       DefaultMaxConns,
		batchSize:      DefaultBatchSize,
		connectTimeout: DefaultConnectTimeout,
		conns:          map[string]*conn{},
	}
	for _, o := range opts {
		o(d)
	}
	return d
}

// conn is one named connection's pool.
type conn struct {
	name string
	url  string // secret: only for scrubbing
	pool *pgxpool.Pool
	// catalogMode is the execution mode of the fixed catalog queries.
	catalogMode pgx.QueryExecMode
	// multiGrantor: 0 unknown, 1 no (PostgreSQL <= 15), 2 yes (16+).
	multiGrantor atomic.Int32
}

// Close closes every pool. The driver cannot be used afterwards.
func (d *Driver) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	for name, c := range d.conns {
		c.pool.Close()
		delete(d.conns, name)
	}
	return nil
}

func (d *Driver) conn(name string) (*conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, errors.New("postgresql target: the driver is closed")
	}
	if c, ok := d.conns[name]; ok {
		return c, nil
	}
	u, err := d.resolver.Resolve(name)
	if err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(u)
	if err != nil {
		return nil, cannotConnect(name, u, err)
	}
	cfg.MaxConns = d.maxConns
	cfg.MinConns = 0
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = d.connectTimeout
	}
	// GRANT and REVOKE texts differ for every membership: run them (and
	// batches of them) without preparing. The few fixed catalog queries are
	// prepared once per session (catalogMode), which halves their cost. A URL
	// that sets default_query_exec_mode (e.g. behind a transaction pooler)
	// decides both.
	catalogMode := pgx.QueryExecModeCacheStatement
	if strings.Contains(u, "default_query_exec_mode") {
		catalogMode = cfg.ConnConfig.DefaultQueryExecMode
	} else {
		cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeExec
	}
	if cfg.ConnConfig.RuntimeParams == nil {
		cfg.ConnConfig.RuntimeParams = map[string]string{}
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "eventaccess"
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, cannotConnect(name, u, err)
	}
	c := &conn{name: name, url: u, pool: pool, catalogMode: catalogMode}
	d.conns[name] = c
	return c, nil
}

// do runs f, once more if the first attempt failed before anything reached the
// server (e.g. a pooled connection the server had closed), and wraps its error.
func (c *conn) do(ctx context.Context, what string, f func(context.Context) error) error {
	err := f(ctx)
	if err != nil && pgconn.SafeToRetry(err) && ctx.Err() == nil {
		err = f(ctx)
	}
	return wrapErr(c.name, c.url, what, err)
}

// isMultiGrantor reports (once per connection) whether memberships can have
// several grantors (PostgreSQL 16+), by catalog.
func (c *conn) isMultiGrantor(ctx context.Context) (bool, error) {
	switch c.multiGrantor.Load() {
	case 1:
		return false, nil
	case 2:
		return true, nil
	}
	var yes bool
	err := c.do(ctx, "detect membership grantors", func(ctx context.Context) error {
		return c.pool.QueryRow(ctx, MultiGrantorSQL, c.catalogMode).Scan(&yes)
	})
	if err != nil {
		return false, err
	}
	if yes {
		c.multiGrantor.Store(2)
	} else {
		c.multiGrantor.Store(1)
	}
	return yes, nil
}

// spec extracts and validates the PostgreSQL part of a target.
func spec(t grant.Target) (grant.PostgreSQLTarget, error) {
	if t.PostgreSQL == nil {
		return grant.PostgreSQLTarget{}, fmt.Errorf("postgresql target: not a postgresql target (%s)", t)
	}
	if err := t.PostgreSQL.Validate(); err != nil {
		return grant.PostgreSQLTarget{}, err
	}
	return *t.PostgreSQL, nil
}

// row is one line of InspectSQL.
type row struct {
	roleExists, memberExists bool
	found, admin             bool
	grantors                 []string
}

func (c *conn) inspect(ctx context.Context, ps []grant.PostgreSQLTarget) ([]row, error) {
	roles := make([]string, len(ps))
	members := make([]string, len(ps))
	for i, p := range ps {
		roles[i], members[i] = p.Role, p.Member
	}
	out := make([]row, len(ps))
	err := c.do(ctx, "inspect pg_auth_members", func(ctx context.Context) error {
		rows, err := c.pool.Query(ctx, InspectSQL, c.catalogMode, roles, members)
		if err != nil {
			return err
		}
		defer rows.Close()
		n := 0
		for rows.Next() {
			var ord int64
			var r row
			if err := rows.Scan(&ord, &r.roleExists, &r.memberExists, &r.found, &r.admin, &r.grantors); err != nil {
				return err
			}
			if ord < 1 || int(ord) > len(out) {
				return fmt.Errorf("unexpected row %d", ord)
			}
			out[ord-1] = r
			n++
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if n != len(out) {
			return fmt.Errorf("got %d rows for %d memberships", n, len(out))
		}
		return nil
	})
	return out, err
}

// notFoundError names what is missing; it wraps target.ErrNotFound.
type notFoundError struct{ msg string }

func (e *notFoundError) Error() string { return e.msg }
func (e *notFoundError) Unwrap() error { return target.ErrNotFound }

func notFound(conn string, p grant.PostgreSQLTarget, roleExists, memberExists bool) error {
	var parts []string
	if !roleExists {
		parts = append(parts, fmt.Sprintf("role %q does not exist on connection %q", p.Role, conn))
	}
	if !memberExists {
		parts = append(parts, fmt.Sprintf("member role %q does not exist on connection %q", p.Member, conn))
	}
	if len(parts) == 0 {
		return nil
	}
	return &notFoundError{msg: strings.Join(parts, "; ") + "; create it first or fix the name"}
}

// Check verifies that the connection resolves and answers, and that the role and
// the member exist. It changes nothing. Missing roles give an error wrapping
// target.ErrNotFound.
func (d *Driver) Check(ctx context.Context, t grant.Target) error {
	p, err := spec(t)
	if err != nil {
		return err
	}
	c, err := d.conn(p.Connection)
	if err != nil {
		return err
	}
	var roleOK, memberOK bool
	if err := c.do(ctx, "check roles", func(ctx context.Context) error {
		return c.pool.QueryRow(ctx, RolesExistSQL, c.catalogMode, p.Role, p.Member).Scan(&roleOK, &memberOK)
	}); err != nil {
		return err
	}
	return notFound(c.name, p, roleOK, memberOK)
}

// inspectOne resolves t's connection and reads its membership from the catalog.
func (d *Driver) inspectOne(ctx context.Context, t grant.Target) (grant.PostgreSQLTarget, *conn, row, error) {
	p, err := spec(t)
	if err != nil {
		return p, nil, row{}, err
	}
	c, err := d.conn(p.Connection)
	if err != nil {
		return p, nil, row{}, err
	}
	rows, err := c.inspect(ctx, []grant.PostgreSQLTarget{p})
	if err != nil {
		return p, c, row{}, err
	}
	return p, c, rows[0], nil
}

// Grant applies the membership. It is idempotent: when the member already holds
// the role (with the admin option, if declared) nothing is executed, so an
// admin option the member holds but the spec does not declare is left alone
// (Inspect reports it as widened). Missing roles give an error wrapping
// target.ErrNotFound.
func (d *Driver) Grant(ctx context.Context, t grant.Target) error {
	p, c, r, err := d.inspectOne(ctx, t)
	if err != nil {
		return err
	}
	if err := notFound(c.name, p, r.roleExists, r.memberExists); err != nil {
		return err
	}
	if r.found && (r.admin || !p.WithAdminOption) {
		return nil
	}
	return c.do(ctx, fmt.Sprintf("grant role %q to %q", p.Role, p.Member), func(ctx context.Context) error {
		_, err := c.pool.Exec(ctx, GrantSQL(p))
		if isConcurrentCatalogChange(err) {
			// Another session granted the same membership at the same moment
			// (two grants for one permission applied at once): if the
			// membership is there now, the GRANT did what it had to.
			rows, ierr := c.inspect(ctx, []grant.PostgreSQLTarget{p})
			if ierr == nil && rows[0].found && (rows[0].admin || !p.WithAdminOption) {
				return nil
			}
		}
		return err
	})
}

// isConcurrentCatalogChange reports a failure caused by another session
// changing the same catalog row at the same time: a unique violation on
// pg_auth_members, or "tuple concurrently updated".
func isConcurrentCatalogChange(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	return pgErr.Code == "23505" || (pgErr.Code == "XX000" && strings.Contains(pgErr.Message, "concurrently"))
}

// revokeStatements are the statements that remove a membership seen as r.
func revokeStatements(p grant.PostgreSQLTarget, r row, multiGrantor bool) []string {
	if !multiGrantor || len(r.grantors) == 0 {
		return []string{RevokeSQL(p)}
	}
	out := make([]string, len(r.grantors))
	for i, g := range r.grantors {
		out[i] = RevokeGrantedBySQL(p, g)
	}
	return out
}

// Narrow removes the admin option the member holds when spec does not declare
// it, and keeps the membership. It is idempotent: a membership without the
// option, or no membership at all, is left as it is.
func (d *Driver) Narrow(ctx context.Context, t grant.Target) error {
	p, c, r, err := d.inspectOne(ctx, t)
	if err != nil {
		return err
	}
	if !r.found || !r.admin || p.WithAdminOption {
		return nil
	}
	mg, err := c.isMultiGrantor(ctx)
	if err != nil {
		return err
	}
	stmts := []string{RevokeAdminOptionSQL(p)}
	if mg && len(r.grantors) > 0 {
		stmts = stmts[:0]
		for _, g := range r.grantors {
			stmts = append(stmts, RevokeAdminOptionGrantedBySQL(p, g))
		}
	}
	return c.revokeOne(ctx, p, stmts)
}

var _ target.Narrower = (*Driver)(nil)

func isUndefinedObject(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && pg.Code == codeUndefinedObject
}

// revokeOne runs the statements of one membership; a role dropped meanwhile
// counts as revoked.
func (c *conn) revokeOne(ctx context.Context, p grant.PostgreSQLTarget, stmts []string) error {
	for _, s := range stmts {
		err := c.do(ctx, fmt.Sprintf("revoke role %q from %q", p.Role, p.Member), func(ctx context.Context) error {
			_, err := c.pool.Exec(ctx, s)
			return err
		})
		if err != nil && !isUndefinedObject(err) {
			return err
		}
	}
	return nil
}

// terminate ends the sessions of the given login roles.
func (c *conn) terminate(ctx context.Context, members []string) error {
	if len(members) == 0 {
		return nil
	}
	return c.do(ctx, "terminate sessions", func(ctx context.Context) error {
		var n int64
		return c.pool.QueryRow(ctx, TerminateSQL, c.catalogMode, members).Scan(&n)
	})
}

// Revoke removes the membership (and its admin option). It is idempotent:
// a membership, role or member that does not exist counts as revoked. With
// TerminateSessions it then ends the member's open sessions, even when the
// membership was already gone (a session that ran SET ROLE keeps the
// privilege until it ends, and a revoke interrupted earlier must finish).
func (d *Driver) Revoke(ctx context.Context, t grant.Target) error {
	p, c, r, err := d.inspectOne(ctx, t)
	if err != nil {
		return err
	}
	if r.found {
		mg, err := c.isMultiGrantor(ctx)
		if err != nil {
			return err
		}
		if err := c.revokeOne(ctx, p, revokeStatements(p, r, mg)); err != nil {
			// Another session revoked it at the same moment: absent is success.
			if !isConcurrentCatalogChange(err) {
				return err
			}
			rows, ierr := c.inspect(ctx, []grant.PostgreSQLTarget{p})
			if ierr != nil || rows[0].found {
				return err
			}
		}
	}
	if p.TerminateSessions && r.memberExists {
		return c.terminate(ctx, []string{p.Member})
	}
	return nil
}

// Evidence is what an inspection records in the ledger (as JSON). No secrets.
type Evidence struct {
	Check      string `json:"check"`
	Connection string `json:"connection"`
	Role       string `json:"role"`
	Member     string `json:"member"`
	Found      bool   `json:"found"`
	// AdminOption: the member holds the role WITH ADMIN OPTION.
	AdminOption bool `json:"admin_option"`
	// DeclaredAdminOption: the spec declares WITH ADMIN OPTION.
	DeclaredAdminOption bool `json:"declared_admin_option"`
	// Missing names a role that does not exist: "role", "member" or "role,member".
	Missing  string   `json:"missing,omitempty"`
	Grantors []string `json:"grantors,omitempty"`
}

func observe(conn string, p grant.PostgreSQLTarget, r row) target.Observation {
	ev := Evidence{
		Check: "pg_auth_members", Connection: conn, Role: p.Role, Member: p.Member,
		Found: r.found, AdminOption: r.admin, DeclaredAdminOption: p.WithAdminOption,
		Grantors: r.grantors,
	}
	var missing []string
	if !r.roleExists {
		missing = append(missing, "role")
	}
	if !r.memberExists {
		missing = append(missing, "member")
	}
	ev.Missing = strings.Join(missing, ",")
	b, _ := json.Marshal(ev)
	o := target.Observation{State: target.Absent, Evidence: string(b)}
	switch {
	case !r.found:
	case r.admin && !p.WithAdminOption:
		o.State = target.Widened
	default:
		// Includes a declared admin option the member lacks: it still holds the
		// role, and "absent" must only ever mean the access is gone.
		o.State = target.Present
	}
	return o
}

// Inspect observes the membership in pg_auth_members: Absent (also when the role
// or the member does not exist), Present, or Widened (ADMIN OPTION held but not
// declared). CheckedAt is left zero for the caller to stamp.
func (d *Driver) Inspect(ctx context.Context, t grant.Target) (target.Observation, error) {
	p, c, r, err := d.inspectOne(ctx, t)
	if err != nil {
		return target.Observation{}, err
	}
	return observe(c.name, p, r), nil
}
