package postgresql

import (
	"strings"
	"testing"

	"github.com/eventaccess/terraform-provider-eventaccess/internal/grant"
)

func TestGrantRevokeSQLQuoting(t *testing.T) {
	cases := []struct {
		role, member, grant, revoke string
	}{
		{"app_ro", "svc", `GRANT "app_ro" TO "svc"`, `REVOKE "app_ro" FROM "svc"`},
		{`we"ird; DROP ROLE x`, "svc", `GRANT "we""ird; DROP ROLE x" TO "svc"`, `REVOKE "we""ird; DROP ROLE x" FROM "svc"`},
		{"MixedCase", "UPPER", `GRANT "MixedCase" TO "UPPER"`, `REVOKE "MixedCase" FROM "UPPER"`},
		{"Ünïcødé_rôle", "mémbre", `GRANT "Ünïcødé_rôle" TO "mémbre"`, `REVOKE "Ünïcødé_rôle" FROM "mémbre"`},
		{"with space", "a b", `GRANT "with space" TO "a b"`, `REVOKE "with space" FROM "a b"`},
		{`""`, `'; --`, `GRANT """""" TO "'; --"`, `REVOKE """""" FROM "'; --"`},
		{"a.b", "c", `GRANT "a.b" TO "c"`, `REVOKE "a.b" FROM "c"`},
	}
	for _, c := range cases {
		p := grant.PostgreSQLTarget{Connection: "legacy", Role: c.role, Member: c.member}
		if got := GrantSQL(p); got != c.grant {
			t.Errorf("GrantSQL(%q, %q) = %s, want %s", c.role, c.member, got, c.grant)
		}
		if got := RevokeSQL(p); got != c.revoke {
			t.Errorf("RevokeSQL(%q, %q) = %s, want %s", c.role, c.member, got, c.revoke)
		}
		p.WithAdminOption = true
		if got := GrantSQL(p); got != c.grant+" WITH ADMIN OPTION" {
			t.Errorf("GrantSQL with admin = %s", got)
		}
		if got := RevokeSQL(p); got != c.revoke {
			t.Errorf("RevokeSQL with admin = %s, want %s (REVOKE removes the admin option with the membership)", got, c.revoke)
		}
	}
}

func TestRevokeGrantedBySQL(t *testing.T) {
	p := grant.PostgreSQLTarget{Connection: "c", Role: "r", Member: "m"}
	if got, want := RevokeGrantedBySQL(p, `g"1`), `REVOKE "r" FROM "m" GRANTED BY "g""1"`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestRevokeStatementsPerGrantor(t *testing.T) {
	p := grant.PostgreSQLTarget{Connection: "c", Role: "r", Member: "m"}
	r := row{roleExists: true, memberExists: true, found: true, grantors: []string{"admin1", "postgres"}}
	if got := revokeStatements(p, r, false); len(got) != 1 || got[0] != `REVOKE "r" FROM "m"` {
		t.Fatalf("single-grantor catalog: %q", got)
	}
	got := revokeStatements(p, r, true)
	want := []string{`REVOKE "r" FROM "m" GRANTED BY "admin1"`, `REVOKE "r" FROM "m" GRANTED BY "postgres"`}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("multi-grantor catalog: %q, want %q", got, want)
	}
}

func TestQueriesUseParameters(t *testing.T) {
	for name, q := range map[string]string{"InspectSQL": InspectSQL, "RolesExistSQL": RolesExistSQL, "TerminateSQL": TerminateSQL} {
		if !strings.Contains(q, "$1") {
			t.Errorf("%s takes no parameter", name)
		}
	}
	for _, want := range []string{"unnest($1::text[], $2::text[])", "pg_catalog.pg_auth_members", "pg_catalog.pg_roles", "WITH ORDINALITY"} {
		if !strings.Contains(InspectSQL, want) {
			t.Errorf("InspectSQL lacks %q", want)
		}
	}
	if !strings.Contains(MultiGrantorSQL, "pg_attribute") || strings.Contains(MultiGrantorSQL, "version") {
		t.Error("multi-grantor detection must read the catalog, not the version string")
	}
}

func TestObserve(t *testing.T) {
	p := grant.PostgreSQLTarget{Connection: "legacy", Role: "r", Member: "m"}
	cases := []struct {
		r     row
		admin bool
		want  string
	}{
		{row{roleExists: true, memberExists: true}, false, "absent"},
		{row{roleExists: true, memberExists: true, found: true}, false, "present"},
		{row{roleExists: true, memberExists: true, found: true, admin: true}, false, "widened"},
		{row{roleExists: true, memberExists: true, found: true, admin: true}, true, "present"},
		{row{roleExists: true, memberExists: true, found: true}, true, "present"},
		{row{roleExists: false, memberExists: true}, false, "absent"},
	}
	for _, c := range cases {
		p.WithAdminOption = c.admin
		o := observe("legacy", p, c.r)
		if string(o.State) != c.want {
			t.Errorf("%+v admin=%v: %s, want %s", c.r, c.admin, o.State, c.want)
		}
		if !o.CheckedAt.IsZero() {
			t.Error("CheckedAt must be left for the caller")
		}
		if !strings.HasPrefix(o.Evidence, `{"check":"pg_auth_members","connection":"legacy","role":"r","member":"m",`) {
			t.Errorf("evidence %s", o.Evidence)
		}
	}
	o := observe("legacy", p, row{memberExists: true})
	if !strings.Contains(o.Evidence, `"missing":"role"`) {
		t.Errorf("evidence does not say the role is missing: %s", o.Evidence)
	}
}

func TestRevokeAdminOptionSQL(t *testing.T) {
	p := grant.PostgreSQLTarget{Role: `we"ird; DROP ROLE x`, Member: "Robot"}
	if got, want := RevokeAdminOptionSQL(p), `REVOKE ADMIN OPTION FOR "we""ird; DROP ROLE x" FROM "Robot"`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	if got, want := RevokeAdminOptionGrantedBySQL(p, "postgres"), `REVOKE ADMIN OPTION FOR "we""ird; DROP ROLE x" FROM "Robot" GRANTED BY "postgres"`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}
