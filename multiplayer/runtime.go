package multiplayer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/coder/quartz"

	"github.com/sandbox-agent-go/sandbox-agent/multiplayer/backend"
)

// Registry holds the actor definitions a Runtime serves.
type Registry struct {
	kinds map[string]kind
}

// NewRegistry makes an empty registry.
func NewRegistry() *Registry { return &Registry{kinds: map[string]kind{}} }

// Register adds an actor definition; a second one with the same name
// replaces the first.
func Register[S, V any](r *Registry, d Def[S, V]) {
	if d.Name == "" {
		panic("multiplayer: Register: a Def needs a Name")
	}
	r.kinds[d.Name] = &d
}

// Config configures a Runtime.
type Config struct {
	// Backend is where actors live: backend/sqlite (one process),
	// backend/nats (many nodes), backend/memory (tests). See OpenBackend
	// for choosing one by name.
	Backend backend.Backend
	// Logger; default slog.Default().
	Logger *slog.Logger
	// Clock; default the real one (tests pass a quartz mock).
	Clock quartz.Clock
	// SweepInterval is how often the node looks for due schedules of
	// sleeping actors to wake them; default 1 s.
	SweepInterval time.Duration
	// HelloInterval is how often the gateway tells each actor's owner which
	// connections it holds (reattaching them after a failover and dropping
	// those of a gateway that died); default 5 s.
	HelloInterval time.Duration
	// AllowedOrigins lists the browser origins (scheme://host[:port]) that
	// may call the gateway, besides its own; "*" allows any. Default none:
	// a cross-site page is refused (403).
	AllowedOrigins []string
	// AllowedHosts lists the Host names (without port) the gateway answers
	// to, besides IP literals and localhost, which are always allowed.
	// Default none: a request for any other name is refused (403), so a
	// page that rebinds its own DNS name to this server cannot pass as
	// same-origin. Behind a domain, list it here.
	AllowedHosts []string
	// MaxMessageSize bounds one incoming WebSocket message or HTTP action
	// body; default 64 KiB (rivetkit's maxIncomingMessageSize).
	MaxMessageSize int64
	// MaxOutgoing bounds one connection's queue of unsent messages; a
	// client that falls behind is disconnected (it reconnects and may
	// resume Published events by sequence). Default 1024.
	MaxOutgoing int
}

// Runtime runs actors on one node and serves the client protocol.
type Runtime struct {
	reg   *Registry
	b     backend.Backend
	bus   backend.Bus
	log   *slog.Logger
	clock quartz.Clock
	cfg   Config

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu         sync.Mutex
	hosts      map[string]hostEntry
	activating map[string]chan struct{}
	hubs       map[string]*hub
	closed     bool
}

type hostEntry struct {
	h    host
	stop func()
}

