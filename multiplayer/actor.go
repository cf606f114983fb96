package multiplayer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/quartz"
	"github.com/google/uuid"

	"github.com/sandbox-agent-go/sandbox-agent/multiplayer/backend"
)

// An instance is one live actor on this node. Its invariant: everything in
// the "loop only" block below is touched only by the loop goroutine, which
// runs posted turns one at a time; other goroutines reach the actor only by
// posting a turn (post) or through the thread-safe parts (Broadcast,
// Publish, the owner's storage).
type instance[S, V any] struct {
	rt    *Runtime
	def   *Def[S, V]
	opts  Options
	owner backend.Owner
	rec   backend.Actor
	log   *slog.Logger
	clock quartz.Clock

	turns  chan func()
	done   chan struct{} // closed when the loop has exited
	ctx    context.Context
	cancel context.CancelFunc
	// stopping is set at the start of shutdown: requests are answered
	// ("actor","stopping") and the caller retries (a new instance).
	stopping atomic.Bool
	pubMu    sync.Mutex // Publish appends and fans out in Seq order

	kickMu sync.Mutex
	kicked map[string]string // conn id → close reason, set by Disconnect

	// loop only
	state       S
	vars        V
	conns       map[string]*Conn
	busy        int
	lastSaved   []byte
	saveArmed   bool
	idleGen     int
	idleTimer   *quartz.Timer
	schedTimers map[string]*quartz.Timer
	exit        bool
	// touched: a turn ran actor code that may have changed the state;
	// only then is a save armed (internal turns do not re-arm it forever).
	touched bool
	// active: a turn served a caller since the idle timer was armed; the
	// actor sleeps after SleepTimeout of continuous idleness, so it re-arms.
	active bool
}

type kind interface {
	name() string
	has(action string) bool
	options() Options
	start(ctx context.Context, rt *Runtime, owner backend.Owner) (host, error)
}

// host is the runtime's view of a live instance.
type host interface {
	handle(ctx context.Context, req *hostReq) *hostResp
	// shutdown sleeps the actor now (runtime Close) and waits for it.
	shutdown(ctx context.Context)
	finished() <-chan struct{}
}

func (d *Def[S, V]) name() string     { return d.Name }
func (d *Def[S, V]) options() Options { return d.Options.withDefaults() }
func (d *Def[S, V]) has(action string) bool {
	_, ok := d.Actions[action]
	return ok
}

func (d *Def[S, V]) start(ctx context.Context, rt *Runtime, owner backend.Owner) (host, error) {
	actx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	in := &instance[S, V]{rt: rt, def: d, opts: d.Options.withDefaults(), owner: owner, rec: owner.Actor(),
		clock: rt.clock, turns: make(chan func(), 16), done: make(chan struct{}), ctx: actx, cancel: cancel,
		conns: map[string]*Conn{}, schedTimers: map[string]*quartz.Timer{}}
	in.log = rt.log.With("actor", d.Name, "actor_id", in.rec.ID, "generation", owner.Generation())
	ready := make(chan error, 1)
	go in.loop(ctx, ready)
	select {
	case err := <-ready:
		if err != nil {
			<-in.done
			return nil, err
		}
		return in, nil
	case <-ctx.Done():
		// The loop goes on starting and then sleeps: nobody serves it yet,
		// so it is idle.
		return nil, ctx.Err()
	}
}

// loop is the actor's goroutine: wake, then turns until shutdown.
func (in *instance[S, V]) loop(startCtx context.Context, ready chan<- error) {
	defer close(in.done)
	defer in.cancel()
	if err := in.wake(startCtx); err != nil {
		in.log.Warn("actor failed to wake", "err", err)
		in.stopping.Store(true)
		_ = in.owner.Release(context.Background())
		ready <- err
		return
	}
	ready <- nil
	in.touched = true // CreateVars and OnWake may have changed it
	in.afterTurn()
	for !in.exit {
		select {
		case fn := <-in.turns:
			fn()
			if !in.exit {
				in.afterTurn()
			}
		case <-in.owner.Lost():
			in.log.Warn("actor lost its ownership; stopping (self-fence)")
			in.fence()
		}
	}
}

