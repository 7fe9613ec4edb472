package safe

import (
	"errors"
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

func TestStop(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	var nilStop *Stop
	nilStop.Fail(errors.New("x")) // a nil Stop never fails
	if nilStop.Err() != nil || nilStop.Done() != nil {
		t.Fatal("nil Stop failed")
	}
	s := NewStop(logger)
	var got []error
	s.OnFail(func(err error) { got = append(got, err) })
	s.OnFail(func(error) { panic("hook") }) // recovered, the others still run
	s.OnFail(func(err error) { got = append(got, err) })
	select {
	case <-s.Done():
		t.Fatal("Done before Fail")
	default:
	}
	if s.Err() != nil {
		t.Fatalf("Err before Fail = %v", s.Err())
	}
	first := errors.New("first")
	s.Fail(first)
	s.Fail(errors.New("second"))
	<-s.Done()
	if err := s.Err(); !errors.Is(err, ErrStopped) || !errors.Is(err, first) || strings.Contains(err.Error(), "second") {
		t.Fatalf("Err = %v", err)
	}
	if len(got) != 2 || got[0] != s.Err() {
		t.Fatalf("hooks ran %d times: %v", len(got), got)
	}
}
