package multiplayer

// Proof tests from the issue-12 runtime review. Each one fails (or, for the
// race, reports a data race under -race) on the code as reviewed; they are
// meant to pass once the bug it names is fixed.

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/quartz"
	"github.com/coder/websocket"

	"github.com/sandbox-agent-go/sandbox-agent/multiplayer/backend/memory"
)

type revState struct {
	N int `json:"n"`
}

type revCtx = Ctx[revState, struct{}]

type revHooks struct {
	wakes, slowRuns atomic.Int32
	started         chan struct{}
	release         chan struct{}
	hookDone        chan struct{}
	disconnected    chan struct{}
}

func revDef(h *revHooks, opts Options) Def[revState, struct{}] {
	return Def[revState, struct{}]{
		Name: "rev",
		CreateVars: func(c *revCtx) (struct{}, error) {
			h.wakes.Add(1)
			return struct{}{}, nil
		},
		OnConnect: func(c *revCtx, conn *Conn) error {
			if string(conn.Params) != `"slow"` {
				return nil
			}
			// A hook that overruns HookTimeout, then touches the state: the
			// runtime has given up on it and goes on with other turns.
			defer close(h.hookDone)
			<-c.Context().Done()
			for range 100 {
				c.State().N++
			}
			return nil
		},
		OnDisconnect: func(c *revCtx, conn *Conn) {
			select {
			case h.disconnected <- struct{}{}:
			default:
			}
		},
		Actions: map[string]ActionFunc[revState, struct{}]{
			"inc": Action(func(c *revCtx, _ struct{}) (int, error) {
				c.State().N++
				return c.State().N, nil
			}),
			"wake": Action(func(c *revCtx, _ struct{}) (int32, error) { return h.wakes.Load(), nil }),
			"conns": Action(func(c *revCtx, _ struct{}) (int, error) {
				return len(c.Conns()), nil
			}),
			"nap": Action(func(c *revCtx, _ struct{}) (bool, error) {
				c.Sleep()
				return true, nil
			}),
			"slow": Long(func(c *AsyncCtx[revState, struct{}], _ struct{}) (string, error) {
				h.slowRuns.Add(1)
				h.started <- struct{}{}
				select {
				case <-h.release:
					return "done", nil
				case <-c.Context().Done():
					return "", c.Context().Err()
				}
			}),
		},
		Options: opts,
	}
}

func revRuntime(t *testing.T, clock quartz.Clock, h *revHooks, opts Options) *Runtime {
	t.Helper()
	reg := NewRegistry()
	Register(reg, revDef(h, opts))
	cfg := Config{Backend: memory.New(), Logger: slog.New(slog.DiscardHandler),
		SweepInterval: time.Hour, HelloInterval: time.Hour}
	if clock != nil {
		cfg.Clock = clock
	}
	rt, err := Open(t.Context(), reg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Close() })
	return rt
}

func newRevHooks() *revHooks {
	return &revHooks{started: make(chan struct{}, 4), release: make(chan struct{}), hookDone: make(chan struct{}),
		disconnected: make(chan struct{}, 1)}
}

// advance moves the mock clock by d, firing (and waiting for) every timer
// on the way.
func advance(ctx context.Context, clock *quartz.Mock, d time.Duration) {
	target := clock.Now().Add(d)
	for {
		next, ok := clock.Peek()
		left := target.Sub(clock.Now())
		if !ok || next > left {
			clock.Advance(left).MustWait(ctx)
			return
		}
		_, w := clock.AdvanceNext()
		w.MustWait(ctx)
	}
}