// Open starts a runtime on cfg.Backend. Close it to sleep its actors.
func Open(ctx context.Context, reg *Registry, cfg Config) (*Runtime, error) {
	if cfg.Backend == nil {
		return nil, errors.New("multiplayer: Config.Backend is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Clock == nil {
		cfg.Clock = quartz.NewReal()
	}
	if cfg.SweepInterval <= 0 {
		cfg.SweepInterval = time.Second
	}
	if cfg.HelloInterval <= 0 {
		cfg.HelloInterval = 5 * time.Second
	}
	if cfg.MaxMessageSize <= 0 {
		cfg.MaxMessageSize = 64 << 10
	}
	if cfg.MaxOutgoing <= 0 {
		cfg.MaxOutgoing = 1024
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	rt := &Runtime{reg: reg, b: cfg.Backend, bus: cfg.Backend.Bus(), log: cfg.Logger.With("node", cfg.Backend.NodeID()),
		clock: cfg.Clock, cfg: cfg, ctx: rctx, cancel: cancel,
		hosts: map[string]hostEntry{}, activating: map[string]chan struct{}{}, hubs: map[string]*hub{}}
	rt.wg.Add(2)
	go rt.sweep()
	go rt.helloLoop()
	return rt, nil
}

// Close sleeps every actor of this node (OnSleep, state saved, ownership
// released), closes its connections and stops the background loops. It
// does not close the Backend.
func (rt *Runtime) Close() error {
	rt.mu.Lock()
	if rt.closed {
		rt.mu.Unlock()
		return nil
	}
	rt.closed = true
	hosts := make([]host, 0, len(rt.hosts))
	for _, e := range rt.hosts {
		hosts = append(hosts, e.h)
	}
	hubs := make([]*hub, 0, len(rt.hubs))
	for _, h := range rt.hubs {
		hubs = append(hubs, h)
	}
	rt.mu.Unlock()
	for _, h := range hubs {
		h.closeAll(errStopping)
	}
	ctx, cancel := context.WithTimeout(context.Background(), DefaultSleepGrace+5*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, h := range hosts {
		wg.Go(func() { h.shutdown(ctx) })
	}
	wg.Wait()
	// Only now: OnSleep hooks may still broadcast and publish.
	rt.cancel()
	rt.wg.Wait()
	return nil
}

func (rt *Runtime) kind(name string) (kind, error) {
	k, ok := rt.reg.kinds[name]
	if !ok {
		return nil, &Error{Group: "actor", Code: "not_found", Message: "no actor named " + name}
	}
	return k, nil
}

// resolve finds (or, with create, creates) the actor name/key.
func (rt *Runtime) resolve(ctx context.Context, name string, key []string, method string, input json.RawMessage) (backend.Actor, error) {
	if _, err := rt.kind(name); err != nil {
		return backend.Actor{}, err
	}
	var (
		a   backend.Actor
		err error
	)
	switch method {
	case "get":
		a, err = rt.b.Get(ctx, name, key)
	case "create":
		a, err = rt.b.Create(ctx, name, key, input)
	default:
		a, _, err = rt.b.GetOrCreate(ctx, name, key, input)
	}
	return a, mapBackendErr(err)
}

func mapBackendErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, backend.ErrNotFound):
		return errNotFound
	case errors.Is(err, backend.ErrDuplicateKey):
		return errDuplicateKey
	}
	return err
}

// request routes req to the actor's owner, activating the actor on this
// node when no node serves it (Rivet's gateway holding requests until the
// actor is ready).
func (rt *Runtime) request(ctx context.Context, actorID string, req *hostReq) (*hostResp, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	wait := 5 * time.Millisecond
	for {
		actx, cancel := ctx, context.CancelFunc(func() {})
		if req.within > 0 {
			actx, cancel = context.WithTimeout(ctx, req.within)
		}
		out, err := rt.bus.Request(actx, actorID, body)
		gaveUp := err != nil && actx.Err() != nil && ctx.Err() == nil
		cancel()
		if gaveUp {
			// No answer in the longest a live owner takes: it died with
			// the request (a bus does not tell a requester that its
			// responder is gone). Not sent again: it may have run.
			return nil, errTimedOut
		}
		switch {
		case err == nil:
			var resp hostResp
			if err := json.Unmarshal(out, &resp); err != nil {
				return nil, fmt.Errorf("bad answer from the actor's node: %w", err)
			}
			if resp.Err == nil || resp.Err.Group != errStopping.Group || resp.Err.Code != errStopping.Code {
				return &resp, nil
			}
			// The instance is stopping; the next one will answer.
		case errors.Is(err, backend.ErrNoOwner):
			err := rt.activate(ctx, actorID)
			if err == nil {
				continue
			}
			var owned *backend.OwnedError
			if !errors.As(err, &owned) {
				return nil, mapBackendErr(err)
			}
			// Another node is starting or stopping it.
		default:
			return nil, err
		}
		if waited, err := rt.waitLocal(ctx, actorID); err != nil {
			return nil, err
		} else if waited {
			continue
		}
		// Another node is starting or stopping the actor: poll. Real time
		// on purpose: this waits for other processes, not for the actor's
		// logical time (which the Clock serves).
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
		wait = min(wait*2, 250*time.Millisecond)
	}
}

