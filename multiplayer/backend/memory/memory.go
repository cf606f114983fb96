// Package memory is the reference driver of multiplayer/backend: everything
// in process memory, nothing durable. Several nodes can share one World, so
// the runtime's routing between nodes is tested without a network: a
// request to an actor another node owns crosses the World's bus exactly as
// it would cross NATS.
package memory

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/multiplayer/backend"
)

// World is one deployment shared by its nodes.
type World struct {
	mu       sync.Mutex
	nextID   int
	byKey    map[string]string // name + "\x00" + canonical key → actor id
	actors   map[string]*actor
	nodes    map[string]*Node
	serving  map[string]serveEntry
	subs     map[string]map[int]func([]byte)
	nextSub  int
	pubMu    sync.Mutex // one Publish at a time: delivery order = call order
	timeNow  func() time.Time
	nodeSeqs int
}

type serveEntry struct {
	node string
	h    backend.Handler
	tok  int
}

type actor struct {
	rec        backend.Actor
	generation uint64
	owner      *owner // live owner, nil when none
	state      []byte
	hasState   bool
	events     []backend.Event
	kv         map[string]map[string][]byte
	schedules  map[string]backend.Schedule
}

// NewWorld makes an empty deployment.
func NewWorld() *World {
	return &World{byKey: map[string]string{}, actors: map[string]*actor{}, nodes: map[string]*Node{},
		serving: map[string]serveEntry{}, subs: map[string]map[int]func([]byte){}, timeNow: time.Now}
}

// New is a one-node World.
func New() *Node { return NewWorld().Node("") }

// Node adds a node (id "" picks node-1, node-2...).
func (w *World) Node(id string) *Node {
	w.mu.Lock()
	defer w.mu.Unlock()
	if id == "" {
		w.nodeSeqs++
		id = "node-" + strconv.Itoa(w.nodeSeqs)
	}
	n := &Node{w: w, id: id}
	w.nodes[id] = n
	return n
}

// Node is one node's Backend.
type Node struct {
	w      *World
	id     string
	closed bool // guarded by w.mu
}

var _ backend.Backend = (*Node)(nil)

func (n *Node) NodeID() string   { return n.id }
func (n *Node) Bus() backend.Bus { return bus{n} }

func lookupKey(name string, key []string) string { return name + "\x00" + backend.CanonicalKey(key) }

// lock takes the World's lock for a call of this node: the ctx must be
// live and the node open.
func (n *Node) lock(ctx context.Context) (unlock func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	n.w.mu.Lock()
	if err := n.check(); err != nil {
		n.w.mu.Unlock()
		return nil, err
	}
	return n.w.mu.Unlock, nil
}

func (n *Node) check() error {
	if n.closed {
		return backend.ErrClosed
	}
	return nil
}

func (n *Node) GetOrCreate(ctx context.Context, name string, key []string, input json.RawMessage) (backend.Actor, bool, error) {
	w := n.w
	unlock, err := n.lock(ctx)
	if err != nil {
		return backend.Actor{}, false, err
	}
	defer unlock()
	if id, ok := w.byKey[lookupKey(name, key)]; ok {
		return w.actors[id].rec, false, nil
	}
	return w.create(name, key, input), true, nil
}

func (w *World) create(name string, key []string, input json.RawMessage) backend.Actor {
	w.nextID++
	rec := backend.Actor{ID: fmt.Sprintf("a%08d", w.nextID), Name: name, Key: slices.Clone(key),
		Input: slices.Clone(input), CreatedAt: w.timeNow()}
	w.byKey[lookupKey(name, key)] = rec.ID
	w.actors[rec.ID] = &actor{rec: rec, kv: map[string]map[string][]byte{}, schedules: map[string]backend.Schedule{}}
	return rec
}

func (n *Node) Create(ctx context.Context, name string, key []string, input json.RawMessage) (backend.Actor, error) {
	w := n.w
	unlock, err := n.lock(ctx)
	if err != nil {
		return backend.Actor{}, err
	}
	defer unlock()
	if _, ok := w.byKey[lookupKey(name, key)]; ok {
		return backend.Actor{}, fmt.Errorf("create %s %q: %w", name, key, backend.ErrDuplicateKey)
	}
	return w.create(name, key, input), nil
}

func (n *Node) Get(ctx context.Context, name string, key []string) (backend.Actor, error) {
	w := n.w
	unlock, err := n.lock(ctx)
	if err != nil {
		return backend.Actor{}, err
	}
	defer unlock()
	id, ok := w.byKey[lookupKey(name, key)]
	if !ok {
		return backend.Actor{}, fmt.Errorf("actor %s %q: %w", name, key, backend.ErrNotFound)
	}
	return w.actors[id].rec, nil
}

func (n *Node) Lookup(ctx context.Context, actorID string) (backend.Actor, error) {
	w := n.w
	unlock, err := n.lock(ctx)
	if err != nil {
		return backend.Actor{}, err
	}
	defer unlock()
	a, ok := w.actors[actorID]
	if !ok {
		return backend.Actor{}, fmt.Errorf("actor %s: %w", actorID, backend.ErrNotFound)
	}
	return a.rec, nil
}

