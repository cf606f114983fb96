package multiplayer_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sandbox-agent-go/sandbox-agent/multiplayer"
	"github.com/sandbox-agent-go/sandbox-agent/multiplayer/backend"
	natsbackend "github.com/sandbox-agent-go/sandbox-agent/multiplayer/backend/nats"
	"github.com/sandbox-agent-go/sandbox-agent/multiplayer/internal/natstest"
)

// The runtime on a NATS cluster, end to end: these tests run real
// nats-servers, real runtimes and their gateways over HTTP, and a client
// speaking rivetkit's JSON protocol.

// roomState is what a room persists: how many messages it took and the
// sequence number of the last one it Published.
type roomState struct {
	Said int    `json:"said"`
	Last uint64 `json:"last"`
}

// roomVars names the instance: the node it runs on, and its actor
// context (cancelled when the instance stops).
type roomVars struct {
	node string
	ctx  context.Context
}

type roomCtx = multiplayer.Ctx[roomState, *roomVars]

type where struct {
	Node string `json:"node"`
	Gen  uint64 `json:"gen"`
}

// instances records every instance of the room started by a test, on
// any node, so that a test can see an old one stop.
type instances struct {
	mu   sync.Mutex
	list []started
	// pubErr receives the error of a Publish that failed.
	pubErr chan error
	// hanging receives when a "hang" action starts.
	hanging chan string
}

type started struct {
	where
	ctx context.Context
}

func (in *instances) get(node string, gen uint64) (context.Context, bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, s := range in.list {
		if s.Node == node && s.Gen == gen {
			return s.ctx, true
		}
	}
	return nil, false
}

// roomDef is a chat room: "say" Publishes a message and saves the state
// at once, so that what a client saw acknowledged is durable.
func roomDef(node string, in *instances) multiplayer.Def[roomState, *roomVars] {
	return multiplayer.Def[roomState, *roomVars]{
		Name: "room",
		CreateVars: func(c *roomCtx) (*roomVars, error) {
			in.mu.Lock()
			in.list = append(in.list, started{where{node, c.Generation()}, c.ActorContext()})
			in.mu.Unlock()
			return &roomVars{node: node, ctx: c.ActorContext()}, nil
		},
		Actions: map[string]multiplayer.ActionFunc[roomState, *roomVars]{
			"say": multiplayer.Action(func(c *roomCtx, text string) (uint64, error) {
				seq, err := c.Publish("said", text)
				if err != nil {
					select {
					case in.pubErr <- err:
					default:
					}
					return 0, err
				}
				c.State().Said++
				c.State().Last = seq
				return seq, c.SaveState(true)
			}),
			// hang answers only when its own timeout ends it.
			"hang": multiplayer.Long(func(c *multiplayer.AsyncCtx[roomState, *roomVars], _ struct{}) (int, error) {
				select {
				case in.hanging <- node:
				default:
				}
				<-c.Context().Done()
				return 0, c.Context().Err()
			}),
			"get": multiplayer.Action(func(c *roomCtx, _ struct{}) (roomState, error) {
				return *c.State(), nil
			}),
			"where": multiplayer.Action(func(c *roomCtx, _ struct{}) (where, error) {
				return where{c.Vars().node, c.Generation()}, nil
			}),
			"conns": multiplayer.Action(func(c *roomCtx, _ struct{}) (int, error) {
				return len(c.Conns()), nil
			}),
		},
		Options: roomOptions,
	}
}

// roomOptions: short action and hook timeouts, so that a gateway gives up
// on a dead owner's in-flight action quickly.
var roomOptions = multiplayer.Options{SleepTimeout: -1, ActionTimeout: 2 * time.Second, HookTimeout: time.Second}

var quiet = slog.New(slog.DiscardHandler)

// node is one multiplayer process: its NATS connection, backend, runtime
// and gateway.
type node struct {
	id  string
	nc  *nats.Conn
	b   *natsbackend.Backend
	rt  *multiplayer.Runtime
	url string
}

