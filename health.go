package sandboxagent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Health-gate schedule, the same as the TypeScript SDK's.
const (
	HealthMinDelay                  = 500 * time.Millisecond
	HealthMaxDelay                  = 15 * time.Second
	HealthEnsureServerAfterFailures = 3
	healthLogAfter                  = 5 * time.Second
	healthLogEvery                  = 10 * time.Second
	// DefaultHealthTimeout bounds one run of the gate (upstream waits
	// forever).
	DefaultHealthTimeout = 2 * time.Minute
	// DefaultHealthAttemptTimeout bounds one GET /v1/health (upstream has
	// none, so a hung server blocks it forever).
	DefaultHealthAttemptTimeout = 5 * time.Second
)

// ErrHealthTimeout is wrapped by the error of a health gate that ran out of
// time.
var ErrHealthTimeout = errors.New("sandboxagent: timed out waiting for sandbox-agent health")

// ErrUnauthorized is wrapped by the error of a health gate whose server
// answered 401 or 403: it is up but refuses the token, which waiting or
// EnsureServer cannot fix (upstream keeps retrying, counting it toward
// ensureServer). The *Error with the server's problem document is wrapped
// too.
var ErrUnauthorized = errors.New("sandboxagent: the server refused the token")

// HealthOptions configure the health gate. Every API call and every ACP
// connection waits for the gate; the gate runs at Connect and again whenever
// the server is found gone (connection refused, ACP stream lost).
type HealthOptions struct {
	// Disabled turns the gate off (upstream's skipHealthCheck).
	Disabled bool
	// Timeout bounds one run; zero → DefaultHealthTimeout, negative → no
	// limit.
	Timeout time.Duration
	// AttemptTimeout bounds one health request; zero →
	// DefaultHealthAttemptTimeout.
	AttemptTimeout time.Duration
}

type healthGate struct {
	c    *Client
	opts HealthOptions

	mu      sync.Mutex
	healthy bool
	running chan struct{} // closed when the current run ends
	err     error         // result of the last finished run

	// for tests
	check  func(ctx context.Context) error
	ensure func(ctx context.Context) error
}

func newHealthGate(c *Client, o HealthOptions) *healthGate {
	if o.Timeout == 0 {
		o.Timeout = DefaultHealthTimeout
	}
	if o.AttemptTimeout <= 0 {
		o.AttemptTimeout = DefaultHealthAttemptTimeout
	}
	g := &healthGate{c: c, opts: o}
	g.check = func(ctx context.Context) error {
		h, err := c.GetHealth(ctx)
		if err != nil {
			return err
		}
		if h.Status != "ok" {
			return fmt.Errorf("unexpected health response: status %q", h.Status)
		}
		return nil
	}
	if es, ok := c.provider.(ServerEnsurer); ok {
		g.ensure = func(ctx context.Context) error {
			if err := es.EnsureServer(ctx, c.providerID); err != nil {
				return err
			}
			return c.refreshURL(ctx)
		}
	}
	return g
}

// refreshURL asks the provider for the server's URL again after
// EnsureServer: a sandbox that slept may come back behind another URL (a
// new quick tunnel, a route that changed on resume). Upstream keeps the old
// one and never reaches the restarted server.
func (c *Client) refreshURL(ctx context.Context) error {
	up, ok := c.provider.(URLProvider)
	if !ok {
		return nil
	}
	u, err := up.URL(ctx, c.providerID)
	if err != nil {
		return fmt.Errorf("sandboxagent: URL after EnsureServer: %w", err)
	}
	if u = strings.TrimSuffix(strings.TrimSpace(u), "/"); u != "" && u != c.url() {
		c.log.Info("sandbox-agent moved after EnsureServer", "sandboxId", c.sandboxID, "from", c.url(), "to", u)
		c.setURL(u)
	}
	return nil
}

