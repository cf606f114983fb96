// Package wait is the one polling helper for tests that observe state they
// cannot be told about (a process group emptying, a file appearing, a
// server answering): it bounds the wait and says what it waited for.
// Tests that can synchronise on a channel should do that instead.
package wait

import (
	"testing"
	"time"
)

// interval is how often Until re-checks: short enough that a test does
// not idle, long enough not to spin on /proc or the network.
const interval = 5 * time.Millisecond

// Until calls cond until it returns true, failing t with what (a phrase
// completing "waiting until …") when timeout passes or the test's context
// ends first.
func Until(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			if cond() {
				return
			}
			t.Fatalf("timed out after %v waiting until %s", timeout, what)
		case <-t.Context().Done():
			t.Fatalf("test ended while waiting until %s", what)
		}
	}
}
