package pgtest_test

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eventaccess/terraform-provider-eventaccess/internal/pgtest"
	"github.com/jackc/pgx/v5"
)

var srv *pgtest.Server

func TestMain(m *testing.M) {
	os.Exit(pgtest.RunMain(m, func(s *pgtest.Server) { srv = s }))
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

// tempDir is a temporary directory the postgres user can reach (t.TempDir's
// parent is private to the current user).
func tempDir(t *testing.T) string {
	d, err := os.MkdirTemp("", "pgtest-test-") //nolint:usetesting // t.TempDir's parent is mode 0700, so the postgres OS user cannot enter it
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(d) })
	return d
}

func TestURL(t *testing.T) {
	u, err := url.Parse(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	if u.User.Username() != "postgres" || u.Query().Get("sslmode") != "disable" {
		t.Fatalf("unexpected superuser URL shape (user %q)", u.User.Username())
	}
	if srv.Port() == 0 {
		t.Fatal("no port")
	}
	if !srv.External() && u.Hostname() != "127.0.0.1" {
		t.Fatalf("host %q, want 127.0.0.1", u.Hostname())
	}
}

func TestExecAndRoles(t *testing.T) {
	c := ctx(t)
	name := `pgtest we"ird; role`
	if err := srv.CreateRole(c, name, true, `pa's"s`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.DropRole(context.Background(), name) })
	conn, err := pgx.Connect(c, srv.URLFor(name, `pa's"s`, "postgres"))
	if err != nil {
		t.Fatalf("login as the new role: %v", err)
	}
	defer conn.Close(c)
	var who string
	if err := conn.QueryRow(c, "SELECT current_user").Scan(&who); err != nil || who != name {
		t.Fatalf("current_user = %q, %v", who, err)
	}
	if _, err := pgx.Connect(c, srv.URLFor(name, "wrong", "")); err == nil {
		t.Fatal("scram-sha-256 must reject a wrong password")
	}
	if err := srv.Exec(c, "SELECT $1::int", 1); err != nil {
		t.Fatal(err)
	}
}

func TestStopStart(t *testing.T) {
	if srv.External() {
		if err := srv.Stop(); err == nil {
			t.Fatal("Stop on an external server must fail")
		}
		return
	}
	c := ctx(t)
	if err := srv.Exec(c, "CREATE TABLE IF NOT EXISTS survives (x int)"); err != nil {
		t.Fatal(err)
	}
	port := srv.Port()
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if conn, err := pgx.Connect(c, srv.URL()); err == nil {
		conn.Close(c)
		t.Fatal("connected to a stopped server")
	}
	if err := srv.Start(c); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(c); err != nil {
		t.Fatalf("Start on a running server must do nothing: %v", err)
	}
	if srv.Port() != port {
		t.Fatalf("port changed: %d -> %d", port, srv.Port())
	}
	if err := srv.Exec(c, "SELECT * FROM survives"); err != nil {
		t.Fatalf("data lost across stop/start: %v", err)
	}
}

func TestStartInDirAndClose(t *testing.T) {
	c := ctx(t)
	dir := filepath.Join(tempDir(t), "pg")
	s, err := pgtest.StartWith(c, pgtest.Options{Dir: dir, IgnoreEnv: true})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "url"))
	if err != nil || strings.TrimSpace(string(b)) != s.URL() {
		t.Fatalf("url file: %v", err)
	}
	a, err := pgtest.Attach(dir)
	if err != nil {
		t.Fatal(err)
	}
	if a.URL() != s.URL() || a.Port() != s.Port() {
		t.Fatal("Attach does not see the same server")
	}
	if err := a.Exec(c, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("Close left %s behind", dir)
	}
	if os.Geteuid() == 0 {
		// t.TempDir's parent is private to root: the error must say so.
		_, err := pgtest.StartWith(c, pgtest.Options{Dir: t.TempDir(), IgnoreEnv: true})
		if err == nil || !strings.Contains(err.Error(), "cannot enter") {
			t.Fatalf("want a clear error about an unreachable directory, got %v", err)
		}
	}
}

func TestPgtmpCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	c := ctx(t)
	bin := filepath.Join(t.TempDir(), "pgtmp")
	if out, err := exec.CommandContext(c, "go", "build", "-o", bin, "./pgtmp").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	dir := filepath.Join(tempDir(t), "demo")
	out, err := exec.CommandContext(c, bin, "start", dir).Output()
	if err != nil {
		t.Fatalf("pgtmp start: %v", err)
	}
	u := strings.TrimSpace(string(out))
	conn, err := pgx.Connect(c, u)
	if err != nil {
		t.Fatalf("connect to the pgtmp server: %v", err)
	}
	conn.Close(c)
	if out, err := exec.CommandContext(c, bin, "stop", dir).CombinedOutput(); err != nil {
		t.Fatalf("pgtmp stop: %v\n%s", err, out)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatal("pgtmp stop left the directory")
	}
}
