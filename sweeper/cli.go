package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/eventaccess/terraform-provider-eventaccess/internal/clock"
	"github.com/eventaccess/terraform-provider-eventaccess/internal/grant"
	"github.com/eventaccess/terraform-provider-eventaccess/internal/ledger"
	"github.com/eventaccess/terraform-provider-eventaccess/internal/sweep"
	"github.com/eventaccess/terraform-provider-eventaccess/internal/target"
	"github.com/eventaccess/terraform-provider-eventaccess/internal/target/postgresql"
)

// Exit codes a scheduler can alert on.
const (
	exitClean  = 0
	exitFailed = 1 // some grant could not be revoked or verified, or is irrevocable
	exitConfig = 2 // bad configuration or ledger unreachable
)

const usage = `eventaccess-sweeper ends temporary access when its business event ends.

Usage:
  eventaccess-sweeper [flags] plan                       what would be revoked and why (dry run)
  eventaccess-sweeper [flags] run                        revoke due and drifted grants, verify, record, report
  eventaccess-sweeper [flags] list [--status S] [--event E] [--owner O]
                                                         grants with status, owner, event, expiry, drift
  eventaccess-sweeper [flags] close-event EVENT_ID [--reason TEXT]
                                                         close a business event: its grants become due
  eventaccess-sweeper [flags] retry GRANT_ID             an irrevocable grant becomes due again

Flags (before or after the command):
  --ledger URL     the ledger: a SQLite file path or sqlite: URL
                   (default: $EVENTACCESS_LEDGER, else ./eventaccess.db)
  --config FILE    JSON settings: {"connections": {"NAME": {"url": "postgres://..."}},
                   "max_attempts": 6, "lease": "5m"}
  --json           machine-readable output on stdout
  --at TIME        evaluate as of another moment (RFC 3339, e.g. 2026-11-06T17:00:00Z)
  --log-level L    debug, info, warn or error (default info); logs go to stderr

Connections are resolved like the provider does: the config file first, else the
environment variable EVENTACCESS_CONNECTION_<NAME> (the name upper-cased).

Exit codes: 0 clean; 1 some grant could not be revoked or verified, or is
irrevocable; 2 bad configuration or ledger unreachable.
`

// options are the flags every command accepts.
type options struct {
	ledger   string
	config   string
	json     bool
	at       string
	logLevel string
	// list
	status, event, owner string
	// close-event
	reason string
}

func (o *options) register(fs *flag.FlagSet, cmd string) {
	fs.StringVar(&o.ledger, "ledger", o.ledger, "the ledger (SQLite file path or sqlite: URL)")
	fs.StringVar(&o.config, "config", o.config, "JSON settings file (connections, max_attempts, lease)")
	fs.BoolVar(&o.json, "json", o.json, "machine-readable output on stdout")
	fs.StringVar(&o.at, "at", o.at, "evaluate as of this moment (RFC 3339)")
	fs.StringVar(&o.logLevel, "log-level", o.logLevel, "debug, info, warn or error")
	switch cmd {
	case "list":
		fs.StringVar(&o.status, "status", "", "only grants with this status (active, due, revoked, irrevocable; comma-separated)")
		fs.StringVar(&o.event, "event", "", "only grants of this event")
		fs.StringVar(&o.owner, "owner", "", "only grants of this owner")
	case "close-event":
		fs.StringVar(&o.reason, "reason", "", "why the event is closed (recorded in the ledger)")
	}
}

// fileConfig is the --config file.
type fileConfig struct {
	Connections map[string]struct {
		URL string `json:"url"`
	} `json:"connections"`
	MaxAttempts     int    `json:"max_attempts"`
	Lease           string `json:"lease"`
	TombstoneWindow string `json:"tombstone_window"`
	BatchSize       int    `json:"batch_size"`
}