// wait blocks until the server is healthy, starting a run of the gate if
// none is running. The error of a failed run is returned to its waiters
// only; the next wait starts a fresh run (the error is not sticky).
func (g *healthGate) wait(ctx context.Context) error {
	if g.opts.Disabled {
		if err := ctx.Err(); err != nil {
			return ctxWaitErr("the server", err)
		}
		return nil
	}
	g.mu.Lock()
	if g.healthy {
		g.mu.Unlock()
		return nil
	}
	ch := g.startLocked()
	g.mu.Unlock()
	select {
	case <-ch:
	case <-ctx.Done():
		// The run goes on in the background for the other waiters.
		return ctxWaitErr(fmt.Sprintf("sandbox-agent at %s to become healthy", g.c.url()), ctx.Err())
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.healthy {
		return nil
	}
	return g.err
}

func (g *healthGate) startLocked() chan struct{} {
	if g.running != nil {
		return g.running
	}
	ch := make(chan struct{})
	g.running = ch
	g.c.wg.Add(1)
	go func() {
		defer g.c.wg.Done()
		err := g.run(g.c.ctx)
		g.mu.Lock()
		g.err = err
		g.healthy = err == nil
		g.running = nil
		g.mu.Unlock()
		close(ch)
	}()
	return ch
}

// markUnhealthy re-arms the gate after the server was found gone and starts
// a run in the background (so EnsureServer is called by the same rule).
func (g *healthGate) markUnhealthy(cause error) {
	if g.opts.Disabled {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.c.ctx.Err() != nil {
		return
	}
	if g.healthy {
		g.c.log.Warn("sandbox-agent unreachable; waiting for it to become healthy again", "baseUrl", g.c.url(), "cause", cause)
	}
	g.healthy = false
	g.startLocked()
}

// run is the gate's loop: first check at once, then sleeps of 500 ms
// doubling to 15 s; after every 3 consecutive failures EnsureServer (errors
// logged) and the backoff starts again at 500 ms.
func (g *healthGate) run(ctx context.Context) error {
	clk := g.c.clock
	start := clk.Now()
	var deadline time.Time
	if g.opts.Timeout > 0 {
		deadline = start.Add(g.opts.Timeout)
	}
	delay := HealthMinDelay
	nextLog := start.Add(healthLogAfter)
	failures, attempts := 0, 0
	var lastErr error
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("sandboxagent: client closed while waiting for health: %w", err)
		}
		attempts++
		actx, cancel := context.WithCancel(ctx)
		t := clk.AfterFunc(g.opts.AttemptTimeout, cancel, "health", "attempt")
		err := g.check(actx)
		timedOut := !t.Stop() && ctx.Err() == nil
		cancel()
		if err == nil {
			return nil
		}
		var apiErr *Error
		if errors.As(err, &apiErr) && (apiErr.Status == http.StatusUnauthorized || apiErr.Status == http.StatusForbidden) {
			return fmt.Errorf("%w at %s (HTTP %d; check the token): %w", ErrUnauthorized, g.c.url(), apiErr.Status, err)
		}
		if timedOut {
			err = fmt.Errorf("health check timed out after %s: %w", g.opts.AttemptTimeout, err)
		}
		lastErr = err
		failures++
		if failures >= HealthEnsureServerAfterFailures && g.ensure != nil {
			if eerr := g.ensure(ctx); eerr != nil {
				g.c.log.Warn("sandbox-agent EnsureServer failed", "sandboxId", g.c.sandboxID, "err", eerr)
			}
			failures = 0
			delay = HealthMinDelay
		}
		now := clk.Now()
		if !now.Before(nextLog) {
			g.c.log.Warn("sandbox-agent is not healthy; still waiting", "baseUrl", g.c.url(),
				"elapsed", now.Sub(start).Round(time.Millisecond), "err", lastErr)
			nextLog = now.Add(healthLogEvery)
		}
		sleep := delay
		if !deadline.IsZero() {
			if !now.Before(deadline) {
				return fmt.Errorf("%w at %s after %s (%d attempts; last error: %w)",
					ErrHealthTimeout, g.c.url(), g.opts.Timeout, attempts, lastErr)
			}
			if rem := deadline.Sub(now); rem < sleep {
				sleep = rem
			}
		}
		timer := clk.NewTimer(sleep, "health", "sleep")
		select {
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("sandboxagent: client closed while waiting for health: %w", ctx.Err())
		case <-timer.C:
		}
		delay = min(HealthMaxDelay, delay*2)
	}
}

// HealthResponse is GET /v1/health.
type HealthResponse struct {
	Status string `json:"status"`
}

// GetHealth checks the server directly (it bypasses the health gate).
func (c *Client) GetHealth(ctx context.Context) (HealthResponse, error) {
	var h HealthResponse
	err := c.doJSON(ctx, request{method: http.MethodGet, path: "/health", noGate: true}, &h)
	return h, err
}
