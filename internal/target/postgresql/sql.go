package postgresql

import (
	"github.com/eventaccess/terraform-provider-eventaccess/internal/grant"
	"github.com/jackc/pgx/v5"
)

// QuoteIdent quotes a role name as an SQL identifier: the name is data, never
// SQL. Double quotes inside it are doubled; case, spaces, semicolons and
// non-ASCII characters are kept as they are.
func QuoteIdent(name string) string { return pgx.Identifier{name}.Sanitize() }

// GrantSQL is the statement that applies the membership:
// GRANT "role" TO "member" [WITH ADMIN OPTION].
func GrantSQL(p grant.PostgreSQLTarget) string {
	s := "GRANT " + QuoteIdent(p.Role) + " TO " + QuoteIdent(p.Member)
	if p.WithAdminOption {
		s += " WITH ADMIN OPTION"
	}
	return s
}

// RevokeSQL is the statement that removes the membership (and its admin
// option): REVOKE "role" FROM "member".
func RevokeSQL(p grant.PostgreSQLTarget) string {
	return "REVOKE " + QuoteIdent(p.Role) + " FROM " + QuoteIdent(p.Member)
}

// RevokeGrantedBySQL removes the membership that grantor granted:
// REVOKE "role" FROM "member" GRANTED BY "grantor". On PostgreSQL 16 and later a
// membership can be granted by several grantors, and a plain REVOKE removes only
// the current user's grant.
func RevokeGrantedBySQL(p grant.PostgreSQLTarget, grantor string) string {
	return RevokeSQL(p) + " GRANTED BY " + QuoteIdent(grantor)
}

// InspectSQL observes memberships. Its parameters are two text arrays of equal
// length, role names ($1) and member names ($2); it returns one row per pair, in
// order: ord (1-based), role_exists, member_exists, found, admin_option and the
// names of the grantors. Names are compared as data, never concatenated into SQL.
const InspectSQL = `SELECT i.ord,
       r.oid IS NOT NULL AS role_exists,
       m.oid IS NOT NULL AS member_exists,
       count(am.roleid) > 0 AS found,
       coalesce(bool_or(am.admin_option), false) AS admin_option,
       coalesce(array_agg(g.rolname::text ORDER BY g.rolname) FILTER (WHERE g.rolname IS NOT NULL), '{}'::text[]) AS grantors
  FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS i(role, member, ord)
  LEFT JOIN pg_catalog.pg_roles r ON r.rolname = i.role
  LEFT JOIN pg_catalog.pg_roles m ON m.rolname = i.member
  LEFT JOIN pg_catalog.pg_auth_members am ON am.roleid = r.oid AND am.member = m.oid
  LEFT JOIN pg_catalog.pg_roles g ON g.oid = am.grantor
 GROUP BY i.ord, r.oid, m.oid
 ORDER BY i.ord`

// RolesExistSQL reports, for one role name ($1) and one member name ($2),
// whether each exists.
const RolesExistSQL = `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1),
       EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $2)`

// MultiGrantorSQL detects, by catalog rather than by version string, whether
// pg_auth_members has the PostgreSQL 16 membership options (set_option,
// inherit_option), i.e. whether a membership can have several grantors.
const MultiGrantorSQL = `SELECT count(*) = 2 FROM pg_catalog.pg_attribute
 WHERE attrelid = 'pg_catalog.pg_auth_members'::regclass
   AND attname IN ('set_option', 'inherit_option')
   AND NOT attisdropped`

// TerminateSQL ends the sessions of the given login roles ($1, a text array),
// except the current one. A session that ran SET ROLE keeps the privilege of a
// revoked membership until it ends.
const TerminateSQL = `SELECT count(*) FILTER (WHERE pg_catalog.pg_terminate_backend(pid))
  FROM pg_catalog.pg_stat_activity
 WHERE usename = ANY ($1::text[]) AND pid <> pg_catalog.pg_backend_pid()`

// RevokeAdminOptionSQL removes only the admin option and keeps the membership:
// REVOKE ADMIN OPTION FOR "role" FROM "member".
func RevokeAdminOptionSQL(p grant.PostgreSQLTarget) string {
	return "REVOKE ADMIN OPTION FOR " + QuoteIdent(p.Role) + " FROM " + QuoteIdent(p.Member)
}

// RevokeAdminOptionGrantedBySQL is RevokeAdminOptionSQL for the membership
// that grantor granted (PostgreSQL 16 and later).
func RevokeAdminOptionGrantedBySQL(p grant.PostgreSQLTarget, grantor string) string {
	return RevokeAdminOptionSQL(p) + " GRANTED BY " + QuoteIdent(grantor)
}