// startNode opens a node on server s. Its cleanup closes the gateway, the
// runtime and the backend, in that order (a killed node's too: each copes
// with a closed connection).
func startNode(t *testing.T, id string, s *server.Server, opts natsbackend.Options, in *instances) *node {
	t.Helper()
	n := &node{id: id, nc: natstest.Connect(t, s.ClientURL())}
	opts.Conn, opts.NodeID, opts.Logger = n.nc, id, quiet
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	b, err := natsbackend.Open(ctx, opts)
	if err != nil {
		t.Fatalf("node %s: %v", id, err)
	}
	n.b = b
	reg := multiplayer.NewRegistry()
	multiplayer.Register(reg, roomDef(id, in))
	// A short hello interval: after the failover the new instance learns
	// the connections the gateways hold within a second.
	rt, err := multiplayer.Open(ctx, reg, multiplayer.Config{Backend: b, Logger: quiet, HelloInterval: time.Second})
	if err != nil {
		_ = b.Close()
		t.Fatal(err)
	}
	n.rt = rt
	srv := httptest.NewServer(rt.Handler())
	n.url = srv.URL
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		_ = rt.Close()
		_ = b.Close()
	})
	return n
}

// kill stops a node the hard way: its NATS connection is closed under
// the runtime (nothing is released, the lease is not dropped) and its
// nats-server shut down.
func (n *node) kill(s *server.Server) {
	n.nc.Close()
	s.Shutdown()
}

// wsClient is a rivetkit JSON connection to one actor.
type wsClient struct {
	t      *testing.T
	ws     *websocket.Conn
	nextID int
	events []string // "said" events received, in order
}

type frame struct {
	Body struct {
		Tag string `json:"tag"`
		Val struct {
			ActorID  string            `json:"actorId"`
			ConnID   string            `json:"connectionId"`
			ID       json.RawMessage   `json:"id"`
			ActionID json.RawMessage   `json:"actionId"`
			Output   json.RawMessage   `json:"output"`
			Name     string            `json:"name"`
			Args     []json.RawMessage `json:"args"`
			Group    string            `json:"group"`
			Code     string            `json:"code"`
			Message  string            `json:"message"`
		} `json:"val"`
	} `json:"body"`
}

// dialRoom connects to the room key through the gateway at base,
// subscribed to "said"; it returns the client and the actor id from Init.
func dialRoom(ctx context.Context, t *testing.T, base, key string) (*wsClient, string, error) {
	t.Helper()
	ws, _, err := websocket.Dial(ctx, strings.Replace(base, "http", "ws", 1)+"/gateway/room/connect?rvt-method=getOrCreate&rvt-key="+key,
		&websocket.DialOptions{Subprotocols: []string{"rivet", "rivet_encoding.json"}})
	if err != nil {
		return nil, "", err
	}
	t.Cleanup(func() { _ = ws.CloseNow() })
	c := &wsClient{t: t, ws: ws}
	f, err := c.read(ctx)
	if err != nil {
		return nil, "", err
	}
	if f.Body.Tag != "Init" || f.Body.Val.ActorID == "" {
		return nil, "", fmt.Errorf("first frame %s %s.%s, want Init", f.Body.Tag, f.Body.Val.Group, f.Body.Val.Code)
	}
	sub := `{"body":{"tag":"SubscriptionRequest","val":{"eventName":"said","subscribe":true}}}`
	if err := ws.Write(ctx, websocket.MessageText, []byte(sub)); err != nil {
		return nil, "", err
	}
	return c, f.Body.Val.ActorID, nil
}

func (c *wsClient) read(ctx context.Context) (frame, error) {
	var f frame
	_, b, err := c.ws.Read(ctx)
	if err != nil {
		return f, err
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return f, fmt.Errorf("frame %s: %w", b, err)
	}
	return f, nil
}

// actionError is an Error frame answering an action.
type actionError struct{ group, code, message string }

func (e *actionError) Error() string { return e.group + "." + e.code + ": " + e.message }

