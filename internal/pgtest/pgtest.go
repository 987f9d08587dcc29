// Package pgtest runs a throwaway PostgreSQL server for tests and the demo.
//
// Start initialises a fresh cluster in a temporary directory (initdb with
// scram-sha-256 authentication and a random superuser password), listens only on
// 127.0.0.1 on a free port, and tunes it for speed over durability (fsync off):
// it is meant to be thrown away. When the environment variable
// EVENTACCESS_TEST_POSTGRES_URL is set, Start uses that server instead (a
// superuser URL); Stop and Start then return errors.
//
// PostgreSQL refuses to run as root. When the current user is root, the server
// binaries are run as the "postgres" user through runuser(1).
//
// Nothing here skips: if PostgreSQL is missing, Start returns an error that says
// what is missing and how to install it.
package pgtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// EnvURL names the environment variable that points the tests at an existing
// PostgreSQL server (a superuser URL) instead of starting a throwaway one.
const EnvURL = "EVENTACCESS_TEST_POSTGRES_URL"

// EnvBinDir names an optional environment variable with the directory of the
// PostgreSQL server binaries (initdb, pg_ctl, postgres). When unset, the newest
// /usr/lib/postgresql/*/bin is used, else the directory of initdb on PATH.
const EnvBinDir = "EVENTACCESS_TEST_POSTGRES_BIN"

// installHint is appended to errors about missing PostgreSQL pieces.
const installHint = "install the PostgreSQL server with `apt-get install postgresql` (Debian/Ubuntu), or set " +
	EnvURL + " to the superuser URL of an existing server"

// urlFile is the file, inside a server's directory, that holds its superuser URL.
const urlFile = "url"

// Server is a PostgreSQL server used by tests: either a throwaway one owned by
// this process (or by a pgtmp directory), or an external one named by
// EVENTACCESS_TEST_POSTGRES_URL.
type Server struct {
	external bool
	url      *url.URL // superuser URL

	// Throwaway servers only.
	dir    string // root directory: data/, socket, log, url
	binDir string
	port   int
	detach bool // start the server in its own process group (pgtmp)
	asUser string

	mu   sync.Mutex
	pool *pgxpool.Pool
}

// Options tune StartWith.
type Options struct {
	// Dir is the directory that holds the server (data, socket, log, url file).
	// It is created when missing and must be empty. "" means a new temporary
	// directory.
	Dir string
	// Detach starts the server in its own process group so that it survives
	// the process that started it and a Ctrl-C in its terminal (pgtmp).
	Detach bool
	// IgnoreEnv starts a throwaway server even when EVENTACCESS_TEST_POSTGRES_URL is set.
	IgnoreEnv bool
}

// Start returns a running server: the one named by EVENTACCESS_TEST_POSTGRES_URL
// when set, else a new throwaway server in a temporary directory. Close it when done.
func Start(ctx context.Context) (*Server, error) {
	return StartWith(ctx, Options{})
}

// StartWith is Start with options.
func StartWith(ctx context.Context, o Options) (*Server, error) {
	if u := os.Getenv(EnvURL); u != "" && !o.IgnoreEnv {
		return external(ctx, u)
	}
	return startThrowaway(ctx, o)
}

func external(ctx context.Context, raw string) (*Server, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, fmt.Errorf("pgtest: %s is not a postgres:// URL", EnvURL)
	}
	s := &Server{external: true, url: u}
	if p, err := strconv.Atoi(u.Port()); err == nil {
		s.port = p
	} else {
		s.port = 5432
	}
	if err := s.waitReady(ctx, 30*time.Second); err != nil {
		return nil, fmt.Errorf("pgtest: the server named by %s does not accept connections: %w", EnvURL, err)
	}
	return s, nil
}

// BinDir finds the directory of the PostgreSQL server binaries, or returns an
// error that says what is missing and how to install it.
func BinDir() (string, error) {
	if d := os.Getenv(EnvBinDir); d != "" {
		if err := checkBinDir(d); err != nil {
			return "", fmt.Errorf("pgtest: %s=%s: %w", EnvBinDir, d, err)
		}
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if checkBinDir(d) == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r
		}
		d := filepath.Dir(p)
		if err := checkBinDir(d); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("pgtest: PostgreSQL server binaries not found: no initdb, pg_ctl and postgres in /usr/lib/postgresql/*/bin nor on PATH; %s", installHint)
}

func versionOf(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}

