// Command eventaccess-sweeper ends temporary access when its business event
// ends: it revokes expired, event-closed and drifted grants out of band,
// verifies at the target that the access is gone, and records the outcome in
// the ledger, where the Terraform provider reads it.
//
// Usage:
//
//	eventaccess-sweeper [flags] plan                          what would be revoked and why (dry run)
//	eventaccess-sweeper [flags] run                           revoke due and drifted grants, verify, record, report
//	eventaccess-sweeper [flags] list [--status S] [--event E] grants with status, owner, event, expiry, drift
//	eventaccess-sweeper [flags] close-event EVENT_ID [--reason TEXT]
//	eventaccess-sweeper [flags] retry GRANT_ID                an irrevocable grant becomes due again
//
// Flags (before or after the command):
//
//	--ledger URL   the ledger (default $EVENTACCESS_LEDGER, else ./eventaccess.db)
//	--config FILE  JSON: {"connections": {"NAME": {"url": "..."}}, "max_attempts": 6, "lease": "5m"}
//	--json         machine-readable output on stdout
//	--at TIME      evaluate as of another moment (RFC 3339)
//
// Connections are resolved like the provider does: the config file first, else
// the environment variable EVENTACCESS_CONNECTION_<NAME>.
//
// Exit codes: 0 clean; 1 some grant could not be revoked or verified, or is
// irrevocable; 2 bad configuration or ledger unreachable.
package main

import (
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
}