// TestReviewIdleTimerResetByActivity: Rivet sleeps an actor SleepTimeout
// after its LAST activity. Here the idle timer is armed once and never
// reset by later actions (checkIdle returns early when a timer exists), so
// an actor used every 20 s by stateless calls sleeps and re-wakes every 30 s.
func TestReviewIdleTimerResetByActivity(t *testing.T) {
	clock := quartz.NewMock(t)
	h := newRevHooks()
	rt := revRuntime(t, clock, h, Options{SleepTimeout: 30 * time.Second})
	ctx := t.Context()
	t0 := clock.Now()
	defer func() { t.Logf("elapsed %s", clock.Now().Sub(t0)) }()
	if err := rt.Call(ctx, "rev", []string{"a"}, "inc", nil); err != nil {
		t.Fatal(err)
	}
	advance(ctx, clock, 20*time.Second)
	if err := rt.Call(ctx, "rev", []string{"a"}, "inc", nil); err != nil { // activity at 20 s
		t.Fatal(err)
	}
	advance(ctx, clock, 11*time.Second) // 31 s: 11 s after the last activity
	var wakes int32
	if err := rt.Call(ctx, "rev", []string{"a"}, "wake", &wakes); err != nil {
		t.Fatal(err)
	}
	if wakes != 1 {
		t.Fatalf("the actor slept 11 s after its last action (wakes %d): the idle timer is not reset by activity", wakes)
	}
}

// TestReviewHelloDoesNotResurrectDisconnected: the gateway's helloLoop
// snapshots a hub's connections and then asks the owner; a connection that
// disconnects in between (its opDisconnect turn runs before the hello
// turn) is re-added by hello with OnConnect. Its hub is gone by then, so
// no later hello ever drops it: a ghost connection that keeps the actor
// awake forever.
func TestReviewHelloDoesNotResurrectDisconnected(t *testing.T) {
	h := newRevHooks()
	rt := revRuntime(t, nil, h, Options{})
	ctx := t.Context()
	a, err := rt.resolve(ctx, "rev", []string{"a"}, "getOrCreate", nil)
	if err != nil {
		t.Fatal(err)
	}
	node := rt.b.NodeID()
	must := func(req *hostReq) *hostResp {
		t.Helper()
		resp, err := rt.request(ctx, a.ID, req)
		if err != nil || resp.Err != nil {
			t.Fatalf("%s: %v %+v", req.Op, err, resp)
		}
		return resp
	}
	// The gateway records the generation its connection was made to.
	gen := must(&hostReq{Op: opConnect, Conn: "x", Node: node}).Gen
	// helloLoop took its snapshot here (x listed), then x went away:
	must(&hostReq{Op: opDisconnect, Conn: "x"})
	must(&hostReq{Op: opHello, Node: node, Conns: []helloConn{{ID: "x", Gen: gen}}})
	var n int
	if err := rt.Call(ctx, "rev", []string{"a"}, "conns", &n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("a disconnected connection came back through a stale hello: %d conns", n)
	}
}

// TestReviewHookOverrunRace: a hook that overruns HookTimeout is abandoned
// by callHook but keeps running on its own goroutine with a Ctx, so it
// touches the state while the loop runs the next turns. Run with -race.
func TestReviewHookOverrunRace(t *testing.T) {
	h := newRevHooks()
	rt := revRuntime(t, nil, h, Options{HookTimeout: 20 * time.Millisecond})
	ctx := t.Context()
	a, err := rt.resolve(ctx, "rev", []string{"a"}, "getOrCreate", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := rt.request(ctx, a.ID, &hostReq{Op: opConnect, Conn: "x", Node: rt.b.NodeID(), Params: json.RawMessage(`"slow"`)})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Err == nil {
		t.Fatal("the slow OnConnect did not time out")
	}
	for range 50 {
		if err := rt.Call(ctx, "rev", []string{"a"}, "inc", nil); err != nil {
			t.Fatal(err)
		}
	}
	<-h.hookDone
}

// TestReviewLongActionNotRunTwice: a Long action in flight when its
// instance stops (here c.Sleep from another action; also fencing) is
// answered ("actor","stopping"), which rt.request treats as "retry on the
// next instance": the action runs again from the start (a prompt sent to
// the agent twice).
func TestReviewLongActionNotRunTwice(t *testing.T) {
	h := newRevHooks()
	rt := revRuntime(t, nil, h, Options{})
	ctx := t.Context()
	res := make(chan error, 1)
	go func() { res <- rt.Call(ctx, "rev", []string{"a"}, "slow", nil) }()
	<-h.started
	if err := rt.Call(ctx, "rev", []string{"a"}, "nap", nil); err != nil {
		t.Fatal(err)
	}
	// The actor sleeps under the running action; the call must get that
	// action's own answer (once released), not a retry on a new instance.
	close(h.release)
	err := <-res
	if n := h.slowRuns.Load(); n != 1 {
		t.Fatalf("the long action ran %d times for one call (answer %v)", n, err)
	}
}

// TestReviewEventsLastEventIDWins: EventSource reconnects to the same URL
// (?since=N kept) and adds Last-Event-ID; the query wins, so the stream
// replays from N again and repeats events, against the docs' "no event is
// lost or repeated".
func TestReviewEventsLastEventIDWins(t *testing.T) {
	url := gateway(t, Config{})
	for _, s := range []string{"one", "two", "three"} {
		req, _ := http.NewRequestWithContext(t.Context(), "POST", url+"/gateway/chat/action/say?rvt-method=getOrCreate&rvt-key=room", strings.NewReader(`{"args":["`+s+`"]}`))
		req.Header.Set("x-rivet-conn-params", `{"token":"ok"}`)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url+`/gateway/chat/events?rvt-method=get&rvt-key=room&since=0&params={"token":"ok"}`, nil)
	req.Header.Set("Last-Event-ID", "2") // the browser's reconnect after event 2
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if id, ok := strings.CutPrefix(sc.Text(), "id: "); ok {
			if id != "3" {
				t.Fatalf("resumed at event %s after Last-Event-ID 2 (want 3)", id)
			}
			return
		}
	}
	t.Fatalf("stream ended: %v", sc.Err())
}

