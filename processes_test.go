package sandboxagent

import (
	"encoding/json"
	"testing"
	"time"
)

// The API speaks milliseconds; the SDK takes durations and must not round a
// positive one down to 0, which the server reads as "no wait" or "default".
func TestDurationsAreSentAsMilliseconds(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		ms   int64
		wait string
		body string
	}{
		{0, 0, "", `{"command":"sh"}`},
		{-time.Second, 0, "", `{"command":"sh"}`},
		{time.Microsecond, 1, "waitMs=1", `{"command":"sh","timeoutMs":1}`},
		{1500 * time.Microsecond, 2, "waitMs=2", `{"command":"sh","timeoutMs":2}`},
		{2 * time.Second, 2000, "waitMs=2000", `{"command":"sh","timeoutMs":2000}`},
	} {
		if got := millis(tc.d); got != tc.ms {
			t.Errorf("millis(%v) = %d, want %d", tc.d, got, tc.ms)
		}
		if got := waitQuery(tc.d).Encode(); got != tc.wait {
			t.Errorf("waitQuery(%v) = %q, want %q", tc.d, got, tc.wait)
		}
		b, err := json.Marshal(RunProcessRequest{Command: "sh", Timeout: tc.d})
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tc.body {
			t.Errorf("RunProcessRequest{Timeout: %v} = %s, want %s", tc.d, b, tc.body)
		}
	}
}
