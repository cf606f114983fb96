package remote

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestPollSchedule(t *testing.T) {
	// Tiny durations keep the test fast; the schedule's shape is what counts.
	p := Poll{Initial: time.Microsecond, Max: 3 * time.Microsecond, Growth: 2, After: 2}
	var got []time.Duration
	for range 6 {
		if err := p.Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
		got = append(got, p.delay)
	}
	want := []time.Duration{1000, 1000, 2000, 3000, 3000, 3000}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("delays %v, want %v", got, want)
		}
	}
	var zero Poll
	_ = zero.Wait(t.Context())
	if zero.delay != 100*time.Millisecond || zero.Max != time.Second || zero.Growth != 1.1 || zero.After != 10 {
		t.Fatalf("zero value %+v", zero)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := (&Poll{Initial: time.Hour}).Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}
