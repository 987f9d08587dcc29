package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/eventaccess/terraform-provider-eventaccess/internal/sweep"
)

// writeReport prints a report the way terraform prints a plan: one block per
// grant with a symbol for what happens to it, then a summary line.
func writeReport(w io.Writer, r *sweep.Report) {
	verb := map[bool]string{true: "would be", false: "was"}[r.DryRun]
	if r.DryRun {
		fmt.Fprintf(w, "eventaccess-sweeper plan, as of %s (dry run: nothing is changed)\n", r.EvaluatedAt.Format(time.RFC3339))
	} else {
		fmt.Fprintf(w, "eventaccess-sweeper run, as of %s\n", r.EvaluatedAt.Format(time.RFC3339))
	}
	empty := len(r.Revoked)+len(r.Kept)+len(r.Failed)+len(r.Drift)+len(r.Irrevocable) == 0
	if empty {
		fmt.Fprintf(w, "\nNo changes. No grant is due, drifted or irrevocable.\n")
		return
	}
	block := func(sym, title string, it sweep.Item, extra ...string) {
		fmt.Fprintf(w, "\n  %s grant %s %s\n", sym, it.ID, title)
		fmt.Fprintf(w, "      owner:      %s\n", it.Owner)
		fmt.Fprintf(w, "      event:      %s\n", it.EventID)
		fmt.Fprintf(w, "      target:     %s\n", it.Description)
		if it.EndReason != "" {
			fmt.Fprintf(w, "      end_reason: %s\n", it.EndReason)
		}
		for _, e := range extra {
			if e != "" {
				fmt.Fprintf(w, "      %s\n", e)
			}
		}
	}
	for _, it := range r.Revoked {
		block("-", verb+" revoked", it, detail("evidence:  ", it.Detail))
	}
	for _, it := range r.Kept {
		block("~", verb+" ended; the permission stays with grant "+it.KeptBy, it)
	}
	for _, it := range r.Drift {
		sym, what := "!", "drift: "+string(it.Drift)
		block(sym, what, it, detail("detail:    ", it.Detail))
	}
	for _, it := range r.Failed {
		next := ""
		if !it.NextAttemptAt.IsZero() {
			next = "next try:   after " + it.NextAttemptAt.Format(time.RFC3339)
		}
		block("x", "FAILED", it, detail("error:     ", it.Error), attempts(it), next)
	}
	for _, it := range r.Irrevocable {
		block("x", "IRREVOCABLE", it, detail("last error:", it.Error), attempts(it), detail("to retry:  ", "eventaccess-sweeper retry "+it.ID))
	}
	c := r.Counts
	if r.DryRun {
		fmt.Fprintf(w, "\nPlan: %d to revoke, %d to end kept by another grant, %d drift, %d failed inspections, %d irrevocable.\n",
			c.Revoked, c.Kept, c.Drift, c.Failed, c.Irrevocable)
	} else {
		fmt.Fprintf(w, "\nRun: %d revoked and verified, %d ended kept by another grant, %d drift, %d failed, %d irrevocable.\n",
			c.Revoked, c.Kept, c.Drift, c.Failed, c.Irrevocable)
	}
	if !r.Clean() {
		fmt.Fprintf(w, "Some access could not be removed: see FAILED and IRREVOCABLE above (exit code 1).\n")
	}
}

func detail(label, s string) string {
	if s == "" {
		return ""
	}
	return label + " " + strings.ReplaceAll(s, "\n", " ")
}

func attempts(it sweep.Item) string {
	if it.Attempts == 0 {
		return ""
	}
	return fmt.Sprintf("attempts:    %d", it.Attempts)
}

// writeList prints grants as a table.
func writeList(w io.Writer, l listing) {
	if len(l.Grants) == 0 {
		fmt.Fprintln(w, "No grants in the ledger match.")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tOWNER\tEVENT\tEXPIRES\tTARGET\tEND_REASON\tDRIFT\tATTEMPTS")
	for _, g := range l.Grants {
		exp := g.ExpiresAt.Format(time.RFC3339)
		if !g.ExpiresAt.After(l.EvaluatedAt) && g.Status == "active" {
			exp += " (expired)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", g.ID, g.Status, g.Owner, g.EventID, exp, g.Target,
			dash(string(g.EndReason)), dash(string(g.Drift)), g.Attempts)
	}
	tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