func (in *instance[S, V]) wake(ctx context.Context) error {
	hctx, cancel := context.WithTimeout(ctx, in.opts.HookTimeout)
	defer cancel()
	raw, ok, err := in.owner.LoadState(hctx)
	if err != nil {
		return fmt.Errorf("load state: %w", err)
	}
	if ok {
		if err := json.Unmarshal(raw, &in.state); err != nil {
			return fmt.Errorf("decode state: %w", err)
		}
		in.lastSaved = raw
	} else if in.def.CreateState != nil {
		s, err := in.def.CreateState(&InitCtx{ctx: hctx, rec: in.rec}, in.rec.Input)
		if err != nil {
			return fmt.Errorf("create state: %w", err)
		}
		in.state = s
		// Saved at once: CreateState runs once per actor, never twice.
		if err := in.flush(hctx); err != nil {
			return err
		}
	}
	c := in.ctxFor(in.ctx, nil)
	if in.def.CreateVars != nil {
		v, err := callHook(hctx, func() (V, error) { return in.def.CreateVars(c) })
		if err != nil {
			return fmt.Errorf("create vars: %w", err)
		}
		in.vars = v
	}
	if in.def.OnWake != nil {
		if _, err := callHook(hctx, func() (struct{}, error) { return struct{}{}, in.def.OnWake(c) }); err != nil {
			return fmt.Errorf("on wake: %w", err)
		}
	}
	scheds, err := in.owner.Schedules(hctx)
	if err != nil {
		return fmt.Errorf("load schedules: %w", err)
	}
	for _, s := range scheds {
		in.arm(s)
	}
	return nil
}

// callHook runs a hook on the loop, its ctx (bounded by HookTimeout)
// cancelled at the deadline, and waits for it: a hook left running on
// another goroutine would touch the state beside the next turns. A hook
// that ignores its context holds the actor up.
func callHook[T any](ctx context.Context, fn func() (T, error)) (T, error) {
	v, err := fn()
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	return v, err
}

// post queues fn as a turn; errStopping once the actor is shutting down.
func (in *instance[S, V]) post(ctx context.Context, fn func()) error {
	if in.stopping.Load() {
		return errStopping
	}
	select {
	case in.turns <- fn:
		return nil
	case <-in.done:
		return errStopping
	case <-ctx.Done():
		return ctx.Err()
	}
}

// afterTurn arms the save throttle and the idle timer.
func (in *instance[S, V]) afterTurn() {
	if in.touched {
		in.active = true
	}
	if in.touched && !in.saveArmed {
		in.touched = false
		in.saveArmed = true
		in.clock.AfterFunc(in.opts.StateSaveInterval, func() {
			_ = in.post(context.Background(), func() {
				in.saveArmed = false
				if err := in.flush(in.ctx); err != nil {
					in.writeFailed(err)
				}
			})
		})
	}
	in.checkIdle()
}

func (in *instance[S, V]) checkIdle() {
	if in.opts.SleepTimeout < 0 || in.busy > 0 || len(in.conns) > 0 || in.stopping.Load() {
		if in.idleTimer != nil {
			in.idleTimer.Stop()
			in.idleTimer = nil
			in.idleGen++
		}
		return
	}
	if in.idleTimer != nil {
		if !in.active {
			return
		}
		in.idleTimer.Stop()
	}
	in.active = false
	in.idleGen++
	gen := in.idleGen
	in.idleTimer = in.clock.AfterFunc(in.opts.SleepTimeout, func() {
		_ = in.post(context.Background(), func() {
			if gen != in.idleGen {
				return // a timer that was stopped too late
			}
			in.idleTimer = nil
			if in.busy == 0 && len(in.conns) == 0 {
				in.log.Debug("actor idle; sleeping")
				in.stop(false)
			}
		})
	})
}

// flush saves the state if it changed since the last save.
func (in *instance[S, V]) flush(ctx context.Context) error {
	raw, err := json.Marshal(in.state)
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	if in.lastSaved != nil && bytes.Equal(raw, in.lastSaved) {
		return nil
	}
	if err := in.owner.SaveState(ctx, raw); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	in.lastSaved = raw
	return nil
}

// writeFailed handles a failed durable write: a fenced owner stops.
func (in *instance[S, V]) writeFailed(err error) {
	if errors.Is(err, backend.ErrFenced) {
		in.fence()
		return
	}
	in.log.Warn("actor write failed", "err", err)
}