func (n *Node) Claim(ctx context.Context, actorID string) (backend.Owner, error) {
	w := n.w
	unlock, err := n.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	a, ok := w.actors[actorID]
	if !ok {
		return nil, fmt.Errorf("claim %s: %w", actorID, backend.ErrNotFound)
	}
	if a.owner != nil {
		return nil, &backend.OwnedError{ActorID: actorID, Node: a.owner.node.id}
	}
	a.generation++
	o := &owner{node: n, a: a, gen: a.generation, lost: make(chan struct{})}
	a.owner = o
	return o, nil
}

// Expire ends the live ownership of actorID as a lost lease would: the
// Owner's Lost closes and its writes fail, and any node may claim again.
// For tests of fencing.
func (w *World) Expire(actorID string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if a, ok := w.actors[actorID]; ok && a.owner != nil {
		a.owner.loseLocked()
	}
}

func (n *Node) Events(ctx context.Context, actorID string, after uint64, limit int) ([]backend.Event, error) {
	w := n.w
	unlock, err := n.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	a, ok := w.actors[actorID]
	if !ok {
		return nil, fmt.Errorf("events of %s: %w", actorID, backend.ErrNotFound)
	}
	if limit <= 0 {
		limit = 1000
	}
	if after >= uint64(len(a.events)) {
		return nil, nil
	}
	end := min(uint64(len(a.events)), after+uint64(limit))
	return slices.Clone(a.events[after:end]), nil
}

func (n *Node) DueSchedules(ctx context.Context, now time.Time, limit int) ([]backend.Schedule, error) {
	w := n.w
	unlock, err := n.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var due []backend.Schedule
	for _, a := range w.actors {
		for _, s := range a.schedules {
			if !s.At.After(now) {
				due = append(due, s)
			}
		}
	}
	sortSchedules(due)
	if limit > 0 && len(due) > limit {
		due = due[:limit]
	}
	return due, nil
}

func sortSchedules(s []backend.Schedule) {
	sort.Slice(s, func(i, j int) bool {
		if !s[i].At.Equal(s[j].At) {
			return s[i].At.Before(s[j].At)
		}
		return s[i].ID < s[j].ID
	})
}

// Close releases this node's owners and stops its serving.
func (n *Node) Close() error {
	w := n.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	for _, a := range w.actors {
		if a.owner != nil && a.owner.node == n {
			a.owner.loseLocked()
		}
	}
	for id, e := range w.serving {
		if e.node == n.id {
			delete(w.serving, id)
		}
	}
	return nil
}

type owner struct {
	node *Node
	a    *actor
	gen  uint64
	lost chan struct{}
	done bool // guarded by world mu: lost closed
}

func (o *owner) loseLocked() {
	if !o.done {
		o.done = true
		close(o.lost)
	}
	if o.a.owner == o {
		o.a.owner = nil
	}
}

func (o *owner) Actor() backend.Actor  { return o.a.rec }
func (o *owner) Generation() uint64    { return o.gen }
func (o *owner) Lost() <-chan struct{} { return o.lost }
func (o *owner) fenced() error {
	return fmt.Errorf("actor %s generation %d: %w", o.a.rec.ID, o.gen, backend.ErrFenced)
}
func (o *owner) live() bool    { return o.a.owner == o && !o.node.closed }
func (o *owner) world() *World { return o.node.w }
func (o *owner) lock(ctx context.Context) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	w := o.world()
	w.mu.Lock()
	if !o.live() {
		w.mu.Unlock()
		return nil, o.fenced()
	}
	return w.mu.Unlock, nil
}

func (o *owner) LoadState(ctx context.Context) ([]byte, bool, error) {
	unlock, err := o.lock(ctx)
	if err != nil {
		return nil, false, err
	}
	defer unlock()
	return slices.Clone(o.a.state), o.a.hasState, nil
}

func (o *owner) SaveState(ctx context.Context, state []byte) error {
	unlock, err := o.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	o.a.state, o.a.hasState = slices.Clone(state), true
	return nil
}

func (o *owner) Append(ctx context.Context, name string, args json.RawMessage) (backend.Event, error) {
	unlock, err := o.lock(ctx)
	if err != nil {
		return backend.Event{}, err
	}
	defer unlock()
	e := backend.Event{Seq: uint64(len(o.a.events)) + 1, Name: name, Args: slices.Clone(args),
		Generation: o.gen, Time: o.world().timeNow()}
	o.a.events = append(o.a.events, e)
	return e, nil
}

func (o *owner) Put(ctx context.Context, ns, key string, value []byte) error {
	unlock, err := o.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	m := o.a.kv[ns]
	if m == nil {
		m = map[string][]byte{}
		o.a.kv[ns] = m
	}
	m[key] = slices.Clone(value)
	return nil
}

