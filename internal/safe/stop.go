package safe

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// ErrStopped reports that replication stopped after an internal error (a
// recovered panic): nothing is captured or shipped until the process
// restarts. Callers that wait for the replica return it instead of waiting.
var ErrStopped = errors.New("replication stopped after an internal error; restart the process to resume")

// Stop is the fatal state a recovered panic leaves: the first Fail wins,
// Done is closed, and every later wait returns at once. A nil *Stop is a
// Stop that never fails.
type Stop struct {
	once sync.Once
	mu   sync.Mutex
	err  error // ErrStopped wrapping cause
	why  error // the cause: the recovered panic
	at   time.Time
	done chan struct{}
	hook []func(error)
	log  *slog.Logger
}

// NewStop returns a Stop that has not failed; logger logs a panic in an
// OnFail function.
func NewStop(logger *slog.Logger) *Stop {
	if logger == nil {
		logger = slog.Default()
	}
	return &Stop{done: make(chan struct{}), log: logger}
}

// Fail records err (wrapping ErrStopped) and runs the OnFail functions,
// once. Later calls do nothing.
func (s *Stop) Fail(err error) {
	if s == nil {
		return
	}
	s.once.Do(func() {
		s.mu.Lock()
		s.err, s.why, s.at = fmt.Errorf("%w: %w", ErrStopped, err), err, time.Now()
		hooks := s.hook
		s.mu.Unlock()
		close(s.done)
		for _, fn := range hooks {
			_ = Run(s.log, "stop hook", func() { fn(s.err) })
		}
	})
}

// OnFail registers fn to run (once, from the goroutine that failed) when
// the Stop fails. Registered after the failure, it does not run.
func (s *Stop) OnFail(fn func(error)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hook = append(s.hook, fn)
}

// Done is closed when the Stop failed.
func (s *Stop) Done() <-chan struct{} {
	if s == nil {
		return nil
	}
	return s.done
}

// Err is the recorded failure (nil while none).
func (s *Stop) Err() error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Cause returns when the Stop failed and what failed it (nil while
// nothing did).
func (s *Stop) Cause() (time.Time, error) {
	if s == nil {
		return time.Time{}, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.at, s.why
}
