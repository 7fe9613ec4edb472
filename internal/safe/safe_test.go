package safe

import (
	"log/slog"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	if err := Run(logger, "ok", func() {}); err != nil {
		t.Fatalf("Run(no panic)=%v", err)
	}
	err := Run(logger, "boom", func() {
		var a []int
		_ = a[3]
	})
	if err == nil || !strings.Contains(err.Error(), "internal error in boom") {
		t.Fatalf("Run(panic)=%v", err)
	}
}