// usageError is a problem with the command line: exit 2 and a hint.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// parse splits args into the command, its positional arguments and options.
// Flags may come before or after the command and between positional arguments.
func parse(args []string, getenv func(string) string) (string, []string, *options, error) {
	o := &options{ledger: ledger.DefaultDSN(getenv), logLevel: "info"}
	global := flag.NewFlagSet("eventaccess-sweeper", flag.ContinueOnError)
	global.SetOutput(io.Discard)
	o.register(global, "")
	if err := global.Parse(args); err != nil {
		return "", nil, nil, usageError{err.Error()}
	}
	rest := global.Args()
	if len(rest) == 0 {
		return "", nil, nil, usageError{"no command given"}
	}
	cmd := rest[0]
	switch cmd {
	case "plan", "run", "list", "close-event", "retry":
	case "help", "-h", "--help":
		return "help", nil, o, nil
	default:
		return "", nil, nil, usageError{fmt.Sprintf("unknown command %q", cmd)}
	}
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o.register(fs, cmd)
	var pos []string
	rest = rest[1:]
	for {
		if err := fs.Parse(rest); err != nil {
			return "", nil, nil, usageError{fmt.Sprintf("%s: %v", cmd, err)}
		}
		rest = fs.Args()
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		rest = rest[1:]
	}
	want := map[string]int{"plan": 0, "run": 0, "list": 0, "close-event": 1, "retry": 1}[cmd]
	if len(pos) != want {
		switch want {
		case 0:
			return "", nil, nil, usageError{fmt.Sprintf("%s takes no arguments, got %q", cmd, strings.Join(pos, " "))}
		default:
			what := map[string]string{"close-event": "EVENT_ID", "retry": "GRANT_ID"}[cmd]
			return "", nil, nil, usageError{fmt.Sprintf("%s needs exactly one argument, %s", cmd, what)}
		}
	}
	return cmd, pos, o, nil
}

