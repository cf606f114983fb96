// Package serverprobe holds what every launcher of a sandbox-agent server
// needs to agree on: which address reaches a server bound to a wildcard,
// what "healthy" means, and how long to wait for it. The local and Docker
// providers, the daemon and the tests use it, so the rule is stated once.
// It knows nothing of the server's packages: the SDK's providers import it.
package serverprobe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// DialHost returns the host a client dials to reach a server listening on
// host. A wildcard bind is reached over loopback of its own family: a "::"
// listener accepts IPv6 loopback on every system, but IPv4 only where the
// socket is dual-stack, so "::" maps to ::1 and "0.0.0.0" (or "") to
// 127.0.0.1. Brackets are dropped so the result suits net.JoinHostPort.
func DialHost(host string) string {
	switch h := strings.Trim(host, "[]"); h {
	case "", "0.0.0.0":
		return "127.0.0.1"
	case "::":
		return "::1"
	default:
		return h
	}
}

// BaseURL is the http URL that reaches a server listening on host:port.
func BaseURL(host string, port int) string {
	return "http://" + net.JoinHostPort(DialHost(host), strconv.Itoa(port))
}

// FreePort asks the kernel for a port that is free on host now. Another
// process may take it before the caller binds it; callers that can bind
// ":0" themselves should.
func FreePort(host string) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(strings.Trim(host, "[]"), "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port on %q: %w", host, err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Check probes GET baseURL/v1/health once. Healthy is what the SDK's health
// gate accepts: 200 with {"status":"ok"}; anything else is an error that
// says what answered.
func Check(ctx context.Context, c *http.Client, baseURL, token string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(baseURL, "/")+"/v1/health", nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health answered %d", resp.StatusCode)
	}
	var h struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(body, &h); err != nil {
		return fmt.Errorf("health answered 200 with a body that is not its JSON: %w", err)
	}
	if h.Status != "ok" {
		return fmt.Errorf("health answered status %q", h.Status)
	}
	return nil
}

// WaitOptions configure Wait.
type WaitOptions struct {
	// Client sends the probes; default a client with a 1 s timeout per
	// probe, so a server that accepts but never answers cannot stall the
	// wait past its next attempt.
	Client *http.Client
	// BaseURL and Token of the server.
	BaseURL string
	Token   string
	// Timeout bounds the whole wait (on top of ctx); zero means ctx only.
	Timeout time.Duration
	// MaxInterval caps the gap between probes, which starts at 10 ms and
	// doubles; default 200 ms.
	MaxInterval time.Duration
	// Alive, when set, is called before every probe; an error ends the wait
	// with it (the launched process died: no point waiting for it).
	Alive func() error
}

// ErrTimeout is wrapped by Wait when the server did not become healthy in
// time.
var ErrTimeout = errors.New("server did not become healthy in time")

// Wait probes until the server is healthy, Alive fails, or the wait times
// out (an error wrapping ErrTimeout and the last probe's failure).
func Wait(ctx context.Context, o WaitOptions) error {
	if o.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Timeout)
		defer cancel()
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: time.Second}
	}
	if o.MaxInterval <= 0 {
		o.MaxInterval = 200 * time.Millisecond
	}
	var last error
	for delay := 10 * time.Millisecond; ; delay = min(2*delay, o.MaxInterval) {
		if o.Alive != nil {
			if err := o.Alive(); err != nil {
				return err
			}
		}
		err := Check(ctx, o.Client, o.BaseURL, o.Token)
		if err == nil {
			return nil
		}
		// A probe cut by the deadline says nothing about the server: keep
		// the failure before it.
		if ctx.Err() == nil || last == nil {
			last = err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			if ctx.Err() == context.DeadlineExceeded {
				return fmt.Errorf("%w: %s (last probe: %v)", ErrTimeout, o.BaseURL, last)
			}
			return fmt.Errorf("waiting for %s: %w (last probe: %v)", o.BaseURL, ctx.Err(), last)
		case <-t.C:
		}
	}
}