// fence stops an actor that is no longer the owner: no hooks, no saves
// (they would fail), connections told to reconnect.
func (in *instance[S, V]) fence() {
	in.stopping.Store(true)
	in.cancel()
	in.stopTimers()
	in.closeConns(errRestarting)
	in.rt.removeHost(in.rec.ID, in)
	in.exit = true
}

var errRestarting = &Error{Group: "actor", Code: "restarting", Message: "the actor moved; reconnect"}

// stop is the shutdown sequence (on the loop): abort, hooks bounded by the
// grace period, save, give up ownership. In-flight actions are not
// awaited, as in Rivet.
func (in *instance[S, V]) stop(destroy bool) {
	if in.exit {
		return
	}
	in.stopping.Store(true)
	in.rt.stopServing(in.rec.ID, in)
	in.cancel()
	in.stopTimers()
	gctx, cancel := context.WithTimeout(context.Background(), in.opts.SleepGrace)
	defer cancel()
	c := in.ctxFor(gctx, nil)
	hook := in.def.OnSleep
	if destroy {
		hook = in.def.OnDestroy
	}
	if hook != nil {
		if _, err := callHook(gctx, func() (struct{}, error) { return struct{}{}, hook(c) }); err != nil {
			in.log.Warn("actor shutdown hook failed", "err", err)
		}
	}
	if destroy {
		in.closeConns(&Error{Group: "actor", Code: "destroyed", Message: "actor destroyed"})
		if err := in.owner.Destroy(context.Background()); err != nil {
			in.log.Warn("actor destroy failed", "err", err)
		}
	} else {
		in.closeConns(errStopping)
		if err := in.flush(context.Background()); err != nil {
			in.log.Warn("actor state not saved at sleep", "err", err)
		}
		if err := in.owner.Release(context.Background()); err != nil {
			in.log.Warn("actor release failed", "err", err)
		}
	}
	in.rt.removeHost(in.rec.ID, in)
	in.exit = true
}

func (in *instance[S, V]) stopTimers() {
	if in.idleTimer != nil {
		in.idleTimer.Stop()
		in.idleTimer = nil
	}
	for id, t := range in.schedTimers {
		t.Stop()
		delete(in.schedTimers, id)
	}
}

// closeConns asks the gateways to close this actor's connections; their
// clients reconnect (to the next instance).
func (in *instance[S, V]) closeConns(e *Error) {
	if len(in.conns) == 0 {
		return
	}
	in.rt.publishBus(in.rec.ID, &busMsg{T: "close", Err: wireErrorOf(e)})
	clear(in.conns)
}

func (in *instance[S, V]) shutdown(ctx context.Context) {
	_ = in.post(ctx, func() { in.stop(false) })
	select {
	case <-in.done:
	case <-ctx.Done():
	}
}

func (in *instance[S, V]) finished() <-chan struct{} { return in.done }

// handle answers one request routed to this actor (any goroutine).
func (in *instance[S, V]) handle(ctx context.Context, req *hostReq) *hostResp {
	if in.stopping.Load() {
		return errResp(errStopping)
	}
	switch req.Op {
	case opAction:
		return in.action(ctx, req)
	case opConnect:
		return in.connect(ctx, req)
	case opDisconnect:
		err := in.post(ctx, func() {
			c, ok := in.conns[req.Conn]
			if !ok {
				return
			}
			delete(in.conns, req.Conn)
			in.kickMu.Lock()
			delete(in.kicked, req.Conn)
			in.kickMu.Unlock()
			in.touched = true
			if in.def.OnDisconnect != nil {
				in.def.OnDisconnect(in.ctxFor(in.ctx, c), c)
			}
		})
		if err != nil {
			return errResp(err)
		}
		return &hostResp{}
	case opWake:
		return &hostResp{Gen: in.owner.Generation()}
	case opAuthorize:
		res := make(chan error, 1)
		if err := in.post(ctx, func() { res <- in.authorize(ctx, req.Params) }); err != nil {
			return errResp(err)
		}
		select {
		case err := <-res:
			if err != nil {
				return errResp(err)
			}
			return &hostResp{}
		case <-in.done:
			return errResp(errStopping)
		case <-ctx.Done():
			return errResp(ctx.Err())
		}
	case opHello:
		return in.hello(ctx, req)
	default:
		return errResp(&Error{Group: "request", Code: "invalid", Message: "unknown operation " + req.Op})
	}
}

