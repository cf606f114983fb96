package sandboxagent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/internal/sse"
	"github.com/sandbox-agent-go/sandbox-agent/internal/testutil/apptest"
)

// testProvider serves an apptest.Server; EnsureServer restarts it.
type testProvider struct {
	srv     *apptest.Server
	url     string
	mu      sync.Mutex
	calls   []string
	ensured chan struct{}
}

func (p *testProvider) log(s string) {
	p.mu.Lock()
	p.calls = append(p.calls, s)
	p.mu.Unlock()
}

func (p *testProvider) Name() string { return "test" }
func (p *testProvider) Create(ctx context.Context) (string, error) {
	p.log("create")
	return "box/1", nil
}
func (p *testProvider) Destroy(ctx context.Context, id string) error {
	p.log("destroy " + id)
	return nil
}
func (p *testProvider) Reconnect(ctx context.Context, id string) error {
	p.log("reconnect " + id)
	return nil
}
func (p *testProvider) URL(ctx context.Context, id string) (string, error) {
	if p.url != "" {
		return p.url, nil
	}
	return p.srv.URL, nil
}
func (p *testProvider) DefaultCwd(ctx context.Context, id string) (string, error) {
	return "/tmp", nil
}
func (p *testProvider) EnsureServer(ctx context.Context, id string) error {
	p.log("ensure " + id)
	var err error
	if p.srv != nil {
		err = p.srv.Restart()
	}
	if p.ensured != nil {
		select {
		case p.ensured <- struct{}{}:
		default:
		}
	}
	return err
}

func TestStartSandboxIDParsing(t *testing.T) {
	p := &testProvider{url: "http://127.0.0.1:1"}
	for _, id := range []string{"x", "/x", "x/"} {
		_, err := Start(t.Context(), p, StartOptions{SandboxID: id})
		if err == nil || !strings.Contains(err.Error(), `must be prefixed as "{provider}/{id}"`) {
			t.Fatalf("%q: %v", id, err)
		}
	}
	_, err := Start(t.Context(), p, StartOptions{SandboxID: "e2b/abc"})
	if err == nil || !strings.Contains(err.Error(), "configured provider is 'test'") {
		t.Fatalf("mismatch: %v", err)
	}
	// The provider owns the URL: a BaseURL in the embedded Options would be
	// silently ignored, so it is refused.
	_, err = Start(t.Context(), p, StartOptions{Options: Options{BaseURL: "http://elsewhere"}})
	if err == nil || !strings.Contains(err.Error(), "BaseURL must be empty") {
		t.Fatalf("BaseURL: %v", err)
	}
	prov, raw, err := ParseSandboxID("local/a/b:1")
	if err != nil || prov != "local" || raw != "a/b:1" {
		t.Fatalf("parse: %q %q %v", prov, raw, err)
	}
	if len(p.calls) != 0 {
		t.Fatalf("provider called: %v", p.calls)
	}
}

func TestStartDestroysCreatedSandboxOnFailure(t *testing.T) {
	// Nothing listens: the health gate times out, the sandbox is destroyed.
	p := &testProvider{url: "http://127.0.0.1:1"}
	_, err := Start(t.Context(), p, StartOptions{Options: Options{Health: HealthOptions{Timeout: time.Millisecond}, Logger: slog.New(slog.DiscardHandler)}})
	if !errors.Is(err, ErrHealthTimeout) {
		t.Fatalf("err = %v", err)
	}
	if strings.Join(p.calls, ",") != "create,destroy box/1" {
		t.Fatalf("calls %v", p.calls)
	}
	// Reconnecting: Reconnect then EnsureServer; nothing destroyed.
	p.calls = nil
	_, err = Start(t.Context(), p, StartOptions{SandboxID: "test/box/2", Options: Options{Health: HealthOptions{Timeout: time.Millisecond}, Logger: slog.New(slog.DiscardHandler)}})
	if !errors.Is(err, ErrHealthTimeout) || strings.Join(p.calls, ",") != "reconnect box/2,ensure box/2" {
		t.Fatalf("err = %v calls %v", err, p.calls)
	}
}

