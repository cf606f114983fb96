package wait_test

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/internal/testutil/wait"
)

// fatalRecorder records Fatalf instead of stopping the test, so the
// timeout path can be asserted.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(f)
}

func TestUntil(t *testing.T) {
	t.Run("returns once cond holds", func(t *testing.T) {
		var calls atomic.Int32
		wait.Until(t, 5*time.Second, "the third call", func() bool { return calls.Add(1) >= 3 })
		if n := calls.Load(); n != 3 {
			t.Fatalf("cond called %d times, want 3", n)
		}
	})
	t.Run("reports what it waited for", func(t *testing.T) {
		rec := &fatalRecorder{TB: t}
		func() {
			defer func() {
				if r := recover(); r != rec {
					t.Fatalf("recovered %v, want the recorder's Fatalf", r)
				}
			}()
			wait.Until(rec, 20*time.Millisecond, "pigs fly", func() bool { return false })
		}()
		if !strings.Contains(rec.msg, "timed out after 20ms waiting until pigs fly") {
			t.Fatalf("message %q", rec.msg)
		}
	})
}