// call runs action with one argument and decodes its output into out;
// events that arrive meanwhile are recorded. An Error frame for the action
// comes back as *actionError; a closed connection as the read error.
func (c *wsClient) call(ctx context.Context, action string, arg, out any) error {
	c.nextID++
	id := strconv.Itoa(c.nextID)
	args, _ := json.Marshal([]any{arg})
	req := fmt.Sprintf(`{"body":{"tag":"ActionRequest","val":{"id":["$BigInt",%q],"name":%q,"args":%s}}}`, id, action, args)
	if err := c.ws.Write(ctx, websocket.MessageText, []byte(req)); err != nil {
		return err
	}
	isOurs := func(raw json.RawMessage) bool {
		var v []string
		return json.Unmarshal(raw, &v) == nil && len(v) == 2 && v[1] == id
	}
	for {
		f, err := c.read(ctx)
		if err != nil {
			return err
		}
		v := f.Body.Val
		switch f.Body.Tag {
		case "Event":
			if v.Name == "said" && len(v.Args) == 1 {
				var s string
				_ = json.Unmarshal(v.Args[0], &s)
				c.events = append(c.events, s)
			}
		case "ActionResponse":
			if isOurs(v.ID) {
				return json.Unmarshal(v.Output, out)
			}
		case "Error":
			if len(v.ActionID) == 0 || string(v.ActionID) == "null" || isOurs(v.ActionID) {
				return &actionError{v.Group, v.Code, v.Message}
			}
		}
	}
}

// said is an acknowledged Publish: its sequence number and text.
type said struct {
	seq  uint64
	text string
}

// allEvents reads every durable event of the actor through rt.
func allEvents(ctx context.Context, t *testing.T, rt *multiplayer.Runtime, actorID string) []backend.Event {
	t.Helper()
	var evs []backend.Event
	for {
		page, err := rt.Events(ctx, actorID, uint64(len(evs)), 500)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			return evs
		}
		evs = append(evs, page...)
	}
}

// checkEvents: sequence numbers 1..n without a gap or a repeat, no text
// twice (a Publish that landed twice under two numbers), and every
// acknowledged Publish there with its text.
func checkEvents(t *testing.T, evs []backend.Event, acked []said) {
	t.Helper()
	texts := map[string]uint64{}
	for i, e := range evs {
		if e.Seq != uint64(i+1) {
			t.Fatalf("event %d has Seq %d: a gap or a duplicate", i+1, e.Seq)
		}
		var args []string
		if err := json.Unmarshal(e.Args, &args); err != nil || len(args) != 1 || e.Name != "said" {
			t.Fatalf("event %d: %s %s", e.Seq, e.Name, e.Args)
		}
		if prev, dup := texts[args[0]]; dup {
			t.Errorf("%q published twice, as %d and %d", args[0], prev, e.Seq)
		}
		texts[args[0]] = e.Seq
	}
	for _, a := range acked {
		if got, ok := texts[a.text]; !ok || got != a.seq {
			t.Errorf("acknowledged %q (Seq %d) is stored as Seq %d (present %v)", a.text, a.seq, got, ok)
		}
	}
}

// readSSE reads n events from the gateway's events route from since=0.
func readSSE(ctx context.Context, t *testing.T, base, actorID string, n int) []backend.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/gateway/"+actorID+"/events?since=0", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("events route: status %d", resp.StatusCode)
	}
	var out []backend.Event
	sc := bufio.NewScanner(resp.Body)
	var cur backend.Event
	for len(out) < n && sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "id: "):
			cur.Seq, _ = strconv.ParseUint(strings.TrimPrefix(line, "id: "), 10, 64)
		case strings.HasPrefix(line, "event: "):
			cur.Name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			cur.Args = json.RawMessage(strings.TrimPrefix(line, "data: "))
		case line == "" && cur.Seq != 0:
			out = append(out, cur)
			cur = backend.Event{}
		}
	}
	if len(out) < n {
		t.Fatalf("events route gave %d events of %d: %v", len(out), n, sc.Err())
	}
	return out
}

