package sweep

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"
)

type timingHandler struct{ start time.Time }

func (h *timingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *timingHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "grant revoked and verified" {
		return nil
	}
	fmt.Fprintf(os.Stderr, "%8.3f %s\n", time.Since(h.start).Seconds(), r.Message)
	return nil
}
func (h *timingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *timingHandler) WithGroup(string) slog.Handler      { return h }
