package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestBigIDRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    uint64
		wantErr bool
	}{
		{in: `["$BigInt","0"]`, want: 0},
		{in: `["$BigInt","9007199254740993"]`, want: 9007199254740993},
		{in: `7`, want: 7},
		{in: `["$Nope","1"]`, wantErr: true},
		{in: `["$BigInt","x"]`, wantErr: true},
		{in: `"1"`, wantErr: true},
	} {
		var b bigID
		err := json.Unmarshal([]byte(tc.in), &b)
		if (err != nil) != tc.wantErr {
			t.Errorf("%s: err %v, wantErr %v", tc.in, err, tc.wantErr)
			continue
		}
		if !tc.wantErr && uint64(b) != tc.want {
			t.Errorf("%s: got %d want %d", tc.in, b, tc.want)
		}
	}
	p, err := json.Marshal(bigID(42))
	if err != nil || string(p) != `["$BigInt","42"]` {
		t.Fatalf("marshal: %s %v", p, err)
	}
}

func TestPercentileAndPIDs(t *testing.T) {
	ds := []time.Duration{5, 1, 4, 2, 3, 10, 9, 8, 7, 6}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{50, 5}, {99, 10}, {10, 1}, {0, 1}, {100, 10}} {
		if got := percentile(ds, tc.p); got != tc.want {
			t.Errorf("p%v: got %v want %v", tc.p, got, tc.want)
		}
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("empty: %v", got)
	}
	for _, tc := range []struct {
		in      string
		want    []int
		wantErr bool
	}{{"", nil, false}, {"12, 34", []int{12, 34}, false}, {"1,x", nil, true}, {"-3", nil, true}} {
		got, err := parsePIDs(tc.in)
		if (err != nil) != tc.wantErr || (!tc.wantErr && !equalInts(got, tc.want)) {
			t.Errorf("parsePIDs(%q) = %v, %v", tc.in, got, err)
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestWSURL(t *testing.T) {
	got, err := wsURL("http://127.0.0.1:6420/", Target{Name: "bench", Key: []string{"a b"}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got, "ws://127.0.0.1:6420/gateway/bench/connect?") ||
		!strings.Contains(got, "rvt-key=a+b") || !strings.Contains(got, "rvt-method=getOrCreate") {
		t.Fatalf("url %s", got)
	}
	if _, err := wsURL("ftp://x", Target{Name: "bench"}); err == nil {
		t.Fatal("ftp accepted")
	}
}

// fakeGateway speaks just enough of the protocol, the way rivetkit does on
// the wire, to check the driver's framing: Init first, bigint ids, Error with
// actionId, Event args as an array, and HTTP actions.
func fakeGateway(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	// Subscribed sockets, for fanout broadcasts to every one of them.
	var subsMu sync.Mutex
	subs := map[*websocket.Conn]bool{}
	mux.HandleFunc("/gateway/bench/connect", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("rvt-key") == "" {
			http.Error(w, "no key", http.StatusBadRequest)
			return
		}
		ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"rivet"}})
		if err != nil {
			return
		}
		defer ws.CloseNow()
		defer func() {
			subsMu.Lock()
			delete(subs, ws)
			subsMu.Unlock()
		}()
		ctx := r.Context()
		if ws.Write(ctx, websocket.MessageText, []byte(`{"body":{"tag":"Init","val":{"actorId":"a1","connectionId":"c1"}}}`)) != nil {
			return
		}
		for {
			_, p, err := ws.Read(ctx)
			if err != nil {
				return
			}
			var env envelope
			if json.Unmarshal(p, &env) != nil {
				return
			}
			var out string
			switch env.Body.Tag {
			case "SubscriptionRequest":
				subsMu.Lock()
				subs[ws] = true
				subsMu.Unlock()
				continue
			case "ActionRequest":
				var req struct {
					ID   json.RawMessage   `json:"id"`
					Name string            `json:"name"`
					Args []json.RawMessage `json:"args"`
				}
				if json.Unmarshal(env.Body.Val, &req) != nil {
					return
				}
				switch req.Name {
				case "barrier":
					out = `{"body":{"tag":"ActionResponse","val":{"id":` + string(req.ID) + `,"output":true}}}`
				case "echo":
					out = `{"body":{"tag":"ActionResponse","val":{"id":` + string(req.ID) + `,"output":` + string(req.Args[0]) + `}}}`
				case "fanout":
					ev := `{"body":{"tag":"Event","val":{"name":"fanout","args":[{"tag":` + string(req.Args[1]) + `,"pad":"xx"}]}}}`
					subsMu.Lock()
					for s := range subs {
						s.Write(ctx, websocket.MessageText, []byte(ev))
					}
					subsMu.Unlock()
					out = `{"body":{"tag":"ActionResponse","val":{"id":` + string(req.ID) + `,"output":true}}}`
				default:
					out = `{"body":{"tag":"Error","val":{"group":"actor","code":"action_not_found","message":"no","actionId":` + string(req.ID) + `}}}`
				}
			}
			if ws.Write(ctx, websocket.MessageText, []byte(out)) != nil {
				return
			}
		}
	})
	mux.HandleFunc("POST /gateway/bench/action/{name}", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("x-rivet-encoding") != "json" {
			http.Error(w, "encoding", http.StatusBadRequest)
			return
		}
		p, _ := io.ReadAll(r.Body)
		var body struct {
			Args []json.RawMessage `json:"args"`
		}
		if json.Unmarshal(p, &body) != nil {
			http.Error(w, "body", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if r.PathValue("name") != "echo" {
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"group":"actor","code":"action_not_found","message":"no"}`)
			return
		}
		io.WriteString(w, `{"output":`+string(body.Args[0])+`}`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestConnAgainstFakeGateway(t *testing.T) {
	srv := fakeGateway(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	events := make(chan string, 1)
	c, err := Dial(ctx, time.Second, srv.URL, Target{Name: "bench", Key: []string{"k"}}, func(name string, args json.RawMessage, _ time.Time) {
		events <- name + " " + string(args)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.ActorID != "a1" || c.ConnID != "c1" {
		t.Fatalf("init: %q %q", c.ActorID, c.ConnID)
	}
	for i := range 3 {
		out, err := c.Action(ctx, "echo", map[string]any{"i": i})
		if err != nil || string(out) != `{"i":`+string(rune('0'+i))+`}` {
			t.Fatalf("echo %d: %s %v", i, out, err)
		}
	}
	_, err = c.Action(ctx, "nope")
	var ae *ActorError
	if !errors.As(err, &ae) || ae.Group != "actor" || ae.Code != "action_not_found" {
		t.Fatalf("unknown action: %v", err)
	}
	if err := c.Subscribe(ctx, "fanout"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Action(ctx, "fanout", 2, 7); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-events:
		if ev != `fanout [{"tag":7,"pad":"xx"}]` {
			t.Fatalf("event %s", ev)
		}
	case <-ctx.Done():
		t.Fatal("no event")
	}

	h := &HTTPClient{Endpoint: srv.URL, HTTP: srv.Client()}
	out, err := h.Action(ctx, Target{Name: "bench", Key: []string{"k"}}, "echo", "hi")
	if err != nil || string(out) != `"hi"` {
		t.Fatalf("http echo: %s %v", out, err)
	}
	_, err = h.Action(ctx, Target{Name: "bench", Key: []string{"k"}}, "nope")
	if !errors.As(err, &ae) || ae.Code != "action_not_found" {
		t.Fatalf("http unknown: %v", err)
	}
}

func TestActionFailsWhenSocketCloses(t *testing.T) {
	// A server that sends Init and then drops the socket: a pending action
	// must fail with ErrClosed rather than wait for its context.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"rivet"}})
		if err != nil {
			return
		}
		ws.Write(r.Context(), websocket.MessageText, []byte(`{"body":{"tag":"Init","val":{"actorId":"a","connectionId":"c"}}}`))
		ws.Read(r.Context()) // the action request
		ws.Close(websocket.StatusNormalClosure, "bench.kicked")
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, time.Second, srv.URL, Target{Name: "bench", Key: []string{"k"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Action(ctx, "echo", 1)
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("got %v, want ErrClosed", err)
	}
	if ctx.Err() != nil {
		t.Fatal("waited for the context instead of failing on close")
	}
}

// TestBenchmarksAgainstFakeGateway runs the rtt and fanout benchmarks end to
// end at a tiny size and checks the rows they produce.
func TestBenchmarksAgainstFakeGateway(t *testing.T) {
	srv := fakeGateway(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := config{endpoint: srv.URL, rttN: 20, warmup: 2, httpN: 5, clients: 8, payload: 16, rounds: 3,
		roundWait: 2 * time.Second, conc: 4, step: 2 * time.Second}
	h := &HTTPClient{Endpoint: srv.URL, HTTP: srv.Client()}
	res := &results{}
	if err := benchRTT(ctx, c, h, "t", res); err != nil {
		t.Fatal(err)
	}
	if err := benchFanout(ctx, c, "t", res); err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, r := range res.Rows {
		got[r.Bench+" "+r.Metric] = r.Value
	}
	for _, k := range []string{"rtt p50", "rtt p99", "rtt-http p50", "fanout delivery p50", "fanout events/s (median round)"} {
		if got[k] <= 0 {
			t.Errorf("%s = %v, want > 0 (rows %v)", k, got[k], res.Rows)
		}
	}
	if lost := got["fanout deliveries lost"]; lost != 0 {
		t.Errorf("lost %v deliveries", lost)
	}
}
