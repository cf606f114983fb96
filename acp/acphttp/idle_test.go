package acphttp_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/acp/acphttp"
)

// silentServer answers POSTs at once and serves SSE streams scripted by
// the test: each GET gets the next script, which may write events and
// then block until the test ends (a peer that went quiet without closing).
type silentServer struct {
	ts      *httptest.Server
	mu      sync.Mutex
	scripts []func(w http.ResponseWriter, lastID string) // one per GET
	gets    chan string                                  // Last-Event-ID of each GET
	done    chan struct{}
}

func newSilentServer(t *testing.T, scripts ...func(w http.ResponseWriter, lastID string)) *silentServer {
	s := &silentServer{scripts: scripts, gets: make(chan string, 8), done: make(chan struct{})}
	s.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPost:
			w.WriteHeader(http.StatusAccepted) // notifications only
		case http.MethodGet:
			s.mu.Lock()
			if len(s.scripts) == 0 {
				s.mu.Unlock()
				http.Error(w, `{"type":"urn:sandbox-agent:error:session_not_found"}`, http.StatusNotFound)
				s.gets <- r.Header.Get("Last-Event-ID")
				return
			}
			script := s.scripts[0]
			s.scripts = s.scripts[1:]
			s.mu.Unlock()
			s.gets <- r.Header.Get("Last-Event-ID")
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(http.StatusOK)
			script(w, r.Header.Get("Last-Event-ID"))
			w.(http.Flusher).Flush()
			select { // then silence, connection open
			case <-s.done:
			case <-r.Context().Done():
			}
		case http.MethodDelete:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	t.Cleanup(func() { close(s.done); s.ts.Close() })
	return s
}

func event(w http.ResponseWriter, id int) {
	fmt.Fprintf(w, "id: %d\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"n\",\"params\":{\"i\":%d}}\n\n", id, id)
}

// TestSilentStreamIsResumed: a stream that goes quiet (no heartbeat) is
// abandoned after IdleTimeout and resumed from its last event id; nothing
// is lost or repeated.
func TestSilentStreamIsResumed(t *testing.T) {
	s := newSilentServer(t,
		func(w http.ResponseWriter, _ string) { event(w, 1) },
		func(w http.ResponseWriter, _ string) { event(w, 2) },
	)
	got := make(chan string, 8)
	c, err := acphttp.New(acphttp.Options{BaseURL: s.ts.URL, ServerID: "quiet", Agent: "mock",
		IdleTimeout: 100 * time.Millisecond, ReconnectDelay: time.Millisecond,
		OnNotification: func(r acphttp.Request) { got <- string(r.Params) }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if err := c.Notify(t.Context(), "hello", nil); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{`{"i":1}`, `{"i":2}`} {
		select {
		case g := <-got:
			if g != want {
				t.Fatalf("notification %d: %s, want %s", i, g, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("notification %d never arrived", i)
		}
	}
	if first, second := <-s.gets, <-s.gets; first != "" || second != "1" {
		t.Fatalf("Last-Event-ID of the GETs: %q, %q", first, second)
	}
	if err := c.Err(); err != nil {
		t.Fatalf("connection ended: %v", err)
	}
}

// TestSilentStreamToAGoneServerLosesTheConnection: when the resume finds
// the server gone, pending calls fail at once instead of waiting forever.
func TestSilentStreamToAGoneServerLosesTheConnection(t *testing.T) {
	s := newSilentServer(t, func(http.ResponseWriter, string) {})
	c, err := acphttp.New(acphttp.Options{BaseURL: s.ts.URL, ServerID: "gone", Agent: "mock",
		IdleTimeout: 100 * time.Millisecond, ReconnectDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if err := c.Notify(t.Context(), "hello", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the connection was not lost")
	}
	var he *acphttp.HTTPError
	if !errors.Is(c.Err(), acphttp.ErrConnectionLost) || !errors.As(c.Err(), &he) || he.Status != http.StatusNotFound {
		t.Fatalf("Err = %v", c.Err())
	}
}
