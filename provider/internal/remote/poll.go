package remote

import (
	"context"
	"time"
)

// Poll paces a loop that waits for a vendor's state to change (a sandbox
// starting, a transition finishing): Initial between the first checks,
// growing by Growth (e.g. 1.1) after After checks, never more than Max.
// The zero value waits 100 ms, growing ×1.1 after 10 checks up to 1 s, the
// schedule the vendors' own SDKs use. Bound the loop with ctx.
type Poll struct {
	Initial, Max time.Duration
	Growth       float64
	After        int

	n     int
	delay time.Duration
}

// Wait sleeps until the next check, or returns ctx's error.
func (p *Poll) Wait(ctx context.Context) error {
	if p.Initial <= 0 {
		p.Initial = 100 * time.Millisecond
	}
	if p.Max <= 0 {
		p.Max = time.Second
	}
	if p.Growth <= 1 {
		p.Growth = 1.1
	}
	if p.After <= 0 {
		p.After = 10
	}
	p.n++
	switch {
	case p.delay == 0:
		p.delay = p.Initial
	case p.n > p.After:
		p.delay = min(p.Max, time.Duration(float64(p.delay)*p.Growth))
	}
	return Sleep(ctx, p.delay)
}

// Sleep waits d or until ctx ends.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