// hello reconciles a gateway's live connections with ours: after a
// failover the new instance learns the connections it did not see open,
// and connections of a gateway that lists them no more are dropped.
func (in *instance[S, V]) hello(ctx context.Context, req *hostReq) *hostResp {
	err := in.post(ctx, func() {
		in.touched = true
		listed := map[string]bool{}
		for _, h := range req.Conns {
			listed[h.ID] = true
			// Only a connection made to an earlier instance is reattached:
			// one of this generation that we lack has disconnected (a hello
			// read before its disconnect is stale).
			if _, ok := in.conns[h.ID]; !ok && h.Gen < in.owner.Generation() {
				c := &Conn{ID: h.ID, Params: h.Params, node: req.Node}
				in.conns[h.ID] = c
				if in.def.OnConnect != nil {
					if err := in.def.OnConnect(in.ctxFor(in.ctx, c), c); err != nil {
						in.log.Debug("OnConnect failed for a reattached connection", "err", err)
					}
				}
			}
		}
		for id, c := range in.conns {
			if c.node == req.Node && !listed[id] {
				delete(in.conns, id)
				if in.def.OnDisconnect != nil {
					in.def.OnDisconnect(in.ctxFor(in.ctx, c), c)
				}
			}
		}
	})
	if err != nil {
		return errResp(err)
	}
	return &hostResp{Gen: in.owner.Generation()}
}

func (in *instance[S, V]) connect(ctx context.Context, req *hostReq) *hostResp {
	res := make(chan error, 1)
	err := in.post(ctx, func() {
		c := &Conn{ID: req.Conn, Params: req.Params, node: req.Node}
		cc := in.ctxFor(ctx, c)
		in.touched = true
		hctx, cancel := context.WithTimeout(ctx, in.opts.HookTimeout)
		defer cancel()
		cc.ctx = hctx
		if in.def.OnBeforeConnect != nil {
			if _, err := callHook(hctx, func() (struct{}, error) { return struct{}{}, in.def.OnBeforeConnect(cc, req.Params) }); err != nil {
				res <- err
				return
			}
		}
		in.conns[c.ID] = c
		if in.def.OnConnect != nil {
			if _, err := callHook(hctx, func() (struct{}, error) { return struct{}{}, in.def.OnConnect(cc, c) }); err != nil {
				delete(in.conns, c.ID)
				res <- err
				return
			}
		}
		res <- nil
	})
	if err == nil {
		select {
		case err = <-res:
		case <-in.done:
			// The loop ended before running the turn (it was posted as the
			// actor stopped); the caller retries on the next instance.
			select {
			case err = <-res:
			default:
				err = errStopping
			}
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	if err != nil {
		return errResp(err)
	}
	return &hostResp{Gen: in.owner.Generation()}
}

func (in *instance[S, V]) action(ctx context.Context, req *hostReq) *hostResp {
	act, ok := in.def.Actions[req.Name]
	if !ok {
		return errResp(errActionNotFound(req.Name))
	}
	actx, cancel := context.WithTimeout(ctx, in.opts.ActionTimeout)
	defer cancel()
	type result struct {
		out any
		err error
	}
	res := make(chan result, 1)
	var started atomic.Bool
	err := in.post(actx, func() {
		if actx.Err() != nil {
			// The caller gave up while the turn waited: do not run it (a
			// retry would run it twice).
			res <- result{nil, errTimedOut}
			return
		}
		started.Store(true)
		conn := in.conns[req.Conn]
		if conn == nil && req.Params != nil {
			conn = &Conn{Params: req.Params}
		}
		c := in.ctxFor(actx, conn)
		in.touched = true
		if req.Stateless {
			if err := in.authorize(actx, req.Params); err != nil {
				res <- result{nil, err}
				return
			}
		}
		if !act.long {
			in.busy++
			out, err := runAction(func() (any, error) { return act.turn(c, req.Args) })
			in.busy--
			res <- result{out, err}
			return
		}
		// A long action: counted busy (so the actor does not sleep under
		// it) until its goroutine posts its end.
		in.busy++
		go func() {
			out, err := runAction(func() (any, error) { return act.run(&AsyncCtx[S, V]{base: c.base}, req.Args) })
			res <- result{out, err}
			_ = in.post(context.Background(), func() { in.busy-- })
		}()
	})
	if err != nil {
		return errResp(err)
	}
	select {
	case r := <-res:
		return in.answer(req, r.out, r.err)
	case <-in.done:
		if !started.Load() {
			// Never ran: the caller retries on the next instance.
			return errResp(errStopping)
		}
		// It ran (a turn: its result is there) or runs (a long action goes
		// on after the shutdown): its own answer, never a retry, which
		// would run it twice.
		select {
		case r := <-res:
			return in.answer(req, r.out, r.err)
		case <-actx.Done():
			return errResp(errAborted)
		}
	case <-actx.Done():
		if ctx.Err() != nil {
			return errResp(ctx.Err())
		}
		return errResp(errTimedOut)
	}
}

// answer turns an action's result into its response.
func (in *instance[S, V]) answer(req *hostReq, out any, err error) *hostResp {
	if err != nil {
		if !isPublic(err) {
			in.log.Warn("action failed", "action", req.Name, "err", err)
		}
		return errResp(err)
	}
	// A connection the action disconnected gets no answer: its call
	// fails with the close reason, as in Rivet (the close comes first).
	in.kickMu.Lock()
	reason, kicked := in.kicked[req.Conn]
	delete(in.kicked, req.Conn)
	in.kickMu.Unlock()
	if kicked && req.Conn != "" {
		return &hostResp{Kick: reason}
	}
	raw, err := json.Marshal(out)
	if err != nil {
		in.log.Warn("action output is not JSON", "action", req.Name, "err", err)
		return errResp(errInternal)
	}
	return &hostResp{Output: raw}
}

func isPublic(err error) bool {
	var e *Error
	return errors.As(err, &e)
}

// runAction turns a panicking action into an internal error: one bad
// action must not take the node down.
func runAction(fn func() (any, error)) (out any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("action panicked: %v", r)
		}
	}()
	return fn()
}