// TestClusterFailover is the scenario on three NATS servers and
// three runtimes (R3, LeaseTTL 2 s): a client on node B's gateway talks to
// a room owned by node A; A is killed mid-session (connection and server
// gone, nothing released). The room is served again on another node within
// LeaseTTL + 1 s, the client's WebSocket on B carries on (the gateway never
// closes it: the new owner's events reach B's hub as before, and B's hello
// reattaches the connection to the new instance), no acknowledged Publish
// is lost and the sequence has no gap, and the state saved before the kill
// is there.
func TestClusterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("3-server cluster")
	}
	began := time.Now()
	const ttl = 2 * time.Second
	srvs := natstest.Cluster(t, 3)
	in := &instances{pubErr: make(chan error, 1), hanging: make(chan string, 1)}
	opts := natsbackend.Options{Replicas: 3, LeaseTTL: ttl}
	a, b, c := startNode(t, "a", srvs[0], opts, in), startNode(t, "b", srvs[1], opts, in), startNode(t, "c", srvs[2], opts, in)
	t.Logf("3 servers and 3 nodes up in %v", time.Since(began))
	ctx, cancel := context.WithTimeout(t.Context(), 25*time.Second)
	defer cancel()

	// A owns the room: the first call goes through A.
	var w where
	if err := a.rt.Call(ctx, "room", []string{"r"}, "where", &w); err != nil || w.Node != "a" || w.Gen != 1 {
		t.Fatalf("first call through A: %+v %v", w, err)
	}
	// Killing A's server then costs the lease, not a Raft election.
	natstest.MoveLeaders(ctx, t, b.nc, srvs[0].Name(), "KV_mp_actors", "KV_mp_nodes", "mp_data")

	cl, actorID, err := dialRoom(ctx, t, b.url, "r")
	if err != nil {
		t.Fatal(err)
	}
	var acked []said
	say := func(cl *wsClient, text string) error {
		var seq uint64
		if err := cl.call(ctx, "say", text, &seq); err != nil {
			return err
		}
		acked = append(acked, said{seq, text})
		return nil
	}
	for i := range 5 {
		if err := say(cl, fmt.Sprintf("ws%d", i)); err != nil {
			t.Fatalf("say through B to A's room: %v", err)
		}
	}

	// Mid-session: A's own callers say things as fast as they can until A
	// dies; what they saw acknowledged must survive.
	var mu sync.Mutex
	var ackedOnA []said
	stop, twenty := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
			var seq uint64
			text := fmt.Sprintf("a%d", i)
			err := a.rt.Call(cctx, "room", []string{"r"}, "say", &seq, text)
			ccancel()
			if err != nil {
				continue // after the kill: refused or timed out
			}
			mu.Lock()
			ackedOnA = append(ackedOnA, said{seq, text})
			if len(ackedOnA) == 20 {
				close(twenty)
			}
			mu.Unlock()
		}
	})
	select {
	case <-twenty:
	case <-ctx.Done():
		t.Fatal("A did not take 20 messages")
	}
	// And one action of B's clients is in flight on A when it dies.
	cl2, _, err := dialRoom(ctx, t, b.url, "r")
	if err != nil {
		t.Fatal(err)
	}
	hangSent := time.Now()
	hung := make(chan error, 1)
	go func() { hung <- cl2.call(ctx, "hang", nil, new(int)) }()
	select {
	case n := <-in.hanging:
		if n != "a" {
			t.Fatalf("hang runs on %s, want a", n)
		}
	case <-ctx.Done():
		t.Fatal("the hang action did not start")
	}

	killed := time.Now()
	a.kill(srvs[0])
	close(stop)

	// The first action through B after the kill: the gateway holds it
	// while no node serves the room, claims it when A's lease is dead,
	// and answers. If the gateway closed the connection instead
	// (actor.restarting), the client would reconnect and send it again,
	// as rivetkit's does.
	reconnects := 0
	for {
		err := say(cl, "after-kill")
		if err == nil {
			break
		}
		var ae *actionError
		if !errors.As(err, &ae) {
			if ctx.Err() != nil {
				t.Fatalf("no answer through B after the kill: %v", err)
			}
			t.Logf("B's gateway closed the connection after the kill (%v); reconnecting", err)
			reconnects++
			if cl, _, err = dialRoom(ctx, t, b.url, "r"); err != nil {
				t.Fatalf("reconnect to B: %v", err)
			}
			continue
		}
		t.Logf("after the kill, say through B failed with %v; sending again", err)
		if ctx.Err() != nil {
			t.Fatal("no successful action through B after the kill")
		}
	}
	took := time.Since(killed)
	wg.Wait()
	t.Logf("failover: an action through B succeeded %v after A was killed (LeaseTTL %v, %d reconnects, %d messages acknowledged on A)",
		took, ttl, reconnects, len(ackedOnA))
	if took > ttl+time.Second {
		t.Errorf("failover took %v, want at most LeaseTTL + 1 s = %v", took, ttl+time.Second)
	}
	if err := b.rt.Call(ctx, "room", []string{"r"}, "where", &w); err != nil || (w.Node != "b" && w.Node != "c") || w.Gen < 2 {
		t.Fatalf("after the failover the room is at %+v (%v), want on b or c, generation ≥ 2", w, err)
	}
	t.Logf("the room is now served on %s, generation %d", w.Node, w.Gen)

	// The same WebSocket goes on: actions answered, events delivered live.
	for i := range 4 {
		if err := say(cl, fmt.Sprintf("after%d", i)); err != nil {
			t.Fatalf("say after the failover: %v", err)
		}
	}
	// The action in flight on A when it died gets an answer: the gateway
	// gives up on it once a live owner would have answered (its
	// ActionTimeout and HookTimeout, and a second), as a timeout; it is
	// not sent again (it may have run). Its connection carries on.
	bound := roomOptions.ActionTimeout + roomOptions.HookTimeout + time.Second
	var herr error
	select {
	case herr = <-hung:
	case <-time.After(time.Until(hangSent.Add(bound + time.Second))):
		t.Fatalf("the action in flight on the killed owner has no answer %v after it was sent", time.Since(hangSent))
	}
	var ae *actionError
	if !errors.As(herr, &ae) || ae.code != "action_timed_out" {
		t.Errorf("the action in flight on the killed owner ended with %v, want action_timed_out", herr)
	}
	if d := time.Since(hangSent); d > bound+time.Second {
		t.Errorf("the action in flight on the killed owner was answered after %v, want within %v", d, bound)
	}
	var n int
	if err := cl2.call(ctx, "conns", nil, &n); err != nil {
		t.Fatalf("the connection whose action was lost: %v", err)
	}
	if err := cl.call(ctx, "conns", nil, &n); err != nil {
		t.Fatal(err)
	}
	live := map[string]int{}
	for _, e := range cl.events {
		live[e]++
	}
	for _, want := range []string{"ws0", "ws4", "after-kill", "after0", "after3"} {
		if live[want] != 1 {
			t.Errorf("the client got event %q %d times, want once (got %q)", want, live[want], cl.events)
		}
	}
	// B's hello (every second) tells the new instance of the connections
	// it did not see open; polled (the hello loop has no hook), bounded.
	for n != 2 {
		select {
		case <-ctx.Done():
			t.Fatalf("the new instance sees %d connections, want the two clients'", n)
		case <-time.After(100 * time.Millisecond):
		}
		if err := c.rt.Call(ctx, "room", []string{"r"}, "conns", &n); err != nil {
			t.Fatal(err)
		}
	}

	mu.Lock()
	all := append(append([]said(nil), acked...), ackedOnA...)
	mu.Unlock()
	evs := allEvents(ctx, t, c.rt, actorID)
	checkEvents(t, evs, all)
	// Every event, in order, from the events route of the third node too.
	sse := readSSE(ctx, t, c.url, actorID, len(evs))
	for i, e := range sse {
		if e.Seq != evs[i].Seq || e.Name != evs[i].Name || string(e.Args) != string(evs[i].Args) {
			t.Fatalf("events route event %d = %d %s %s, stored %d %s %s", i, e.Seq, e.Name, e.Args, evs[i].Seq, evs[i].Name, evs[i].Args)
		}
	}
	// The state saved before the kill is there: every acknowledged say
	// counted (a say killed between its Publish and its save is an event
	// without a count), and the last one is the last event.
	var st roomState
	if err := c.rt.Call(ctx, "room", []string{"r"}, "get", &st); err != nil {
		t.Fatal(err)
	}
	if st.Said < len(all) || st.Said > len(evs) || st.Last != uint64(len(evs)) {
		t.Errorf("state %+v after the failover; %d says acknowledged, %d events", st, len(all), len(evs))
	}
	t.Logf("%d events, %d acknowledged, none lost; total %v", len(evs), len(all), time.Since(began))
}