func checkBinDir(d string) error {
	var missing []string
	for _, b := range []string{"initdb", "pg_ctl", "postgres"} {
		if fi, err := os.Stat(filepath.Join(d, b)); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s in %s", strings.Join(missing, ", "), d)
	}
	return nil
}

// runAs returns the user the server binaries run as: "" for the current user,
// "postgres" when the current user is root (PostgreSQL refuses to run as root).
func runAs() (string, error) {
	if os.Geteuid() != 0 {
		return "", nil
	}
	if _, err := user.Lookup("postgres"); err != nil {
		return "", fmt.Errorf("pgtest: running as root, and PostgreSQL refuses to run as root, but there is no user \"postgres\" to run it as; %s (it creates that user), or run the tests as a non-root user", installHint)
	}
	if _, err := exec.LookPath("runuser"); err != nil {
		return "", errors.New("pgtest: running as root, and PostgreSQL refuses to run as root, but runuser(1) is missing to run it as user \"postgres\"; install util-linux, or run the tests as a non-root user")
	}
	return "postgres", nil
}

func randomPassword() (string, error) {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// freePort asks the kernel for a free TCP port on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: cannot find a free port on 127.0.0.1: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func startThrowaway(ctx context.Context, o Options) (s *Server, err error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	as, err := runAs()
	if err != nil {
		return nil, err
	}
	dir := o.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "eventaccess-pgtest-"); err != nil {
			return nil, fmt.Errorf("pgtest: cannot create a temporary directory: %w", err)
		}
	} else {
		if dir, err = filepath.Abs(dir); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("pgtest: cannot create %s: %w", dir, err)
		}
		if ents, _ := os.ReadDir(dir); len(ents) > 0 {
			return nil, fmt.Errorf("pgtest: %s is not empty; give a new or empty directory", dir)
		}
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dir)
		}
	}()
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, err
	}
	if as != "" {
		if err := chownTo(dir, as); err != nil {
			return nil, err
		}
		if err := reachable(ctx, dir, as); err != nil {
			return nil, err
		}
	}

	pw, err := randomPassword()
	if err != nil {
		return nil, err
	}
	pwfile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(pw+"\n"), 0o600); err != nil {
		return nil, err
	}
	if as != "" {
		if err := chownTo(pwfile, as); err != nil {
			return nil, err
		}
	}
	s = &Server{dir: dir, binDir: bin, detach: o.Detach, asUser: as}
	data := s.dataDir()
	if out, err := s.run(ctx, "initdb", "-D", data, "-U", "postgres", "--pwfile="+pwfile,
		"--auth=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-instructions"); err != nil {
		return nil, fmt.Errorf("pgtest: initdb failed: %w\n%s", err, out)
	}
	_ = os.Remove(pwfile)

	// Retry on a port race (another process took the port between freePort and listen).
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		if err := s.writeConf(port); err != nil {
			return nil, err
		}
		s.port = port
		s.url = &url.URL{Scheme: "postgres", User: url.UserPassword("postgres", pw),
			Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Path: "/postgres", RawQuery: "sslmode=disable"}
		if lastErr = s.Start(ctx); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		return nil, lastErr
	}
	if err := os.WriteFile(filepath.Join(dir, urlFile), []byte(s.URL()+"\n"), 0o600); err != nil {
		_ = s.Stop()
		return nil, err
	}
	if !o.Detach {
		s.watchdog()
	}
	return s, nil
}

// watchdogScript stops the server and removes its directory once the process
// that started it is gone without calling Close (a test binary killed by its
// timeout, a panic in TestMain). Arguments: pid, dir, pg_ctl, data dir.
const watchdogScript = `while [ -d "/proc/$1" ] && [ -d "$2" ]; do sleep 1; done
if [ -d "$2" ]; then "$3" stop -D "$4" -m immediate >/dev/null 2>&1; rm -rf "$2"; fi`

// watchdog starts the watchdog in its own process group, as the server's user.
func (s *Server) watchdog() {
	args := []string{"-c", watchdogScript, "pgtest-watchdog", strconv.Itoa(os.Getpid()), s.dir,
		filepath.Join(s.binDir, "pg_ctl"), s.dataDir()}
	var cmd *exec.Cmd
	if s.asUser != "" {
		cmd = exec.Command("runuser", append([]string{"-u", s.asUser, "--", "sh"}, args...)...)
	} else {
		cmd = exec.Command("sh", args...)
	}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if cmd.Start() == nil {
		go func() { _ = cmd.Wait() }()
	}
}