// TestReviewClosedSocketDisconnectsAtOnce: when a client closes its
// WebSocket while one of its actions is in flight, readLoop waits for the
// action (inflight.Wait, with a context that is cancelled only after it)
// before serve sends opDisconnect and leaves the hub: the actor sees the
// connection for up to ActionTimeout (10 min for the workspace prompt),
// does not sleep, and helloLoop keeps listing it.
func TestReviewClosedSocketDisconnectsAtOnce(t *testing.T) {
	h := newRevHooks()
	rt := revRuntime(t, nil, h, Options{})
	srv := httptest.NewServer(rt.Handler())
	t.Cleanup(func() {
		close(h.release)
		srv.CloseClientConnections()
		srv.Close()
	})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, strings.Replace(srv.URL, "http", "ws", 1)+"/gateway/rev/connect?rvt-method=getOrCreate&rvt-key=a",
		&websocket.DialOptions{Subprotocols: []string{"rivet", "rivet_encoding.json"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ws.Read(ctx); err != nil { // Init
		t.Fatal(err)
	}
	if err := ws.Write(ctx, websocket.MessageText, []byte(`{"body":{"tag":"ActionRequest","val":{"id":["$BigInt","1"],"name":"slow","args":[]}}}`)); err != nil {
		t.Fatal(err)
	}
	<-h.started
	_ = ws.Close(websocket.StatusNormalClosure, "")
	select {
	case <-h.disconnected:
	case <-time.After(2 * time.Second): // a bound on a failure, not synchronisation
		t.Fatal("the actor did not see the closed connection leave while its action ran")
	}
}

// TestReviewOriginDNSRebinding: "same origin" is Origin's host == the
// request's Host, which a DNS-rebinding page satisfies: a page on
// http://attacker.example:6420 whose name is re-pointed at 127.0.0.1 sends
// Origin http://attacker.example:6420 and Host attacker.example:6420 to the
// example's default 127.0.0.1:6420 listener, and may then drive the
// workspace (prompts that run an agent on this machine).
func TestReviewOriginDNSRebinding(t *testing.T) {
	url := gateway(t, Config{})
	for _, tc := range []struct {
		host, origin string
		want         int
	}{
		{"attacker.example:6420", "http://attacker.example:6420", 403}, // rebinding page, same-origin to itself
		{"attacker.example:6420", "", 403},                             // its same-origin GET sends no Origin
		{"", "", 200},                                                  // the listener's own address
		{"localhost:6420", "http://localhost:6420", 200},
	} {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", url+"/metadata", nil)
		if tc.host != "" {
			req.Host = tc.host
		}
		if tc.origin != "" {
			req.Header.Set("Origin", tc.origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("Host %q Origin %q: %d, want %d", tc.host, tc.origin, resp.StatusCode, tc.want)
		}
	}
}
