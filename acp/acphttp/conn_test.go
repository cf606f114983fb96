package acphttp_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/sandbox-agent-go/sandbox-agent/acp"
	"github.com/sandbox-agent-go/sandbox-agent/acp/acphttp"
	"github.com/sandbox-agent-go/sandbox-agent/internal/mockagent"
	"github.com/sandbox-agent-go/sandbox-agent/internal/testutil/apptest"
)

func TestMain(m *testing.M) {
	mockagent.ServeIfChild()
	goleak.VerifyTestMain(m)
}

// recorder wraps the transport and records every request line.
type recorder struct {
	mu   sync.Mutex
	reqs []string
	rt   http.RoundTripper
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.reqs = append(r.reqs, req.Method+" "+req.URL.RequestURI()+" auth="+req.Header.Get("X-Test"))
	r.mu.Unlock()
	return r.rt.RoundTrip(req)
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.reqs...)
}

func startServer(t *testing.T) *apptest.Server {
	t.Helper()
	return apptest.Start(t, apptest.Options{})
}

type observed struct {
	mu   sync.Mutex
	msgs []acphttp.Message
}

func (o *observed) add(_ context.Context, m acphttp.Message) {
	o.mu.Lock()
	o.msgs = append(o.msgs, m)
	o.mu.Unlock()
}

func (o *observed) all() []acphttp.Message {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]acphttp.Message(nil), o.msgs...)
}

func newConn(t *testing.T, ts *apptest.Server, mut func(*acphttp.Options)) (*acphttp.Conn, *recorder, *observed) {
	t.Helper()
	// A transport per test, so its idle connections end with the test.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	rec := &recorder{rt: tr}
	obs := &observed{}
	o := acphttp.Options{
		BaseURL:    ts.URL,
		ServerID:   "t-" + strings.ReplaceAll(t.Name(), "/", "_"),
		Agent:      "mock",
		HTTPClient: &http.Client{Transport: rec},
		Header:     http.Header{"X-Test": {"yes"}},
		Observe:    obs.add,
	}
	if mut != nil {
		mut(&o)
	}
	c, err := acphttp.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c, rec, obs
}

func initSession(t *testing.T, ctx context.Context, c *acphttp.Conn) string {
	t.Helper()
	if _, err := c.Call(ctx, "initialize", map[string]any{"protocolVersion": 1}); err != nil {
		t.Fatal(err)
	}
	res, err := c.Call(ctx, "session/new", map[string]any{"cwd": "/", "mcpServers": []any{}})
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		SessionID string `json:"sessionId"`
	}
	if err := json.Unmarshal(res, &r); err != nil || r.SessionID == "" {
		t.Fatalf("session/new: %s %v", res, err)
	}
	return r.SessionID
}

func prompt(ctx context.Context, c *acphttp.Conn, sid, text string) (json.RawMessage, error) {
	return c.Call(ctx, "session/prompt", map[string]any{
		"sessionId": sid,
		"prompt":    []any{map[string]any{"type": "text", "text": text}},
	})
}

func TestCallPromptOrderingAndDedupe(t *testing.T) {
	ts := startServer(t)
	ctx := t.Context()
	var notes []string
	var nmu sync.Mutex
	c, rec, obs := newConn(t, ts, func(o *acphttp.Options) {
		o.OnNotification = func(r acphttp.Request) {
			nmu.Lock()
			notes = append(notes, r.Method)
			nmu.Unlock()
		}
	})
	sid := initSession(t, ctx, c)
	res, err := prompt(ctx, c, sid, "hello")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(res), "end_turn") {
		t.Fatalf("prompt result %s", res)
	}
	reqs := rec.list()
	if !strings.HasPrefix(reqs[0], "POST /v1/acp/"+c.ServerID()+"?agent=mock auth=yes") {
		t.Fatalf("first request %q", reqs[0])
	}
	for _, r := range reqs[1:] {
		if strings.Contains(r, "agent=") {
			t.Fatalf("later request carries agent: %q", r)
		}
		if !strings.HasSuffix(r, "auth=yes") {
			t.Fatalf("missing header: %q", r)
		}
	}
	// Every response observed exactly once, and the prompt's response
	// after all its session/update notifications (SSE order).
	msgs := obs.all()
	respCount := map[string]int{}
	lastUpdate, promptResp := -1, -1
	for i, m := range msgs {
		if !m.Outbound && m.Envelope.Kind == acp.Response {
			respCount[acp.IDKey(m.Envelope.ID)]++
			if strings.Contains(string(m.Raw), "end_turn") {
				promptResp = i
			}
		}
		if m.Envelope.Method == "session/update" {
			lastUpdate = i
		}
	}
	for id, n := range respCount {
		if n != 1 {
			t.Fatalf("response %s observed %d times", id, n)
		}
	}
	if len(respCount) != 3 {
		t.Fatalf("responses observed: %v", respCount)
	}
	if lastUpdate < 0 || promptResp < lastUpdate {
		t.Fatalf("prompt response at %d before last update at %d", promptResp, lastUpdate)
	}
	nmu.Lock()
	defer nmu.Unlock()
	if len(notes) == 0 || notes[0] != "session/update" {
		t.Fatalf("notifications %v", notes)
	}
}