// TestClusterFencedOwnerStops: an owner that missed the loss of its lease
// (a paused process: here its lease is deleted under it, and it renews
// too rarely to notice) still serves the room when another node claims
// it. Its next Publish is refused with ErrFenced, nothing of it lands, and
// the instance stops at once.
func TestClusterFencedOwnerStops(t *testing.T) {
	srvs := natstest.Cluster(t, 1)
	in := &instances{pubErr: make(chan error, 1), hanging: make(chan string, 1)}
	opts := natsbackend.Options{Prefix: "fence", LeaseTTL: 30 * time.Second}
	a := startNode(t, "a", srvs[0], opts, in)
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()

	var seq uint64
	if err := a.rt.Call(ctx, "room", []string{"r"}, "say", &seq, "a1"); err != nil || seq != 1 {
		t.Fatalf("say through A: %d %v", seq, err)
	}
	old, ok := in.get("a", 1)
	if !ok {
		t.Fatal("no instance of generation 1 on a")
	}

	// The lease expires under A (as the server's TTL would after a pause),
	// and another node claims the room.
	js, err := jetstream.New(natstest.Connect(t, srvs[0].ClientURL()))
	if err != nil {
		t.Fatal(err)
	}
	leases, err := js.KeyValue(ctx, "fence_nodes")
	if err != nil {
		t.Fatal(err)
	}
	if err := leases.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	opts.Conn, opts.NodeID, opts.Logger = natstest.Connect(t, srvs[0].ClientURL()), "u", quiet
	u, err := natsbackend.Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = u.Close() })
	rec, err := u.Get(ctx, "room", []string{"r"})
	if err != nil {
		t.Fatal(err)
	}
	ou, err := u.Claim(ctx, rec.ID)
	if err != nil {
		t.Fatalf("claim over A's dead lease: %v", err)
	}

	// A still serves the room and believes it owns it.
	if err := a.rt.Call(ctx, "room", []string{"r"}, "say", nil, "stale"); err == nil {
		t.Fatal("a say by the fenced owner succeeded")
	}
	select {
	case err := <-in.pubErr:
		if !errors.Is(err, backend.ErrFenced) {
			t.Errorf("the fenced owner's Publish failed with %v, want ErrFenced", err)
		}
	default:
		t.Error("the fenced owner's say did not fail in Publish")
	}
	select {
	case <-old.Done():
	case <-ctx.Done():
		t.Fatal("the fenced instance did not stop")
	}
	if e, err := ou.Append(ctx, "said", json.RawMessage(`["u1"]`)); err != nil || e.Seq != 2 {
		t.Fatalf("the new owner's Append: %+v %v", e, err)
	}
	evs, err := u.Events(ctx, rec.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	checkEvents(t, evs, []said{{1, "a1"}, {2, "u1"}})
	if len(evs) != 2 {
		t.Errorf("%d events, want a1 and u1 only (the stale say refused)", len(evs))
	}
}