// run is the whole command: it returns the exit code.
func run(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	cmd, pos, o, err := parse(args, getenv)
	if err != nil {
		fmt.Fprintf(stderr, "eventaccess-sweeper: %v\n\n%s", err, usage)
		return exitConfig
	}
	if cmd == "help" {
		fmt.Fprint(stdout, usage)
		return exitClean
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		fmt.Fprintf(stderr, "eventaccess-sweeper: --log-level %q: use debug, info, warn or error\n", o.logLevel)
		return exitConfig
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	a, err := setup(ctx, o, getenv, log)
	if err != nil {
		log.Error("cannot start", "error", err)
		fmt.Fprintf(stderr, "eventaccess-sweeper: %v\n", err)
		return exitConfig
	}
	defer a.close()

	switch cmd {
	case "plan":
		return a.sweep(ctx, stdout, stderr, true)
	case "run":
		return a.sweep(ctx, stdout, stderr, false)
	case "list":
		return a.list(ctx, stdout, stderr)
	case "close-event":
		return a.closeEvent(ctx, stdout, stderr, pos[0])
	case "retry":
		return a.retry(ctx, stdout, stderr, pos[0])
	}
	return exitConfig
}

// app is a configured sweeper: ledger, targets, engine.
type app struct {
	opts   *options
	log    *slog.Logger
	clock  clock.Clock
	ledger ledger.Store
	target target.Target
	conns  target.Connections
	engine *sweep.Engine
}

// setup reads the configuration and opens the ledger. Errors are exit 2.
func setup(ctx context.Context, o *options, getenv func(string) string, log *slog.Logger) (*app, error) {
	var cfg fileConfig
	if o.config != "" {
		b, err := os.ReadFile(o.config)
		if err != nil {
			return nil, fmt.Errorf("reading the config file: %w", err)
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cfg); err != nil {
			return nil, fmt.Errorf("config file %s is not valid (%w); expected {\"connections\": {\"NAME\": {\"url\": \"...\"}}, \"max_attempts\": 6, \"lease\": \"5m\"}", o.config, err)
		}
	}
	eng := &sweep.Engine{MaxAttempts: cfg.MaxAttempts, BatchSize: cfg.BatchSize, Logger: log}
	if cfg.MaxAttempts < 0 {
		return nil, fmt.Errorf("config file %s: max_attempts must be positive, got %d", o.config, cfg.MaxAttempts)
	}
	for name, d := range map[string]*time.Duration{"lease": &eng.Lease, "tombstone_window": &eng.TombstoneWindow} {
		v := map[string]string{"lease": cfg.Lease, "tombstone_window": cfg.TombstoneWindow}[name]
		if v == "" {
			continue
		}
		dur, err := time.ParseDuration(v)
		if err != nil || dur <= 0 {
			return nil, fmt.Errorf("config file %s: %s %q is not a positive duration such as \"5m\"", o.config, name, v)
		}
		*d = dur
	}
	configured := map[string]string{}
	for name, c := range cfg.Connections {
		if err := grant.ValidConnectionName(name); err != nil {
			return nil, fmt.Errorf("config file %s: %w", o.config, err)
		}
		if strings.TrimSpace(c.URL) == "" {
			return nil, fmt.Errorf("config file %s: connection %q has no url", o.config, name)
		}
		configured[name] = c.URL
	}

	var clk clock.Clock = clock.Real{}
	if o.at != "" {
		t, err := time.Parse(time.RFC3339, o.at)
		if err != nil {
			return nil, fmt.Errorf("--at %q is not an RFC 3339 time such as 2026-11-06T17:00:00Z", o.at)
		}
		clk = clock.Fixed(t.UTC())
	}

	led, err := ledger.Open(ctx, o.ledger)
	if err != nil {
		return nil, fmt.Errorf("cannot open the ledger %s: %w", ledger.Describe(o.ledger), err)
	}
	conns := target.Connections{Configured: configured, Getenv: getenv}
	tgt := target.Mux{grant.TargetPostgreSQL: postgresql.New(conns)}
	eng.Ledger, eng.Target, eng.Clock = led, tgt, clk
	log.Debug("configured", "ledger", ledger.Describe(o.ledger), "connections", len(configured), "at", clk.Now())
	return &app{opts: o, log: log, clock: clk, ledger: led, target: tgt, conns: conns, engine: eng}, nil
}

func (a *app) close() {
	if err := a.target.Close(); err != nil {
		a.log.Warn("closing target connections", "error", err)
	}
	if err := a.ledger.Close(); err != nil {
		a.log.Warn("closing the ledger", "error", err)
	}
}

// sweep runs or plans a sweep and prints its report.
func (a *app) sweep(ctx context.Context, stdout, stderr io.Writer, dry bool) int {
	// A connection nobody configured is a configuration mistake, not a failing
	// target: say so up front (exit 2) instead of recording failed attempts
	// until the grants become irrevocable.
	if err := a.checkConnections(ctx); err != nil {
		a.log.Error("cannot sweep", "error", err)
		fmt.Fprintf(stderr, "eventaccess-sweeper: %v\n", err)
		return exitConfig
	}
	var (
		rep *sweep.Report
		err error
	)
	if dry {
		rep, err = a.engine.Plan(ctx)
	} else {
		rep, err = a.engine.Run(ctx)
	}
	if rep != nil {
		if perr := a.print(stdout, rep, func(w io.Writer) { writeReport(w, rep) }); perr != nil {
			fmt.Fprintf(stderr, "eventaccess-sweeper: writing the report: %v\n", perr)
		}
	}
	switch {
	case err != nil:
		a.log.Error("sweep stopped", "error", err)
		fmt.Fprintf(stderr, "eventaccess-sweeper: %v\n", err)
		if sweep.IsLedgerError(err) || rep == nil {
			return exitConfig
		}
		return exitFailed
	case !rep.Clean():
		return exitFailed
	}
	return exitClean
}

// checkConnections resolves every connection that a grant still holding its
// permission names. Nothing is touched; the error never contains a URL.
func (a *app) checkConnections(ctx context.Context) error {
	gs, err := a.ledger.ListGrants(ctx, ledger.Filter{Statuses: []grant.Status{grant.StatusActive, grant.StatusDue, grant.StatusIrrevocable}})
	if err != nil {
		return fmt.Errorf("reading the grants from the ledger: %w", err)
	}
	seen := map[string]bool{}
	var missing []string
	for _, g := range gs {
		name := g.Target.Connection()
		if seen[name] {
			continue
		}
		seen[name] = true
		if _, err := a.conns.Resolve(name); err != nil {
			missing = append(missing, fmt.Sprintf("%s (set %s or add it to --config)", name, grant.ConnectionEnvVar(name)))
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("grants in the ledger use connections this sweeper has no URL for: %s; nothing was touched", strings.Join(missing, ", "))
	}
	return nil
}

// print writes v as JSON with --json, else calls text.
func (a *app) print(w io.Writer, v any, text func(io.Writer)) error {
	if a.opts.json {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	text(w)
	return nil
}

// listing is the JSON form of list.
type listing struct {
	EvaluatedAt time.Time    `json:"evaluated_at"`
	Grants      []sweep.Item `json:"grants"`
}

func (a *app) list(ctx context.Context, stdout, stderr io.Writer) int {
	f := ledger.Filter{EventID: a.opts.event, Owner: a.opts.owner}
	if a.opts.status != "" {
		for _, s := range strings.Split(a.opts.status, ",") {
			st := grant.Status(strings.TrimSpace(s))
			switch st {
			case grant.StatusActive, grant.StatusDue, grant.StatusRevoked, grant.StatusIrrevocable:
				f.Statuses = append(f.Statuses, st)
			default:
				fmt.Fprintf(stderr, "eventaccess-sweeper: list --status %q: use active, due, revoked or irrevocable\n", s)
				return exitConfig
			}
		}
	}
	gs, err := a.ledger.ListGrants(ctx, f)
	if err != nil {
		fmt.Fprintf(stderr, "eventaccess-sweeper: reading the grants from the ledger: %v\n", err)
		return exitConfig
	}
	out := listing{EvaluatedAt: a.clock.Now(), Grants: []sweep.Item{}}
	for _, g := range gs {
		it := sweep.Item{
			ID: g.ID, EventID: g.Event.ID, Owner: g.Owner, Target: g.TargetKey(), Description: g.Target.String(),
			Status: g.Status, EndReason: g.EndReason, ExpiresAt: g.ExpiresAt, Drift: g.Drift, KeptBy: g.KeptBy,
			Attempts: g.RevokeAttempts, NextAttemptAt: g.NextAttemptAt, Error: g.LastError,
		}
		out.Grants = append(out.Grants, it)
	}
	if err := a.print(stdout, out, func(w io.Writer) { writeList(w, out) }); err != nil {
		fmt.Fprintf(stderr, "eventaccess-sweeper: %v\n", err)
		return exitFailed
	}
	return exitClean
}

// closed is the JSON form of close-event.
type closed struct {
	EventID  string    `json:"event_id"`
	ClosedAt time.Time `json:"closed_at"`
	Reason   string    `json:"reason,omitempty"`
	// AlreadyClosed: the event was closed before; nothing changed.
	AlreadyClosed bool `json:"already_closed"`
	// Due lists the grants of the event that the next run ends.
	Due []string `json:"due"`
}

func (a *app) closeEvent(ctx context.Context, stdout, stderr io.Writer, id string) int {
	now := a.clock.Now()
	out := closed{EventID: id, ClosedAt: now, Reason: a.opts.reason, Due: []string{}}
	prev, err := a.ledger.GetEvent(ctx, id)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
	case err != nil:
		fmt.Fprintf(stderr, "eventaccess-sweeper: reading event %s from the ledger: %v\n", id, err)
		return exitConfig
	case !prev.Open:
		out.AlreadyClosed, out.ClosedAt, out.Reason = true, prev.ClosedAt, prev.CloseReason
	}
	if !out.AlreadyClosed {
		if err := a.ledger.CloseEvent(ctx, id, a.opts.reason, grant.ActorCLI, now); err != nil {
			fmt.Fprintf(stderr, "eventaccess-sweeper: closing event %s: %v\n", id, err)
			return exitConfig
		}
	}
	gs, err := a.ledger.ListGrants(ctx, ledger.Filter{EventID: id, Statuses: []grant.Status{grant.StatusActive, grant.StatusDue}})
	if err != nil {
		fmt.Fprintf(stderr, "eventaccess-sweeper: reading the grants of event %s: %v\n", id, err)
		return exitConfig
	}
	for _, g := range gs {
		out.Due = append(out.Due, g.ID)
	}
	a.log.Info("event closed", "event", id, "already_closed", out.AlreadyClosed, "grants_due", len(out.Due))
	err = a.print(stdout, out, func(w io.Writer) {
		if out.AlreadyClosed {
			fmt.Fprintf(w, "Event %s was already closed at %s.\n", id, out.ClosedAt.Format(time.RFC3339))
		} else {
			fmt.Fprintf(w, "Event %s closed at %s.\n", id, now.Format(time.RFC3339))
		}
		fmt.Fprintf(w, "%d grant(s) of it will be revoked by the next run (eventaccess-sweeper run).\n", len(out.Due))
	})
	if err != nil {
		return exitFailed
	}
	return exitClean
}

func (a *app) retry(ctx context.Context, stdout, stderr io.Writer, id string) int {
	if err := a.engine.Retry(ctx, id); err != nil {
		fmt.Fprintf(stderr, "eventaccess-sweeper: %v\n", err)
		return exitConfig // an unknown or non-irrevocable grant is a bad request
	}
	_ = a.print(stdout, map[string]string{"id": id, "status": string(grant.StatusDue)}, func(w io.Writer) {
		fmt.Fprintf(w, "Grant %s is due again: the next run (eventaccess-sweeper run) tries to revoke it.\n", id)
	})
	return exitClean
}
