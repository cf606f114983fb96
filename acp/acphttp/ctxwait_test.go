package acphttp_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/acp/acphttp"
)

// These tests pin issue 9's rule for the Conn: a call that waits — for the
// bootstrap POST of another call, for Observe of an earlier message, or
// for its answer — returns when its own context ends, with the context's
// error wrapped.

// ctxGuard bounds the wait for a call that must return at once: not
// synchronisation (channels are), only a way to fail instead of hanging.
const ctxGuard = 5 * time.Second

func awaitErr(t *testing.T, what string, errc <-chan error) error {
	t.Helper()
	select {
	case err := <-errc:
		return err
	case <-time.After(ctxGuard):
		t.Fatalf("%s ignored its context: still waiting after %s", what, ctxGuard)
		return nil
	}
}

func wantCtxErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: err = %v, want one wrapping %v", what, err, want)
	}
	if err.Error() == want.Error() {
		t.Fatalf("%s: bare %q: the error should say what was being waited for", what, err)
	}
}

// stuckServer answers POSTs with 202 (so no answer ever comes) and serves
// an SSE stream that sends one notification and then stays open; with
// stallBoot its first POST is held until the request ends (a server that
// accepted the bootstrap and went to sleep).
func stuckServer(t *testing.T, stallBoot bool) (url string, bootEntered <-chan struct{}) {
	entered := make(chan struct{}, 1)
	done := make(chan struct{})
	first := true
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPost:
			if r.URL.Query().Get("agent") != "" && stallBoot && first {
				first = false // only the bootstrap is here: others wait on it
				entered <- struct{}{}
				select {
				case <-r.Context().Done():
				case <-done:
				}
				return
			}
			w.WriteHeader(http.StatusAccepted)
		case http.MethodGet:
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(http.StatusOK)
			event(w, 1)
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-done:
			}
		case http.MethodDelete:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	t.Cleanup(func() { close(done); ts.CloseClientConnections(); ts.Close() })
	return ts.URL, entered
}

var connCalls = []struct {
	name string
	call func(ctx context.Context, c *acphttp.Conn) error
}{
	{"Call", func(ctx context.Context, c *acphttp.Conn) error { _, err := c.Call(ctx, "x/y", nil); return err }},
	{"Notify", func(ctx context.Context, c *acphttp.Conn) error { return c.Notify(ctx, "x/y", nil) }},
}

func ctxKinds(t *testing.T) []struct {
	name string
	ctx  func() (context.Context, context.CancelFunc)
	want error
} {
	return []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(t.Context(), 20*time.Millisecond)
		}, context.DeadlineExceeded},
		{"cancelled", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			return ctx, cancel
		}, context.Canceled},
	}
}

// TestCallsHonourContextBehindStuckBootstrap: the first call's bootstrap
// POST hangs; later calls with a short deadline or a cancelled context
// return their context's error instead of queueing behind it (before the
// fix: blocked on bootMu until the first POST ended), and the first call
// returns when its own context ends.
func TestCallsHonourContextBehindStuckBootstrap(t *testing.T) {
	u, entered := stuckServer(t, true)
	c, err := acphttp.New(acphttp.Options{BaseURL: u, ServerID: "boot", Agent: "mock"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	ctx1, cancel1 := context.WithCancel(t.Context())
	first := make(chan error, 1)
	go func() { first <- c.Notify(ctx1, "hello", nil) }()
	<-entered
	for _, cc := range connCalls {
		for _, k := range ctxKinds(t) {
			t.Run(cc.name+"/"+k.name, func(t *testing.T) {
				ctx, cancel := k.ctx()
				defer cancel()
				errc := make(chan error, 1)
				go func() { errc <- cc.call(ctx, c) }()
				wantCtxErr(t, cc.name, awaitErr(t, cc.name, errc), k.want)
			})
		}
	}
	cancel1()
	wantCtxErr(t, "first Notify", awaitErr(t, "first Notify", first), context.Canceled)
}

// TestCallsHonourContextBehindStuckObserve: Observe of an inbound
// notification is stuck (a store that stopped answering); outbound calls
// with a short deadline or a cancelled context return their context's
// error instead of waiting for it (before the fix: blocked on obsMu), and
// so does Close.
func TestCallsHonourContextBehindStuckObserve(t *testing.T) {
	u, _ := stuckServer(t, false)
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	c, err := acphttp.New(acphttp.Options{BaseURL: u, ServerID: "obs", Agent: "mock",
		Observe: func(_ context.Context, m acphttp.Message) {
			if m.Outbound {
				return
			}
			entered <- struct{}{}
			<-release
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Notify(t.Context(), "hello", nil); err != nil {
		t.Fatal(err)
	}
	<-entered // the SSE notification is being observed, holding the order
	for _, cc := range connCalls {
		for _, k := range ctxKinds(t) {
			t.Run(cc.name+"/"+k.name, func(t *testing.T) {
				ctx, cancel := k.ctx()
				defer cancel()
				errc := make(chan error, 1)
				go func() { errc <- cc.call(ctx, c) }()
				wantCtxErr(t, cc.name, awaitErr(t, cc.name, errc), k.want)
			})
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	errc := make(chan error, 1)
	go func() { errc <- c.Close(ctx) }()
	wantCtxErr(t, "Close", awaitErr(t, "Close", errc), context.Canceled)
	close(release)
	if err := c.Close(context.Background()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestCallWaitingForAnswerHonoursContext: a call whose answer never comes
// returns its context's error, saying what it waited for.
func TestCallWaitingForAnswerHonoursContext(t *testing.T) {
	u, _ := stuckServer(t, false)
	c, err := acphttp.New(acphttp.Options{BaseURL: u, ServerID: "answer", Agent: "mock"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	errc := make(chan error, 1)
	go func() { _, err := c.Call(ctx, "x/y", nil); errc <- err }()
	wantCtxErr(t, "Call", awaitErr(t, "Call", errc), context.DeadlineExceeded)
}