func (o *owner) Get(ctx context.Context, ns, key string) ([]byte, error) {
	unlock, err := o.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	v, ok := o.a.kv[ns][key]
	if !ok {
		return nil, fmt.Errorf("%s/%s: %w", ns, key, backend.ErrNotFound)
	}
	return slices.Clone(v), nil
}

func (o *owner) Delete(ctx context.Context, ns, key string) error {
	unlock, err := o.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	delete(o.a.kv[ns], key)
	return nil
}

func (o *owner) List(ctx context.Context, ns, after string, limit int) ([]backend.Item, error) {
	unlock, err := o.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var items []backend.Item
	for k, v := range o.a.kv[ns] {
		if k > after {
			items = append(items, backend.Item{Key: k, Value: slices.Clone(v)})
		}
	}
	sort.Slice(items, func(i, j int) bool { return items[i].Key < items[j].Key })
	if limit > 0 && len(items) > limit {
		items = items[:limit]
	}
	return items, nil
}

func (o *owner) AddSchedule(ctx context.Context, s backend.Schedule) error {
	unlock, err := o.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	s.ActorID = o.a.rec.ID
	s.Args = slices.Clone(s.Args)
	o.a.schedules[s.ID] = s
	return nil
}

func (o *owner) CancelSchedule(ctx context.Context, id string) (bool, error) {
	unlock, err := o.lock(ctx)
	if err != nil {
		return false, err
	}
	defer unlock()
	_, ok := o.a.schedules[id]
	delete(o.a.schedules, id)
	return ok, nil
}

func (o *owner) TakeSchedule(ctx context.Context, id string) (bool, error) {
	return o.CancelSchedule(ctx, id)
}

func (o *owner) Schedules(ctx context.Context) ([]backend.Schedule, error) {
	unlock, err := o.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	s := make([]backend.Schedule, 0, len(o.a.schedules))
	for _, v := range o.a.schedules {
		s = append(s, v)
	}
	sortSchedules(s)
	return s, nil
}

func (o *owner) Release(ctx context.Context) error {
	w := o.world()
	w.mu.Lock()
	defer w.mu.Unlock()
	if o.a.owner == o {
		o.loseLocked()
	}
	return nil
}

func (o *owner) Destroy(ctx context.Context) error {
	unlock, err := o.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	w := o.world()
	delete(w.actors, o.a.rec.ID)
	delete(w.byKey, lookupKey(o.a.rec.Name, o.a.rec.Key))
	o.loseLocked()
	return nil
}

type bus struct{ n *Node }

func (b bus) Serve(actorID string, h backend.Handler) (func(), error) {
	w := b.n.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := b.n.check(); err != nil {
		return nil, err
	}
	w.nextSub++
	tok := w.nextSub
	w.serving[actorID] = serveEntry{node: b.n.id, h: h, tok: tok}
	return func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if e, ok := w.serving[actorID]; ok && e.tok == tok {
			delete(w.serving, actorID)
		}
	}, nil
}

func (b bus) Request(ctx context.Context, actorID string, req []byte) ([]byte, error) {
	w := b.n.w
	w.mu.Lock()
	if err := b.n.check(); err != nil {
		w.mu.Unlock()
		return nil, err
	}
	e, ok := w.serving[actorID]
	w.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("request to %s: %w", actorID, backend.ErrNoOwner)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// The handler gets its own copy, as it would off a network.
	resp := e.h(ctx, slices.Clone(req))
	// An answer that comes after ctx ended is not delivered, as off a
	// network.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return resp, nil
}

func (b bus) Publish(ctx context.Context, actorID string, msg []byte) error {
	w := b.n.w
	w.pubMu.Lock()
	defer w.pubMu.Unlock()
	w.mu.Lock()
	if err := b.n.check(); err != nil {
		w.mu.Unlock()
		return err
	}
	fns := make([]func([]byte), 0, len(w.subs[actorID]))
	keys := make([]int, 0, len(w.subs[actorID]))
	for k := range w.subs[actorID] {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fns = append(fns, w.subs[actorID][k])
	}
	w.mu.Unlock()
	for _, fn := range fns {
		fn(msg)
	}
	return nil
}

func (b bus) Subscribe(actorID string, fn func([]byte)) (func(), error) {
	w := b.n.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := b.n.check(); err != nil {
		return nil, err
	}
	w.nextSub++
	id := w.nextSub
	if w.subs[actorID] == nil {
		w.subs[actorID] = map[int]func([]byte){}
	}
	w.subs[actorID][id] = fn
	return func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		delete(w.subs[actorID], id)
		if len(w.subs[actorID]) == 0 {
			delete(w.subs, actorID)
		}
	}, nil
}

// State returns the last saved state of an actor (nil when none), so that
// tests see what is durable.
func (w *World) State(actorID string) []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	if a, ok := w.actors[actorID]; ok && a.hasState {
		return slices.Clone(a.state)
	}
	return nil
}