// activate claims the actor and starts it here; one start at a time per
// actor on this node.
func (rt *Runtime) activate(ctx context.Context, actorID string) error {
	for {
		rt.mu.Lock()
		if rt.closed {
			rt.mu.Unlock()
			return errStopping
		}
		if e, ok := rt.hosts[actorID]; ok {
			rt.mu.Unlock()
			if e.stop != nil {
				return nil // serving
			}
			// Stopping here: the next instance starts once it is gone.
			select {
			case <-e.h.finished():
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		ch, busy := rt.activating[actorID]
		if !busy {
			ch = make(chan struct{})
			rt.activating[actorID] = ch
			rt.mu.Unlock()
			break
		}
		rt.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	defer func() {
		rt.mu.Lock()
		close(rt.activating[actorID])
		delete(rt.activating, actorID)
		rt.mu.Unlock()
	}()
	rec, err := rt.b.Lookup(ctx, actorID)
	if err != nil {
		return err
	}
	k, err := rt.kind(rec.Name)
	if err != nil {
		return err
	}
	owner, err := rt.b.Claim(ctx, actorID)
	if err != nil {
		return err
	}
	h, err := k.start(rt.ctx, rt, owner)
	if err != nil {
		_ = owner.Release(context.Background())
		return fmt.Errorf("start actor %s: %w", actorID, err)
	}
	stop, err := rt.bus.Serve(actorID, func(ctx context.Context, req []byte) []byte {
		var r hostReq
		if err := json.Unmarshal(req, &r); err != nil {
			return mustJSON(errResp(&Error{Group: "request", Code: "invalid", Message: err.Error()}))
		}
		return mustJSON(h.handle(ctx, &r))
	})
	if err != nil {
		h.shutdown(context.Background())
		return err
	}
	rt.mu.Lock()
	if rt.closed {
		rt.mu.Unlock()
		stop()
		h.shutdown(context.Background())
		return errStopping
	}
	rt.hosts[actorID] = hostEntry{h: h, stop: stop}
	rt.mu.Unlock()
	return nil
}

// waitLocal waits for this node's instance of the actor to finish when
// it is shutting down; false when there is none to wait for.
func (rt *Runtime) waitLocal(ctx context.Context, actorID string) (bool, error) {
	rt.mu.Lock()
	e, ok := rt.hosts[actorID]
	rt.mu.Unlock()
	if !ok {
		return false, nil
	}
	select {
	case <-e.h.finished():
		return true, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// stopServing stops answering for the actor (start of its shutdown).
func (rt *Runtime) stopServing(actorID string, h host) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if e, ok := rt.hosts[actorID]; ok && e.h == h && e.stop != nil {
		e.stop()
		e.stop = nil
		rt.hosts[actorID] = e
	}
}

// removeHost forgets a stopped instance.
func (rt *Runtime) removeHost(actorID string, h host) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if e, ok := rt.hosts[actorID]; ok && e.h == h {
		if e.stop != nil {
			e.stop()
		}
		delete(rt.hosts, actorID)
	}
}

func (rt *Runtime) publishBus(actorID string, m *busMsg) {
	if err := rt.publishBusErr(actorID, m); err != nil {
		rt.log.Debug("bus publish failed", "actor_id", actorID, "err", err)
	}
}

func (rt *Runtime) publishBusErr(actorID string, m *busMsg) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(rt.ctx, 5*time.Second)
	defer cancel()
	return rt.bus.Publish(ctx, actorID, b)
}

// sweep wakes actors whose schedules are due while they sleep.
func (rt *Runtime) sweep() {
	defer rt.wg.Done()
	for {
		t := rt.clock.NewTimer(rt.cfg.SweepInterval, "sweep")
		select {
		case <-rt.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(rt.ctx, rt.cfg.SweepInterval*5)
		due, err := rt.b.DueSchedules(ctx, rt.clock.Now(), 100)
		if err != nil && rt.ctx.Err() == nil {
			rt.log.Warn("schedule sweep failed", "err", err)
		}
		woken := map[string]bool{}
		for _, s := range due {
			if woken[s.ActorID] {
				continue
			}
			woken[s.ActorID] = true
			if _, err := rt.request(ctx, s.ActorID, &hostReq{Op: opWake}); err != nil && rt.ctx.Err() == nil {
				rt.log.Warn("waking an actor for its schedule failed", "actor_id", s.ActorID, "err", err)
			}
		}
		cancel()
	}
}

// Call runs an action server-side (no connection), creating the actor when
// it does not exist, and decodes its output into out (nil: discard).
func (rt *Runtime) Call(ctx context.Context, name string, key []string, action string, out any, args ...any) error {
	a, err := rt.resolve(ctx, name, key, "getOrCreate", nil)
	if err != nil {
		return err
	}
	raw, err := marshalArgs(args)
	if err != nil {
		return err
	}
	resp, err := rt.request(ctx, a.ID, &hostReq{Op: opAction, Name: action, Args: raw, within: rt.answerWithin(name)})
	if err != nil {
		return err
	}
	if resp.Err != nil {
		return resp.Err.toError()
	}
	if out == nil || len(resp.Output) == 0 {
		return nil
	}
	return json.Unmarshal(resp.Output, out)
}

// Events reads Published events of an actor with sequence > after.
func (rt *Runtime) Events(ctx context.Context, actorID string, after uint64, limit int) ([]backend.Event, error) {
	evs, err := rt.b.Events(ctx, actorID, after, limit)
	return evs, mapBackendErr(err)
}

// Bus messages.

const (
	opAction     = "action"
	opConnect    = "connect"
	opDisconnect = "disconnect"
	opWake       = "wake"
	opHello      = "hello"
	opAuthorize  = "authorize"
)

// hostReq is what a gateway (or Call) asks an actor's owner.
type hostReq struct {
	Op     string          `json:"op"`
	Conn   string          `json:"conn,omitempty"`
	Node   string          `json:"node,omitempty"`
	Name   string          `json:"name,omitempty"`
	Args   json.RawMessage `json:"args,omitempty"`
	Params json.RawMessage `json:"params,omitempty"`
	Conns  []helloConn     `json:"conns,omitempty"`
	// Stateless marks a gateway's HTTP action: OnBeforeConnect authorises
	// its params first, as for a connection.
	Stateless bool `json:"stateless,omitempty"`
	// within bounds each wait for the owner's answer (0: the caller's ctx
	// only); see answerWithin. Not sent.
	within time.Duration
}

// answerWithin is the longest a live owner of an actor named name takes to
// answer an action, a connect or an authorisation: its turn waits and runs
// within ActionTimeout, its hooks within HookTimeout, plus a second of
// transit. Past it the owner is taken for dead, so that a request in
// flight when its node died ends instead of waiting forever.
func (rt *Runtime) answerWithin(name string) time.Duration {
	k, ok := rt.reg.kinds[name]
	if !ok {
		return 0
	}
	o := k.options()
	return o.ActionTimeout + o.HookTimeout + time.Second
}

type helloConn struct {
	ID     string          `json:"id"`
	Params json.RawMessage `json:"params,omitempty"`
	// Gen is the generation of the instance the connection connected to.
	Gen uint64 `json:"gen,omitempty"`
}

type hostResp struct {
	Output json.RawMessage `json:"output,omitempty"`
	Err    *wireError      `json:"error,omitempty"`
	Gen    uint64          `json:"gen,omitempty"`
	// Kick: the action disconnected its own connection with this reason;
	// the gateway closes it instead of answering.
	Kick string `json:"kick,omitempty"`
}

// busMsg is what an owner publishes to the gateways: an event, or the
// closing of its connections.
type busMsg struct {
	T    string          `json:"t"`
	Name string          `json:"name,omitempty"`
	Args json.RawMessage `json:"args,omitempty"`
	Seq  uint64          `json:"seq,omitempty"`
	Err  *wireError      `json:"err,omitempty"`
	// kick: the connection and the close reason.
	Conn   string `json:"conn,omitempty"`
	Reason string `json:"reason,omitempty"`
}

type wireError struct {
	Group    string          `json:"group"`
	Code     string          `json:"code"`
	Message  string          `json:"message"`
	Metadata json.RawMessage `json:"metadata,omitempty"`
}

func (w *wireError) toError() *Error {
	e := &Error{Group: w.Group, Code: w.Code, Message: w.Message}
	if len(w.Metadata) > 0 {
		e.Metadata = w.Metadata
	}
	return e
}

func wireErrorOf(e *Error) *wireError {
	w := &wireError{Group: e.Group, Code: e.Code, Message: e.Message}
	if e.Metadata != nil {
		if b, err := json.Marshal(e.Metadata); err == nil {
			w.Metadata = b
		}
	}
	return w
}

func errResp(err error) *hostResp { return &hostResp{Err: wireErrorOf(publicError(err))} }

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(errResp(errInternal))
	}
	return b
}