// authorize runs OnBeforeConnect for a caller without a connection (a
// stateless HTTP action, an events stream).
func (in *instance[S, V]) authorize(ctx context.Context, params json.RawMessage) error {
	if in.def.OnBeforeConnect == nil {
		return nil
	}
	hctx, cancel := context.WithTimeout(ctx, in.opts.HookTimeout)
	defer cancel()
	c := in.ctxFor(hctx, &Conn{Params: params})
	_, err := callHook(hctx, func() (struct{}, error) { return struct{}{}, in.def.OnBeforeConnect(c, params) })
	return err
}

// arm sets a timer for a durable schedule of this actor.
func (in *instance[S, V]) arm(s backend.Schedule) {
	if t, ok := in.schedTimers[s.ID]; ok {
		t.Stop()
	}
	d := s.At.Sub(in.clock.Now())
	in.schedTimers[s.ID] = in.clock.AfterFunc(max(d, 0), func() {
		_ = in.post(context.Background(), func() { in.fire(s) })
	})
}

// fire runs a due schedule once: taken (removed) first, so a crash while
// it runs does not run it again (at most once, as Rivet).
func (in *instance[S, V]) fire(s backend.Schedule) {
	delete(in.schedTimers, s.ID)
	ok, err := in.owner.TakeSchedule(in.ctx, s.ID)
	if err != nil {
		in.writeFailed(err)
		return
	}
	if !ok {
		return
	}
	act, found := in.def.Actions[s.Action]
	if !found {
		in.log.Warn("scheduled action not found", "action", s.Action)
		return
	}
	c := in.ctxFor(in.ctx, nil)
	in.touched = true
	if !act.long {
		in.busy++
		if _, err := runAction(func() (any, error) { return act.turn(c, s.Args) }); err != nil {
			in.log.Warn("scheduled action failed", "action", s.Action, "err", err)
		}
		in.busy--
		return
	}
	in.busy++
	go func() {
		if _, err := runAction(func() (any, error) { return act.run(&AsyncCtx[S, V]{base: c.base}, s.Args) }); err != nil {
			in.log.Warn("scheduled action failed", "action", s.Action, "err", err)
		}
		_ = in.post(context.Background(), func() { in.busy-- })
	}()
}

// Conn is one client connection to an actor, as the actor sees it.
type Conn struct {
	// ID is the connection id the client got in Init.
	ID string
	// Params are the connection params the client passed (JSON; nil when
	// none).
	Params json.RawMessage
	node   string
}

// InitCtx is what CreateState sees.
type InitCtx struct {
	ctx context.Context
	rec backend.Actor
}

// Context bounds CreateState (HookTimeout).
func (c *InitCtx) Context() context.Context { return c.ctx }

