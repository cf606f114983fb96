package sandboxagent

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/quartz"
)

type gateRig struct {
	c       *Client
	g       *healthGate
	clk     *quartz.Mock
	start   time.Time
	mu      sync.Mutex
	checks  []time.Duration
	ensures []time.Duration
}

func newGateRig(t *testing.T, o HealthOptions, withEnsure bool, check func(n int, ctx context.Context) error) *gateRig {
	clk := quartz.NewMock(t)
	c := &Client{baseURL: "http://test", log: slog.New(slog.DiscardHandler), clock: clk}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	t.Cleanup(func() { c.cancel(); c.wg.Wait() })
	r := &gateRig{c: c, clk: clk, start: clk.Now()}
	r.g = newHealthGate(c, o)
	r.g.check = func(ctx context.Context) error {
		r.mu.Lock()
		r.checks = append(r.checks, clk.Now().Sub(r.start))
		n := len(r.checks)
		r.mu.Unlock()
		return check(n, ctx)
	}
	if withEnsure {
		r.g.ensure = func(ctx context.Context) error {
			r.mu.Lock()
			r.ensures = append(r.ensures, clk.Now().Sub(r.start))
			n := len(r.ensures)
			r.mu.Unlock()
			if n == 1 {
				return errors.New("ensure failed") // logged, not fatal
			}
			return nil
		}
	}
	c.gate = r.g
	return r
}

// drive runs the gate, advancing the fake clock through n sleeps, and
// returns the gate's result.
func (r *gateRig) drive(t *testing.T, sleeps int) <-chan error {
	ctx := t.Context()
	trap := r.clk.Trap().NewTimer("health", "sleep")
	defer trap.Close()
	done := make(chan error, 1)
	go func() { done <- r.g.wait(ctx) }()
	for range sleeps {
		call, err := trap.Wait(ctx)
		if err != nil {
			t.Fatal(err)
		}
		call.MustRelease(ctx)
		r.clk.Advance(call.Duration).MustWait(ctx)
	}
	return done
}

func secs(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = d.Seconds()
	}
	return out
}

func TestHealthScheduleWithoutEnsureServer(t *testing.T) {
	r := newGateRig(t, HealthOptions{Timeout: -1}, false, func(int, context.Context) error { return errors.New("connection refused") })
	done := r.drive(t, 8) // the 8th sleep follows the 8th attempt
	r.c.cancel()
	if err := <-done; err == nil {
		t.Fatal("gate succeeded")
	}
	r.c.wg.Wait()
	want := []float64{0, 0.5, 1.5, 3.5, 7.5, 15.5, 30.5, 45.5}
	if got := secs(r.checks)[:8]; !slices.Equal(got, want) {
		t.Fatalf("attempts at %v, want %v", got, want)
	}
}

func TestHealthScheduleEnsureServerEveryThirdFailureAndBackoffRestarts(t *testing.T) {
	r := newGateRig(t, HealthOptions{Timeout: -1}, true, func(n int, _ context.Context) error {
		if n == 9 {
			return nil
		}
		return errors.New("connection refused")
	})
	if err := <-r.drive(t, 8); err != nil {
		t.Fatal(err)
	}
	wantChecks := []float64{0, 0.5, 1.5, 2, 3, 5, 5.5, 6.5, 8.5}
	if got := secs(r.checks); !slices.Equal(got, wantChecks) {
		t.Fatalf("attempts at %v, want %v", got, wantChecks)
	}
	// the first EnsureServer failed: logged, counter still reset
	if got := secs(r.ensures); !slices.Equal(got, []float64{1.5, 5}) {
		t.Fatalf("ensure at %v", got)
	}
}

func TestHealthTimeoutIsFiniteAndClear(t *testing.T) {
	r := newGateRig(t, HealthOptions{Timeout: time.Second}, false, func(int, context.Context) error { return errors.New("connection refused") })
	err := <-r.drive(t, 2)
	if !errors.Is(err, ErrHealthTimeout) || !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), "3 attempts") {
		t.Fatalf("err = %v", err)
	}
	if got := secs(r.checks); !slices.Equal(got, []float64{0, 0.5, 1}) {
		t.Fatalf("attempts at %v", got)
	}
}

func TestHealthAttemptTimeoutUnblocksHungServer(t *testing.T) {
	hung := make(chan struct{})
	r := newGateRig(t, HealthOptions{Timeout: -1, AttemptTimeout: 5 * time.Second}, false, func(n int, ctx context.Context) error {
		if n == 1 {
			close(hung)
			<-ctx.Done() // a server that accepted but never answers
			return ctx.Err()
		}
		return nil
	})
	ctx := t.Context()
	trap := r.clk.Trap().NewTimer("health", "sleep")
	defer trap.Close()
	done := make(chan error, 1)
	go func() { done <- r.g.wait(ctx) }()
	<-hung
	r.clk.Advance(5 * time.Second).MustWait(ctx)
	call := trap.MustWait(ctx)
	call.MustRelease(ctx)
	r.clk.Advance(call.Duration).MustWait(ctx)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := secs(r.checks); !slices.Equal(got, []float64{0, 5.5}) {
		t.Fatalf("attempts at %v", got)
	}
}

func TestHealthGateReentersAfterServerLoss(t *testing.T) {
	r := newGateRig(t, HealthOptions{Timeout: -1}, false, func(int, context.Context) error { return nil })
	if err := r.g.wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := r.g.wait(t.Context()); err != nil || len(r.checks) != 1 {
		t.Fatalf("healthy gate re-checked: %d", len(r.checks))
	}
	r.g.markUnhealthy(errors.New("connection refused"))
	if err := r.g.wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	if len(r.checks) != 2 {
		t.Fatalf("checks = %d", len(r.checks))
	}
}

func TestHealthErrorNotSticky(t *testing.T) {
	r := newGateRig(t, HealthOptions{Timeout: time.Millisecond}, false, func(n int, _ context.Context) error {
		if n <= 2 {
			return errors.New("down")
		}
		return nil
	})
	if err := <-r.drive(t, 1); !errors.Is(err, ErrHealthTimeout) {
		t.Fatalf("first run: %v", err)
	}
	if err := r.g.wait(t.Context()); err != nil {
		t.Fatalf("second run: %v", err)
	}
}

// TestHealthRefusedTokenFailsFast: a 401 is not a server that is down; the
// gate stops at once (no EnsureServer, no backoff) with a clear error.
func TestHealthRefusedTokenFailsFast(t *testing.T) {
	for _, status := range []int{401, 403} {
		r := newGateRig(t, HealthOptions{}, true, func(int, context.Context) error {
			return &Error{Status: status, Problem: &Problem{Title: "Unauthorized"}}
		})
		err := <-r.drive(t, 0)
		var apiErr *Error
		if !errors.Is(err, ErrUnauthorized) || !errors.As(err, &apiErr) || apiErr.Status != status || !strings.Contains(err.Error(), "check the token") {
			t.Fatalf("%d: err = %v", status, err)
		}
		if len(r.checks) != 1 || len(r.ensures) != 0 {
			t.Fatalf("%d: checks %v, ensures %v", status, r.checks, r.ensures)
		}
	}
}