func TestRPCError(t *testing.T) {
	ts := startServer(t)
	ctx := t.Context()
	c, _, _ := newConn(t, ts, nil)
	sid := initSession(t, ctx, c)
	_, err := prompt(ctx, c, sid, "ERROR")
	var re *acphttp.RPCError
	if !errors.As(err, &re) || re.Code != -32603 {
		t.Fatalf("want RPCError -32603, got %v", err)
	}
	_, err = c.Call(ctx, "nope/unknown", map[string]any{})
	if !errors.As(err, &re) || re.Code != -32601 {
		t.Fatalf("want -32601, got %v", err)
	}
	if c.Err() != nil {
		t.Fatalf("connection should be alive: %v", c.Err())
	}
}

func TestAgentRequestHandledAndReplyObserved(t *testing.T) {
	ts := startServer(t)
	ctx := t.Context()
	c, _, obs := newConn(t, ts, func(o *acphttp.Options) {
		o.OnRequest = func(ctx context.Context, r acphttp.Request) (any, error) {
			if r.Method != "session/request_permission" {
				return nil, &acphttp.RPCError{Code: -32601, Message: "no"}
			}
			return map[string]any{"outcome": map[string]any{"outcome": "selected", "optionId": "allow"}}, nil
		}
	})
	sid := initSession(t, ctx, c)
	res, err := prompt(ctx, c, sid, "PERMISSION")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(res), "end_turn") {
		t.Fatalf("result %s", res)
	}
	var sawReq, sawReply bool
	for _, m := range obs.all() {
		if !m.Outbound && m.Envelope.Method == "session/request_permission" {
			sawReq = true
		}
		if m.Outbound && m.Envelope.Kind == acp.Response && strings.Contains(string(m.Raw), `"optionId":"allow"`) {
			sawReply = true
		}
	}
	if !sawReq || !sawReply {
		t.Fatalf("request %v reply %v", sawReq, sawReply)
	}
}

func TestServerDeleteFailsPendingCall(t *testing.T) {
	ts := startServer(t)
	ctx := t.Context()
	started := make(chan struct{}, 1)
	c, _, _ := newConn(t, ts, func(o *acphttp.Options) {
		o.OnNotification = func(r acphttp.Request) {
			if strings.Contains(string(r.Params), "agent_message_chunk") {
				select {
				case started <- struct{}{}:
				default:
				}
			}
		}
	})
	sid := initSession(t, ctx, c)
	errc := make(chan error, 1)
	go func() {
		_, err := prompt(ctx, c, sid, "SLOW")
		errc <- err
	}()
	<-started
	req, _ := http.NewRequestWithContext(ctx, http.MethodDelete, ts.URL+"/v1/acp/"+c.ServerID(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	err = <-errc
	if !errors.Is(err, acphttp.ErrConnectionLost) {
		t.Fatalf("want ErrConnectionLost, got %v", err)
	}
	<-c.Done()
	if !errors.Is(c.Err(), acphttp.ErrConnectionLost) {
		t.Fatalf("Err = %v", c.Err())
	}
	// Later calls fail at once.
	if _, err := c.Call(ctx, "x", nil); !errors.Is(err, acphttp.ErrConnectionLost) {
		t.Fatalf("later call: %v", err)
	}
}

func TestNetworkErrorLosesConnection(t *testing.T) {
	ts := startServer(t)
	ctx := t.Context()
	c, _, _ := newConn(t, ts, nil)
	initSession(t, ctx, c)
	ts.Kill()
	<-c.Done()
	if !errors.Is(c.Err(), acphttp.ErrConnectionLost) {
		t.Fatalf("Err = %v", c.Err())
	}
}

func TestCloseDeletesServer(t *testing.T) {
	ts := startServer(t)
	ctx := t.Context()
	c, rec, _ := newConn(t, ts, nil)
	initSession(t, ctx, c)
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(c.Err(), acphttp.ErrClosed) {
		t.Fatalf("Err = %v", c.Err())
	}
	reqs := rec.list()
	if last := reqs[len(reqs)-1]; !strings.HasPrefix(last, "DELETE /v1/acp/"+c.ServerID()) {
		t.Fatalf("last request %q", last)
	}
	if _, err := c.Call(ctx, "x", nil); !errors.Is(err, acphttp.ErrClosed) {
		t.Fatalf("call after close: %v", err)
	}
}

func TestCloseWithoutPostSendsNothing(t *testing.T) {
	ts := startServer(t)
	c, rec, _ := newConn(t, ts, nil)
	_ = c.Close(t.Context())
	if n := len(rec.list()); n != 0 {
		t.Fatalf("%d requests", n)
	}
}
