package ledger

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// EnvLedger is the environment variable that selects the ledger.
const EnvLedger = "EVENTACCESS_LEDGER"

// DefaultPath is the SQLite file used when no ledger is configured.
const DefaultPath = "eventaccess.db"

// ErrPostgresUnavailable is returned by Open for a postgres:// ledger URL: the
// shared PostgreSQL ledger is reserved for a later version.
var ErrPostgresUnavailable = errors.New("the shared PostgreSQL ledger is not available in this version; use a SQLite file")

// DefaultDSN returns the ledger to use when none is given explicitly: the value
// of EVENTACCESS_LEDGER if set, else "eventaccess.db" in the working directory.
func DefaultDSN(getenv func(string) string) string {
	if getenv != nil {
		if v := strings.TrimSpace(getenv(EnvLedger)); v != "" {
			return v
		}
	}
	return DefaultPath
}

// Open opens the ledger named by dsn and brings its schema up to date:
//
//   - "sqlite:PATH", "file:PATH" or a plain PATH: the embedded SQLite store,
//     created if the file does not exist (its directory must exist). SQLite
//     URI parameters after '?' (such as mode=ro) are passed through.
//   - ":memory:": a private in-memory SQLite ledger (for tests).
//   - "postgres://" or "postgresql://": reserved; returns ErrPostgresUnavailable.
//
// Open fails when the ledger cannot be written, so a misconfigured path is
// reported at start-up rather than at the first revoke.
func Open(ctx context.Context, dsn string) (Store, error) {
	s, err := OpenSQLite(ctx, dsn)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// sqliteDSN is a parsed SQLite ledger location.
type sqliteDSN struct {
	path   string     // file path as given (after the scheme), or ":memory:"
	params url.Values // SQLite URI parameters given by the user
	memory bool
}

var schemeRE = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.-]*)://`)

// parseDSN classifies dsn; it returns an error for anything but SQLite.
func parseDSN(dsn string) (sqliteDSN, error) {
	if strings.TrimSpace(dsn) == "" {
		return sqliteDSN{}, fmt.Errorf("no ledger configured: set %s, the provider's ledger attribute or the sweeper's --ledger flag to a SQLite file path (for example %s)", EnvLedger, DefaultPath)
	}
	lower := strings.ToLower(dsn)
	switch {
	case strings.HasPrefix(lower, "postgres://"), strings.HasPrefix(lower, "postgresql://"):
		return sqliteDSN{}, fmt.Errorf("ledger %s: %w", Describe(dsn), ErrPostgresUnavailable)
	case strings.HasPrefix(lower, "sqlite:"):
		dsn = dsn[len("sqlite:"):]
	case strings.HasPrefix(lower, "file:"):
		dsn = dsn[len("file:"):]
	default:
		if m := schemeRE.FindStringSubmatch(dsn); m != nil {
			return sqliteDSN{}, fmt.Errorf("ledger %s: unsupported URL scheme %q; use a SQLite file path, a sqlite: URL or a postgres:// URL", Describe(dsn), m[1])
		}
	}
	// "sqlite:///abs/path" and "file:///abs/path" name /abs/path.
	dsn = strings.TrimPrefix(dsn, "//")
	var d sqliteDSN
	if i := strings.IndexByte(dsn, '?'); i >= 0 {
		q, err := url.ParseQuery(dsn[i+1:])
		if err != nil {
			return sqliteDSN{}, fmt.Errorf("ledger %s: bad parameters after '?': %w", Describe(dsn), err)
		}
		for k := range q {
			if strings.HasPrefix(k, "_") {
				return sqliteDSN{}, fmt.Errorf("ledger %s: parameter %q is set by eventaccess and cannot be overridden; remove it", Describe(dsn), k)
			}
		}
		d.params = q
		dsn = dsn[:i]
	}
	if dsn == "" {
		return sqliteDSN{}, errors.New("ledger URL names no file: give a path, for example sqlite:/var/lib/eventaccess/ledger.db")
	}
	d.path = dsn
	d.memory = dsn == ":memory:"
	return d, nil
}

// driverDSN is the modernc.org/sqlite data source name for d: a file: URI with
// the connection settings every ledger connection needs.
func (d sqliteDSN) driverDSN() (string, error) {
	q := url.Values{}
	for k, v := range d.params {
		q[k] = v
	}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Set("_txlock", "immediate")
	if d.memory {
		return "file::memory:?" + q.Encode(), nil
	}
	q.Add("_pragma", "journal_mode(WAL)")
	abs, err := filepath.Abs(d.path)
	if err != nil {
		return "", fmt.Errorf("ledger %s: cannot resolve the path: %w", d.path, err)
	}
	// SQLite decodes %HH in URI file names; escape what would end the path.
	r := strings.NewReplacer("%", "%25", "?", "%3F", "#", "%23")
	return "file:" + r.Replace(filepath.ToSlash(abs)) + "?" + q.Encode(), nil
}

// notWritable explains why the ledger at path cannot be opened for writing.
func notWritable(d sqliteDSN, cause error) error {
	path := d.path
	hint := "make the file and its directory writable by this user, or point " + EnvLedger + " at another path"
	if m := d.params.Get("mode"); m == "ro" {
		hint = "it was opened with mode=ro; remove mode=ro: eventaccess writes to its ledger"
	} else if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		hint = "it is a directory; give the path of a file inside it, for example " + filepath.Join(path, DefaultPath)
	} else if dir := filepath.Dir(path); dir != "" {
		if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
			hint = fmt.Sprintf("the directory %s does not exist; create it or choose another path", dir)
		}
	}
	return fmt.Errorf("ledger %s is not writable: %w; %s", path, cause, hint)
}

var (
	userinfoRE = regexp.MustCompile(`(://[^/@:]*):[^/@]*@`)
	kvPassRE   = regexp.MustCompile(`(?i)\b(password|passwd|pwd)=('[^']*'|[^\s&]*)`)
)

// Describe returns dsn fit for logs and error messages: any password, in the
// URL's user information or as a password= parameter, is replaced by "xxxxx".
func Describe(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.Scheme != "" {
		changed := false
		if u.User != nil {
			if _, ok := u.User.Password(); ok {
				u.User = url.UserPassword(u.User.Username(), "xxxxx")
				changed = true
			}
		}
		q := u.Query()
		for k := range q {
			switch strings.ToLower(k) {
			case "password", "passwd", "pwd":
				q.Set(k, "xxxxx")
				changed = true
			}
		}
		if !changed {
			return dsn
		}
		u.RawQuery = q.Encode()
		return u.String()
	}
	// Not a URL (or unparsable, which may be a password with odd characters):
	// redact textually.
	s := userinfoRE.ReplaceAllString(dsn, "${1}:xxxxx@")
	return kvPassRE.ReplaceAllString(s, "${1}=xxxxx")
}