// reachable checks that user as can enter and write dir (every parent must be
// searchable by it).
func reachable(ctx context.Context, dir, as string) error {
	if err := exec.CommandContext(ctx, "runuser", "-u", as, "--", "test", "-x", dir, "-a", "-w", dir).Run(); err != nil {
		return fmt.Errorf("pgtest: user %q cannot enter %s: a parent directory is not searchable by it; choose a directory under %s, or make the parents searchable (chmod o+x)", as, dir, os.TempDir())
	}
	return nil
}

func chownTo(path, name string) error {
	u, err := user.Lookup(name)
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(path, uid, gid); err != nil {
		return fmt.Errorf("pgtest: cannot give %s to user %s: %w", path, name, err)
	}
	return nil
}

func (s *Server) dataDir() string { return filepath.Join(s.dir, "data") }
func (s *Server) logFile() string { return filepath.Join(s.dir, "postgres.log") }

// writeConf appends the throwaway settings to postgresql.conf. Later lines win,
// so it can be called again with another port.
func (s *Server) writeConf(port int) error {
	conf := fmt.Sprintf(`
# pgtest: throwaway server, speed over durability
listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = '%s'
fsync = off
full_page_writes = off
synchronous_commit = off
max_connections = 200
shared_buffers = 32MB
log_min_messages = warning
`, port, strings.ReplaceAll(s.dir, "'", "''"))
	f, err := os.OpenFile(filepath.Join(s.dataDir(), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("pgtest: cannot write postgresql.conf: %w", err)
	}
	defer f.Close()
	_, err = f.WriteString(conf)
	return err
}

// run runs a server binary (as the postgres user when root) and returns its output.
func (s *Server) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	path := filepath.Join(s.binDir, name)
	var cmd *exec.Cmd
	if s.asUser != "" {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", s.asUser, "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	cmd.Dir = s.dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C", "LANG=C", "TZ=UTC"}
	if s.detach {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return out.Bytes(), err
}

// Start starts a stopped throwaway server again, on the same port and data.
// Use it with Stop to test "target down, then back". Starting a running server
// does nothing.
func (s *Server) Start(ctx context.Context) error {
	if s.external {
		return fmt.Errorf("pgtest: cannot start the external server named by %s", EnvURL)
	}
	if _, err := s.run(ctx, "pg_ctl", "status", "-D", s.dataDir()); err == nil {
		return s.waitReady(ctx, 30*time.Second)
	}
	out, err := s.run(ctx, "pg_ctl", "start", "-D", s.dataDir(), "-l", s.logFile(), "-w", "-t", "60")
	if err != nil {
		return fmt.Errorf("pgtest: pg_ctl start failed: %w\n%s\n--- %s (tail) ---\n%s", err, out, s.logFile(), tail(s.logFile(), 20))
	}
	if err := s.waitReady(ctx, 30*time.Second); err != nil {
		return fmt.Errorf("pgtest: server started but does not accept connections: %w\n--- %s (tail) ---\n%s", err, s.logFile(), tail(s.logFile(), 20))
	}
	return nil
}

// Stop stops a throwaway server (pg_ctl stop -m fast) and keeps its data, so
// Start can bring it back.
func (s *Server) Stop() error {
	if s.external {
		return fmt.Errorf("pgtest: cannot stop the external server named by %s", EnvURL)
	}
	s.closePool()
	out, err := s.run(context.Background(), "pg_ctl", "stop", "-D", s.dataDir(), "-m", "fast", "-w", "-t", "60")
	if err != nil {
		return fmt.Errorf("pgtest: pg_ctl stop failed: %w\n%s", err, out)
	}
	return nil
}

// Close stops a throwaway server and removes its directory. For an external
// server it only closes the pool.
func (s *Server) Close() error {
	if s == nil {
		return nil
	}
	s.closePool()
	if s.external {
		return nil
	}
	var err error
	if _, statErr := os.Stat(filepath.Join(s.dataDir(), "postmaster.pid")); statErr == nil {
		err = s.Stop()
	}
	if rmErr := os.RemoveAll(s.dir); rmErr != nil {
		err = errors.Join(err, rmErr)
	}
	return err
}

// Dir is the directory that holds a throwaway server ("" for an external one).
func (s *Server) Dir() string { return s.dir }

// External reports whether the server is the one named by EVENTACCESS_TEST_POSTGRES_URL.
func (s *Server) External() bool { return s.external }

// URL is the superuser URL, e.g. postgres://postgres:PW@127.0.0.1:PORT/postgres?sslmode=disable.
// It holds a password: do not log it.
func (s *Server) URL() string { return s.url.String() }

// URLFor is a URL for another user, password and database on the same server.
// An empty db means the superuser URL's database.
func (s *Server) URLFor(user, password, db string) string {
	u := *s.url
	u.User = url.UserPassword(user, password)
	if db != "" {
		u.Path = "/" + db
		u.RawPath = ""
	}
	return u.String()
}

// Port is the TCP port the server listens on.
func (s *Server) Port() int { return s.port }

// Pool returns a pool of superuser connections, created on first use and closed
// by Stop and Close.
func (s *Server) Pool(ctx context.Context) (*pgxpool.Pool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pool != nil {
		return s.pool, nil
	}
	cfg, err := pgxpool.ParseConfig(s.URL())
	if err != nil {
		return nil, errors.New("pgtest: cannot parse the superuser URL")
	}
	cfg.MaxConns = 8
	p, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	s.pool = p
	return p, nil
}

func (s *Server) closePool() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pool != nil {
		s.pool.Close()
		s.pool = nil
	}
}

// Conn opens a new single connection with the given URL (close it when done).
func Conn(ctx context.Context, connURL string) (*pgx.Conn, error) {
	return pgx.Connect(ctx, connURL)
}

// Exec runs one SQL statement as the superuser.
func (s *Server) Exec(ctx context.Context, sql string, args ...any) error {
	p, err := s.Pool(ctx)
	if err != nil {
		return err
	}
	_, err = p.Exec(ctx, sql, args...)
	return err
}

// CreateRole creates a role (name quoted as an identifier), with LOGIN and the
// password when login is true. An empty password means none.
func (s *Server) CreateRole(ctx context.Context, name string, login bool, password string) error {
	q := "CREATE ROLE " + pgx.Identifier{name}.Sanitize()
	if login {
		q += " LOGIN"
	} else {
		q += " NOLOGIN"
	}
	if password != "" {
		q += " PASSWORD " + QuoteLiteral(password)
	}
	return s.Exec(ctx, q)
}

// DropRole drops a role if it exists (name quoted as an identifier).
func (s *Server) DropRole(ctx context.Context, name string) error {
	return s.Exec(ctx, "DROP ROLE IF EXISTS "+pgx.Identifier{name}.Sanitize())
}

// QuoteLiteral quotes s as an SQL string literal (standard_conforming_strings on).
func QuoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

func (s *Server) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var err error
	for {
		var c *pgx.Conn
		c, err = pgx.Connect(ctx, s.URL())
		if err == nil {
			err = c.Ping(ctx)
			_ = c.Close(context.Background())
			if err == nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return scrub(err, s.url)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// scrub removes the password of u from err's text.
func scrub(err error, u *url.URL) error {
	if err == nil || u == nil {
		return err
	}
	pw, ok := u.User.Password()
	if !ok || pw == "" || !strings.Contains(err.Error(), pw) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), pw, "xxxxx"))
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log)"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Attach returns the throwaway server that lives in dir (started by
// StartWith with Options.Dir, e.g. by `pgtmp start DIR`), without starting it.
func Attach(dir string) (*Server, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(dir, urlFile))
	if err != nil {
		return nil, fmt.Errorf("pgtest: %s does not hold a pgtest server (no %s file): %w", dir, urlFile, err)
	}
	u, err := url.Parse(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("pgtest: %s/%s does not hold a URL", dir, urlFile)
	}
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	as, err := runAs()
	if err != nil {
		return nil, err
	}
	port, _ := strconv.Atoi(u.Port())
	return &Server{dir: dir, binDir: bin, asUser: as, url: u, port: port, detach: true}, nil
}

// RunMain starts a server, hands it to set, runs the tests, closes the server
// and returns the exit code. Use it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.RunMain(m, func(s *pgtest.Server) { srv = s })) }
//
// When the server cannot start, it prints a loud FATAL message and returns 1:
// tests that need PostgreSQL never skip.
func RunMain(m interface{ Run() int }, set func(*Server)) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	s, err := Start(ctx)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "\n========================================================================\n"+
			"FATAL: cannot start PostgreSQL for the tests:\n%v\n"+
			"========================================================================\n\n", err)
		return 1
	}
	set(s)
	code := m.Run()
	if err := s.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: closing the server: %v\n", err)
	}
	return code
}
