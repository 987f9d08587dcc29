package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseFlagsAnywhere(t *testing.T) {
	getenv := func(k string) string {
		if k == "EVENTACCESS_LEDGER" {
			return "/from/env.db"
		}
		return ""
	}
	cmd, pos, o, err := parse([]string{"--json", "close-event", "CHG-1", "--reason", "done", "--at", "2026-11-02T09:00:00Z"}, getenv)
	if err != nil || cmd != "close-event" || len(pos) != 1 || pos[0] != "CHG-1" || o.reason != "done" || !o.json ||
		o.at != "2026-11-02T09:00:00Z" || o.ledger != "/from/env.db" {
		t.Fatalf("parse: %q %q %+v %v", cmd, pos, o, err)
	}
	_, _, o, err = parse([]string{"run", "--ledger", "x.db"}, getenv)
	if err != nil || o.ledger != "x.db" {
		t.Fatalf("--ledger after the command: %+v %v", o, err)
	}
	for _, bad := range [][]string{{}, {"frobnicate"}, {"run", "extra"}, {"retry"}, {"close-event", "a", "b"}, {"plan", "--nope"}, {"run", "--reason", "x"}} {
		if _, _, _, err := parse(bad, getenv); err == nil {
			t.Errorf("parse(%q) accepted", bad)
		}
	}
}

func TestRunInProcess(t *testing.T) {
	dir := t.TempDir()
	getenv := func(string) string { return "" }
	var so, se bytes.Buffer
	if code := run([]string{"help"}, &so, &se, getenv); code != 0 || !strings.Contains(so.String(), "Exit codes") {
		t.Fatalf("help: %d\n%s", code, so.String())
	}
	so.Reset()
	ledgerPath := filepath.Join(dir, "l.db")
	if code := run([]string{"--ledger", ledgerPath, "plan", "--json"}, &so, &se, getenv); code != 0 || !strings.Contains(so.String(), `"revoked": []`) {
		t.Fatalf("plan on an empty ledger: %d\n%s\n%s", code, so.String(), se.String())
	}
	cfg := filepath.Join(dir, "c.json")
	for _, bad := range []string{`{"lease": "soon"}`, `{"connections": {"bad name": {"url": "postgres://x"}}}`, `{"connections": {"a": {}}}`, `not json`} {
		if err := os.WriteFile(cfg, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		se.Reset()
		if code := run([]string{"--ledger", ledgerPath, "--config", cfg, "run"}, &so, &se, getenv); code != 2 || se.Len() == 0 {
			t.Errorf("config %s: exit %d, stderr %q", bad, code, se.String())
		}
	}
}