func TestStartAndSandboxLifecycle(t *testing.T) {
	srv := startTestServer(t)
	p := &testProvider{srv: srv}
	c, err := Start(t.Context(), p, StartOptions{Options: Options{Logger: slog.New(slog.DiscardHandler)}})
	if err != nil {
		t.Fatal(err)
	}
	if c.SandboxID() != "test/box/1" {
		t.Fatalf("sandbox id %q", c.SandboxID())
	}
	s, err := c.CreateSession(t.Context(), CreateSessionRequest{Agent: "mock"})
	if err != nil {
		t.Fatal(err)
	}
	rec := s.Record()
	if rec.SandboxID != "test/box/1" || !strings.Contains(string(rec.SessionInit), `"cwd":"/tmp"`) {
		t.Fatalf("record %+v %s", rec, rec.SessionInit)
	}
	if err := c.PauseSandbox(t.Context()); err != nil { // no Pause → Destroy
		t.Fatal(err)
	}
	if p.calls[len(p.calls)-1] != "destroy box/1" {
		t.Fatalf("calls %v", p.calls)
	}
	if err := c.DestroySandbox(t.Context()); !errors.Is(err, errNotAttached) {
		t.Fatalf("second destroy: %v", err)
	}
}

// TestRecoveryAfterServerKilled: the server dies under a live client with a
// prompt in flight. The prompt fails at once with a clear error; the client
// re-enters the health gate, EnsureServer (after 3 failures) restarts the
// server, and the session continues with its history replayed.
func TestRecoveryAfterServerKilled(t *testing.T) {
	srv := startTestServer(t)
	p := &testProvider{srv: srv, ensured: make(chan struct{}, 1)}
	ctx := t.Context()
	c, err := Start(ctx, p, StartOptions{Options: Options{Logger: slog.New(slog.DiscardHandler)}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	s, err := c.CreateSession(ctx, CreateSessionRequest{ID: "rec", Agent: "mock", Cwd: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prompt(ctx, "before the crash"); err != nil {
		t.Fatal(err)
	}
	chunk := make(chan struct{}, 1)
	unsub := s.OnEvent(func(ev SessionEvent) {
		if _, ok := ev.AgentMessageChunk(); ok {
			select {
			case chunk <- struct{}{}:
			default:
			}
		}
	})
	errc := make(chan error, 1)
	go func() {
		_, err := s.Prompt(ctx, "SLOW")
		errc <- err
	}()
	<-chunk
	unsub()
	srv.Kill()
	err = <-errc
	if !errors.Is(err, ErrConnectionLost) || !strings.Contains(err.Error(), "restored on its next use") {
		t.Fatalf("in-flight prompt: %v", err)
	}
	<-p.ensured // EnsureServer was called by the gate after 3 failures
	res, err := s.Prompt(ctx, "after the crash")
	if err != nil {
		t.Fatal(err)
	}
	if res.StopReason != "end_turn" {
		t.Fatalf("stop reason %q", res.StopReason)
	}
	evs := allEvents(t, c, "rec")
	var last string
	for _, e := range evs {
		if method(e) == "session/prompt" {
			last = string(e.Payload)
		}
	}
	if !strings.Contains(last, "Previous session history") || !strings.Contains(last, "before the crash") {
		t.Fatalf("history not replayed: %s", truncate(last, 300))
	}
}

// fakeAgentServer answers session/new without a sessionId (like upstream's
// echo mock) and publishes every response on SSE too.
func fakeAgentServer(t *testing.T) *httptest.Server {
	var mu sync.Mutex
	var msgs [][]byte
	notify := make(chan struct{}, 1)
	h := http.NewServeMux()
	h.HandleFunc("GET /v1/health", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, `{"status":"ok"}`) })
	h.HandleFunc("POST /v1/acp/{id}", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		if req.ID == nil {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		resp := fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%s,"result":{"echoed":%q}}`, req.ID, req.Method)
		mu.Lock()
		msgs = append(msgs, resp)
		mu.Unlock()
		select {
		case notify <- struct{}{}:
		default:
		}
		_, _ = w.Write(resp)
	})
	h.HandleFunc("GET /v1/acp/{id}", func(w http.ResponseWriter, r *http.Request) {
		sw, err := sse.Start(w)
		if err != nil {
			return
		}
		sent := 0
		for {
			mu.Lock()
			for ; sent < len(msgs); sent++ {
				sw.Event("message", uint64(sent+1), msgs[sent])
			}
			mu.Unlock()
			_ = sw.Flush()
			select {
			case <-notify:
			case <-r.Context().Done():
				return
			}
		}
	})
	h.HandleFunc("DELETE /v1/acp/{id}", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	ts := httptest.NewServer(h)
	t.Cleanup(func() { ts.CloseClientConnections(); ts.Close() })
	return ts
}

func TestSessionNewWithoutSessionIDIsAnError(t *testing.T) {
	ts := fakeAgentServer(t)
	c, err := Connect(t.Context(), Options{BaseURL: ts.URL, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	_, err = c.CreateSession(t.Context(), CreateSessionRequest{Agent: "mock", Cwd: "/"})
	if !errors.Is(err, ErrNoAgentSessionID) {
		t.Fatalf("err = %v", err)
	}
}

// movingProvider's server comes back at another address after
// EnsureServer, as a sandbox behind a quick tunnel does.
type movingProvider struct {
	testProvider
	next *apptest.Server
}

func (p *movingProvider) URL(context.Context, string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.srv.URL, nil
}

func (p *movingProvider) EnsureServer(context.Context, string) error {
	p.mu.Lock()
	p.srv = p.next
	p.mu.Unlock()
	p.ensured <- struct{}{}
	return nil
}

// TestURLRefreshedAfterEnsureServer: the client follows the provider's new
// URL after EnsureServer, and the session is restored on the new server.
func TestURLRefreshedAfterEnsureServer(t *testing.T) {
	ctx := t.Context()
	first, second := startTestServer(t), startTestServer(t)
	p := &movingProvider{testProvider: testProvider{srv: first, ensured: make(chan struct{}, 1)}, next: second}
	c, err := Start(ctx, p, StartOptions{Options: Options{Logger: slog.New(slog.DiscardHandler)}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	s, err := c.CreateSession(ctx, CreateSessionRequest{ID: "mv", Agent: "mock", Cwd: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prompt(ctx, "on the first server"); err != nil {
		t.Fatal(err)
	}
	first.Kill()
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var res PromptResponse
	for attempt := 1; ; attempt++ {
		res, err = s.Prompt(pctx, "on the second")
		if err == nil || attempt == 2 || !errors.Is(err, ErrConnectionLost) {
			break
		}
	}
	if err != nil || res.StopReason != "end_turn" {
		t.Fatalf("prompt after the move: %+v %v", res, err)
	}
	if c.BaseURL() != second.URL {
		t.Fatalf("base URL %s, want %s", c.BaseURL(), second.URL)
	}
	select {
	case <-p.ensured:
	default:
		t.Fatal("EnsureServer was not called")
	}
}

// sleepyProxy stands for a vendor's port proxy: while asleep it answers
// 502 JSON (not problem+json), else it forwards to the server.
type sleepyProxy struct {
	testProvider
	mu     sync.Mutex
	asleep bool
	front  *httptest.Server
}

func (p *sleepyProxy) URL(context.Context, string) (string, error) { return p.front.URL, nil }

func (p *sleepyProxy) EnsureServer(context.Context, string) error {
	p.mu.Lock()
	p.asleep = false
	p.mu.Unlock()
	p.ensured <- struct{}{}
	return nil
}

// TestProxy502RearmsTheGate: a plain API call that meets the vendor's "port
// is not open" 502 fails, and the next call waits for the gate, whose
// EnsureServer wakes the sandbox. The server's own 502 problem+json does
// not count (see proxyGone).
func TestProxy502RearmsTheGate(t *testing.T) {
	srv := startTestServer(t)
	target, _ := url.Parse(srv.URL)
	p := &sleepyProxy{testProvider: testProvider{ensured: make(chan struct{}, 1)}}
	rp := httputil.NewSingleHostReverseProxy(target)
	p.front = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		asleep := p.asleep
		p.mu.Unlock()
		if asleep {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadGateway)
			_, _ = io.WriteString(w, `{"message":"The sandbox is running but port is not open","code":502}`)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	defer p.front.Close()
	ctx := t.Context()
	c, err := Start(ctx, p, StartOptions{Options: Options{Logger: slog.New(slog.DiscardHandler)}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	p.mu.Lock()
	p.asleep = true
	p.mu.Unlock()
	var apiErr *Error
	if _, err := c.ListAgents(ctx, AgentQuery{}); !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadGateway {
		t.Fatalf("call while asleep: %v", err)
	}
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := c.ListAgents(lctx, AgentQuery{}); err != nil {
		t.Fatalf("call after the gate: %v", err)
	}
	select {
	case <-p.ensured:
	default:
		t.Fatal("EnsureServer was not called")
	}
}
