package postgresql

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// ErrCannotConnect is wrapped by errors about a connection that could not be
// made (target down, refused, authentication failed, bad URL). Callers can treat
// them as "try again later".
var ErrCannotConnect = errors.New("cannot connect")

const redacted = "xxxxx"

var (
	urlPassword = regexp.MustCompile(`(://[^:/@\s]*):[^@\s]*@`)
	kvPassword  = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)
)

// Scrub returns msg with every secret of connURL replaced by "xxxxx": the URL
// itself, its password (as written, percent-decoded and percent-encoded) and,
// as a best effort, anything shaped like a password in a URL or in a
// keyword/value connection string.
func Scrub(msg, connURL string) string {
	var secrets []string
	if connURL != "" {
		secrets = append(secrets, connURL)
		if u, err := url.Parse(connURL); err == nil && u.User != nil {
			if pw, ok := u.User.Password(); ok && pw != "" {
				secrets = append(secrets, pw, url.QueryEscape(pw), url.PathEscape(pw), url.UserPassword("", pw).String()[1:])
			}
		}
		if cfg, err := pgconn.ParseConfig(connURL); err == nil && cfg.Password != "" {
			secrets = append(secrets, cfg.Password)
		}
	}
	for _, s := range secrets {
		if len(s) >= 1 && s != redacted {
			msg = strings.ReplaceAll(msg, s, redacted)
		}
	}
	msg = urlPassword.ReplaceAllString(msg, "${1}:"+redacted+"@")
	msg = kvPassword.ReplaceAllString(msg, "${1}"+redacted)
	return msg
}

// connectError is a connection failure with its secrets scrubbed. It does not
// unwrap to the driver's error (a pgconn.ParseConfigError carries the raw URL);
// it unwraps to ErrCannotConnect and, when relevant, the context's error.
type connectError struct {
	msg string
	ctx error
}

func (e *connectError) Error() string { return e.msg }

func (e *connectError) Unwrap() []error {
	if e.ctx != nil {
		return []error{ErrCannotConnect, e.ctx}
	}
	return []error{ErrCannotConnect}
}

// cannotConnect builds the error for connection name that could not be reached.
func cannotConnect(name, connURL string, err error) error {
	e := &connectError{msg: Scrub(`connection "`+name+`": cannot connect: `+err.Error(), connURL)}
	switch {
	case errors.Is(err, context.Canceled):
		e.ctx = context.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		e.ctx = context.DeadlineExceeded
	}
	return e
}

// opError is a failure reported while running a statement; its text is
// scrubbed, and it unwraps to the server's *pgconn.PgError (whose text holds no
// connection secrets) or the context's error.
type opError struct {
	msg string
	err error
}

func (e *opError) Error() string { return e.msg }
func (e *opError) Unwrap() error { return e.err }

// isConnectFailure reports whether err means the server could not be reached or
// the connection broke, rather than a statement failing.
func isConnectFailure(err error) bool {
	var ce *pgconn.ConnectError
	var pe *pgconn.ParseConfigError
	if errors.As(err, &ce) || errors.As(err, &pe) {
		return true
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		// Class 08: connection exception; 57P01..57P03: admin shutdown, crash
		// shutdown, cannot connect now; 28: invalid authorization.
		return strings.HasPrefix(pg.Code, "08") || strings.HasPrefix(pg.Code, "28") ||
			pg.Code == "57P01" || pg.Code == "57P02" || pg.Code == "57P03"
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || pgconn.SafeToRetry(err) || strings.Contains(err.Error(), "conn closed")
}

// wrapErr builds the error of a failed operation on connection name.
func wrapErr(name, connURL, what string, err error) error {
	if err == nil {
		return nil
	}
	if isConnectFailure(err) {
		return cannotConnect(name, connURL, err)
	}
	var inner error
	var pg *pgconn.PgError
	switch {
	case errors.As(err, &pg):
		inner = pg
	case errors.Is(err, context.Canceled):
		inner = context.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		inner = context.DeadlineExceeded
	}
	return &opError{msg: Scrub(`connection "`+name+`": `+what+": "+err.Error(), connURL), err: inner}
}