// ActorID is the actor's id (stable for its life).
func (c *InitCtx) ActorID() string { return c.rec.ID }

// Name is the actor's type name.
func (c *InitCtx) Name() string { return c.rec.Name }

// Key is the actor's key (a copy).
func (c *InitCtx) Key() []string { return slices.Clone(c.rec.Key) }

// base holds what both contexts offer and is safe from any goroutine.
type base[S, V any] struct {
	in   *instance[S, V]
	ctx  context.Context
	conn *Conn
}

// Ctx is a turn's view of its actor: exclusive access to the state for the
// duration of the turn. Do not keep it after the turn returns.
type Ctx[S, V any] struct{ base[S, V] }

// AsyncCtx is a long action's view of its actor: no direct state access;
// Do runs a turn.
type AsyncCtx[S, V any] struct{ base[S, V] }

func (in *instance[S, V]) ctxFor(ctx context.Context, conn *Conn) *Ctx[S, V] {
	return &Ctx[S, V]{base[S, V]{in: in, ctx: ctx, conn: conn}}
}

// State is the actor's state; changes are saved on the throttle.
func (c *Ctx[S, V]) State() *S { return &c.in.state }

// SaveState writes the state now (immediate) or on the next throttle tick.
func (c *Ctx[S, V]) SaveState(immediate bool) error {
	if !immediate {
		return nil // every turn arms the throttle already
	}
	if err := c.in.flush(c.ctx); err != nil {
		c.in.writeFailed(err)
		return err
	}
	return nil
}

// Conns lists the actor's live connections.
func (c *Ctx[S, V]) Conns() []*Conn {
	out := make([]*Conn, 0, len(c.in.conns))
	for _, k := range c.in.conns {
		out = append(out, k)
	}
	return out
}

// Sleep puts the actor to sleep after this turn.
func (c *Ctx[S, V]) Sleep() {
	in := c.in
	_ = in.postLater(func() { in.stop(false) })
}

// Destroy destroys the actor after this turn: OnDestroy, then every
// stored thing deleted; the key is free again.
func (c *Ctx[S, V]) Destroy() {
	in := c.in
	_ = in.postLater(func() { in.stop(true) })
}

// postLater queues fn without blocking the turn that asks for it.
func (in *instance[S, V]) postLater(fn func()) error {
	go func() { _ = in.post(context.Background(), fn) }()
	return nil
}

// After schedules action(args...) in d; durable: it survives sleep and
// restarts and wakes the actor. It returns the schedule's id.
func (c *Ctx[S, V]) After(d time.Duration, action string, args ...any) (string, error) {
	return c.At(c.in.clock.Now().Add(d), action, args...)
}

// At schedules action(args...) at t (see After).
func (c *Ctx[S, V]) At(t time.Time, action string, args ...any) (string, error) {
	if !c.in.def.has(action) {
		return "", errActionNotFound(action)
	}
	raw, err := marshalArgs(args)
	if err != nil {
		return "", err
	}
	s := backend.Schedule{ID: uuid.NewString(), ActorID: c.in.rec.ID, At: t, Action: action, Args: raw}
	if err := c.in.owner.AddSchedule(c.ctx, s); err != nil {
		c.in.writeFailed(err)
		return "", err
	}
	c.in.arm(s)
	return s.ID, nil
}

// CancelSchedule cancels a schedule; false when it had fired or never was.
func (c *Ctx[S, V]) CancelSchedule(id string) (bool, error) {
	if t, ok := c.in.schedTimers[id]; ok {
		t.Stop()
		delete(c.in.schedTimers, id)
	}
	return c.in.owner.CancelSchedule(c.ctx, id)
}

// KeepAwake keeps the actor from sleeping until done is called.
func (c *Ctx[S, V]) KeepAwake() (done func()) {
	in := c.in
	in.busy++
	var once sync.Once
	return func() { once.Do(func() { _ = in.postLater(func() { in.busy-- }) }) }
}

// Do runs fn as a turn of the actor and returns its error.
func (c *AsyncCtx[S, V]) Do(fn func(c *Ctx[S, V]) error) error {
	res := make(chan error, 1)
	if err := c.in.post(c.ctx, func() {
		c.in.touched = true
		res <- fn(&Ctx[S, V]{c.base})
	}); err != nil {
		return err
	}
	select {
	case err := <-res:
		return err
	case <-c.in.done:
		return errStopping
	case <-c.ctx.Done():
		return c.ctx.Err()
	}
}

