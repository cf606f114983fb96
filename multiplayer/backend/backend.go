// Package backend is the contract between the multiplayer runtime and where
// it runs: a registry of actors, durable storage that only the actor's
// current owner may write (fenced by a generation), and a bus that carries
// requests to that owner and live messages from it.
//
// Two drivers implement it: backend/sqlite (one process, the default) and
// backend/nats (JetStream, many nodes). backend/memory is the reference
// driver the runtime's own tests use. backend/backendtest is the one
// conformance suite every driver passes.
//
// The invariant every driver keeps: at most one Owner is live per actor
// across all nodes, and a write through an Owner that is no longer the live
// one fails with ErrFenced instead of landing.
package backend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Errors a caller branches on. Drivers wrap them with %w.
var (
	// ErrNotFound: no such actor (or a destroyed one), or no such item.
	ErrNotFound = errors.New("backend: not found")
	// ErrDuplicateKey: Create met an existing actor with that name and key.
	ErrDuplicateKey = errors.New("backend: actor key exists")
	// ErrFenced: the Owner is no longer the actor's live owner; the write
	// did not happen. The runtime stops the actor instance.
	ErrFenced = errors.New("backend: ownership lost")
	// ErrNoOwner: Request found no node serving the actor.
	ErrNoOwner = errors.New("backend: no node serves the actor")
	// ErrClosed: the backend was closed.
	ErrClosed = errors.New("backend: closed")
)

// OwnedError is Claim's answer when another node holds the actor. The
// caller retries (that node may be starting or releasing it) or routes to
// it through the Bus.
type OwnedError struct {
	ActorID string
	Node    string
}

func (e *OwnedError) Error() string {
	return fmt.Sprintf("backend: actor %s is owned by node %s", e.ActorID, e.Node)
}

// Actor is an actor's registry record. It never changes after creation.
type Actor struct {
	ID   string
	Name string
	Key  []string
	// Input is the JSON given at creation (CreateState's input); nil when none.
	Input     json.RawMessage
	CreatedAt time.Time
}

// Event is one durable, sequence-numbered event of an actor (Publish).
type Event struct {
	// Seq is 1, 2, 3... per actor, without gaps.
	Seq  uint64
	Name string
	// Args is a JSON array.
	Args json.RawMessage
	// Generation of the owner that wrote it.
	Generation uint64
	Time       time.Time
}

// Schedule is a durable timer of an actor: at At, run Action with Args.
type Schedule struct {
	ID      string
	ActorID string
	At      time.Time
	Action  string
	// Args is a JSON array.
	Args json.RawMessage
}

// Item is one entry of an owner's key-value namespace.
type Item struct {
	Key   string
	Value []byte
}

// Backend is one node's view of a deployment. Every method is safe for
// concurrent use and bounded by its context.
type Backend interface {
	// NodeID names this node (stable for the Backend's life).
	NodeID() string

	// GetOrCreate returns the actor with this name and key, creating it
	// with input when there is none (created reports which). Idempotent
	// across nodes: concurrent calls agree on one actor.
	GetOrCreate(ctx context.Context, name string, key []string, input json.RawMessage) (a Actor, created bool, err error)
	// Create creates the actor or fails with ErrDuplicateKey.
	Create(ctx context.Context, name string, key []string, input json.RawMessage) (Actor, error)
	// Get finds an existing actor by name and key (ErrNotFound).
	Get(ctx context.Context, name string, key []string) (Actor, error)
	// Lookup finds an existing actor by id (ErrNotFound).
	Lookup(ctx context.Context, actorID string) (Actor, error)

	// Claim makes this node the actor's live owner, with a generation
	// higher than any before it. *OwnedError when another node's Owner is
	// live; ErrNotFound for an unknown or destroyed actor.
	Claim(ctx context.Context, actorID string) (Owner, error)

	// Events reads durable events with Seq > after, in order, at most limit
	// (limit <= 0: a driver default of at least 100). Any node may read.
	Events(ctx context.Context, actorID string, after uint64, limit int) ([]Event, error)
	// DueSchedules lists schedules of any actor with At <= now, earliest
	// first, at most limit. Reading does not take them (see
	// Owner.TakeSchedule); the runtime wakes their actors.
	DueSchedules(ctx context.Context, now time.Time, limit int) ([]Schedule, error)

	// Bus carries traffic between nodes (in one process, between the
	// gateway and the actors).
	Bus() Bus

	// Close releases every Owner of this node and stops serving.
	Close() error
}

// Owner is this node's exclusive right to run one actor. All writes go
// through it and fail with ErrFenced once another Owner has been claimed.
// Methods are safe for concurrent use (session stores write from their own
// goroutines).
type Owner interface {
	Actor() Actor
	// Generation is 1 for the first claim ever, and grows by one at each.
	Generation() uint64

	// LoadState returns the last saved state (ok false: never saved).
	LoadState(ctx context.Context) (state []byte, ok bool, err error)
	// SaveState replaces the state.
	SaveState(ctx context.Context, state []byte) error

	// Append writes a durable event with the next Seq and returns it.
	Append(ctx context.Context, name string, args json.RawMessage) (Event, error)

	// Put, Get, Delete and List are the actor's key-value storage, in
	// namespaces (e.g. "sessions"). Get answers ErrNotFound. List returns
	// keys > after in byte order, at most limit (limit <= 0: all).
	Put(ctx context.Context, ns, key string, value []byte) error
	Get(ctx context.Context, ns, key string) ([]byte, error)
	Delete(ctx context.Context, ns, key string) error
	List(ctx context.Context, ns, after string, limit int) ([]Item, error)

	// AddSchedule stores s (s.ActorID is this actor; an existing s.ID is
	// replaced). CancelSchedule removes one (false: there was none).
	// Schedules lists this actor's pending schedules, earliest first.
	AddSchedule(ctx context.Context, s Schedule) error
	CancelSchedule(ctx context.Context, id string) (bool, error)
	Schedules(ctx context.Context) ([]Schedule, error)
	// TakeSchedule removes a due schedule before it runs; false when it was
	// already taken or cancelled, so a schedule fires at most once.
	TakeSchedule(ctx context.Context, id string) (bool, error)

	// Lost is closed when this Owner stops being the live one (its lease
	// expired or another node claimed it). Writes fail from then on.
	Lost() <-chan struct{}
	// Release gives up ownership (the actor sleeps); the next Claim, on any
	// node, succeeds at once. Idempotent.
	Release(ctx context.Context) error
	// Destroy deletes the actor and everything it stored; it is not found
	// afterwards and its name and key are free again.
	Destroy(ctx context.Context) error
}

// Bus carries requests to the node that serves an actor and live messages
// from it to every node. Messages are opaque bytes to the bus.
type Bus interface {
	// Serve answers requests for actorID on this node until stop is
	// called. Only the actor's Owner serves it.
	Serve(actorID string, h Handler) (stop func(), err error)
	// Request sends req to the node serving actorID and returns its answer;
	// ErrNoOwner when no node serves it.
	Request(ctx context.Context, actorID string, req []byte) ([]byte, error)
	// Publish sends msg to every Subscribe of actorID on every node, in
	// the order Publish was called by one caller; not durable.
	Publish(ctx context.Context, actorID string, msg []byte) error
	// Subscribe calls fn for each message published for actorID until
	// cancel. fn must not block for long: it runs on the bus's delivery
	// path.
	Subscribe(actorID string, fn func(msg []byte)) (cancel func(), err error)
}

// Handler answers one Bus request. It is called concurrently; a request
// whose answer is not needed any more has its ctx cancelled.
type Handler func(ctx context.Context, req []byte) []byte