// Context is cancelled when the action ends (its timeout) or, for hooks,
// at the start of shutdown (Rivet's abortSignal).
func (c *base[S, V]) Context() context.Context { return c.ctx }

// ActorContext is cancelled at the start of the actor's shutdown: use it
// for work that outlives one action (subscriptions made in CreateVars).
func (c *base[S, V]) ActorContext() context.Context { return c.in.ctx }

// Vars are what CreateVars made at this wake.
func (c *base[S, V]) Vars() V { return c.in.vars }

// ActorID is the actor's id (stable for its life).
func (c *base[S, V]) ActorID() string { return c.in.rec.ID }

// Name is the actor's type name.
func (c *base[S, V]) Name() string { return c.in.rec.Name }

// Key is the actor's key (a copy).
func (c *base[S, V]) Key() []string { return slices.Clone(c.in.rec.Key) }

// Generation grows by one each time the actor wakes on any node; errors
// and events carry it.
func (c *base[S, V]) Generation() uint64 { return c.in.owner.Generation() }

// Logger logs with the actor's name, id and generation.
func (c *base[S, V]) Logger() *slog.Logger { return c.in.log }

// Conn is the connection that called the action (nil for a server-side or
// scheduled call; a stateless HTTP call has a Conn with its params only).
func (c *base[S, V]) Conn() *Conn { return c.conn }

// Storage is an actor's own key-value storage: durable and fenced like its
// state (a stale owner's writes fail), in namespaces. multiplayer/sessionstore
// keeps a sandbox-agent SessionStore in it.
type Storage interface {
	Put(ctx context.Context, ns, key string, value []byte) error
	Get(ctx context.Context, ns, key string) ([]byte, error)
	Delete(ctx context.Context, ns, key string) error
	List(ctx context.Context, ns, after string, limit int) ([]backend.Item, error)
}

// Storage is this actor's key-value storage, usable from any goroutine
// while the instance lives.
func (c *base[S, V]) Storage() Storage { return c.in.owner }

// Disconnect closes one connection; reason "group.code" reaches the
// client as an ActorError with that group and code (Rivet's
// conn.disconnect). The client reconnects unless it disposes.
func (c *base[S, V]) Disconnect(conn *Conn, reason string) error {
	if conn == nil || conn.ID == "" {
		return nil
	}
	in := c.in
	in.kickMu.Lock()
	if in.kicked == nil {
		in.kicked = map[string]string{}
	}
	in.kicked[conn.ID] = reason
	in.kickMu.Unlock()
	return in.rt.publishBusErr(in.rec.ID, &busMsg{T: "kick", Conn: conn.ID, Reason: reason})
}

// Broadcast sends an ephemeral event to every connection subscribed to
// name (Rivet's c.broadcast): not stored, lost for clients away.
func (c *base[S, V]) Broadcast(name string, args ...any) error {
	raw, err := marshalArgs(args)
	if err != nil {
		return err
	}
	return c.in.rt.publishBusErr(c.in.rec.ID, &busMsg{T: "ev", Name: name, Args: raw})
}

// Publish stores a durable, sequence-numbered event and then broadcasts
// it; clients away can read it back from its sequence number (the events
// route, see docs/multiplayer.md). It returns the sequence number.
func (c *base[S, V]) Publish(name string, args ...any) (uint64, error) {
	raw, err := marshalArgs(args)
	if err != nil {
		return 0, err
	}
	in := c.in
	in.pubMu.Lock()
	defer in.pubMu.Unlock()
	ev, err := in.owner.Append(c.ctx, name, raw)
	if err != nil {
		if errors.Is(err, backend.ErrFenced) {
			_ = in.postLater(func() {
				if !in.exit {
					in.fence()
				}
			})
		}
		return 0, err
	}
	return ev.Seq, in.rt.publishBusErr(in.rec.ID, &busMsg{T: "ev", Name: name, Args: raw, Seq: ev.Seq})
}

func marshalArgs(args []any) (json.RawMessage, error) {
	if args == nil {
		args = []any{}
	}
	raw, err := json.Marshal(args)
	if err != nil {
		return nil, fmt.Errorf("event arguments are not JSON: %w", err)
	}
	return raw, nil
}
