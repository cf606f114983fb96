package sqlite

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/sandbox-agent-go/sandbox-agent/multiplayer/backend"
)

// bus is the in-process backend.Bus (see the package documentation for
// its delivery policy).
type bus struct {
	log   *slog.Logger
	queue int

	mu      sync.RWMutex
	closed  bool
	servers map[string]*server
	topics  map[string]map[*subscriber]struct{}
}

var _ backend.Bus = (*bus)(nil)

type server struct{ h backend.Handler }

func newBus(log *slog.Logger, queue int) *bus {
	return &bus{log: log, queue: queue, servers: map[string]*server{}, topics: map[string]map[*subscriber]struct{}{}}
}

// Serve registers h for actorID; one handler per actor at a time.
func (b *bus) Serve(actorID string, h backend.Handler) (func(), error) {
	if h == nil {
		return nil, fmt.Errorf("sqlite backend: serve %s: nil handler", actorID)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, fmt.Errorf("sqlite backend: serve %s: %w", actorID, backend.ErrClosed)
	}
	if _, ok := b.servers[actorID]; ok {
		return nil, fmt.Errorf("sqlite backend: serve %s: already served", actorID)
	}
	s := &server{h: h}
	b.servers[actorID] = s
	return func() {
		b.mu.Lock()
		if b.servers[actorID] == s {
			delete(b.servers, actorID)
		}
		b.mu.Unlock()
	}, nil
}

// Request calls the handler in the caller's goroutine, with the caller's
// ctx; when ctx ends first its error is the answer.
func (b *bus) Request(ctx context.Context, actorID string, req []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sqlite backend: request %s: %w", actorID, err)
	}
	b.mu.RLock()
	closed, s := b.closed, b.servers[actorID]
	b.mu.RUnlock()
	switch {
	case closed:
		return nil, fmt.Errorf("sqlite backend: request %s: %w", actorID, backend.ErrClosed)
	case s == nil:
		return nil, fmt.Errorf("sqlite backend: request %s: %w", actorID, backend.ErrNoOwner)
	}
	// The handler may keep req; the caller may reuse its buffer.
	resp := s.h(ctx, bytes.Clone(req))
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sqlite backend: request %s: %w", actorID, err)
	}
	return resp, nil
}

// Publish queues msg for every current subscriber of actorID without
// waiting for any of them.
func (b *bus) Publish(ctx context.Context, actorID string, msg []byte) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sqlite backend: publish %s: %w", actorID, err)
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return fmt.Errorf("sqlite backend: publish %s: %w", actorID, backend.ErrClosed)
	}
	subs := b.topics[actorID]
	if len(subs) == 0 {
		return nil
	}
	msg = bytes.Clone(msg)
	if msg == nil {
		msg = []byte{}
	}
	for s := range subs {
		if s.push(msg) {
			// Once per overflow, not per message.
			b.log.Warn("multiplayer bus: a slow subscriber misses messages", "actor", actorID, "queue", b.queue)
		}
	}
	return nil
}

// Subscribe adds fn for actorID. After cancel returns fn is not called
// again (a call in progress may still be running, unless cancel is called
// from fn itself).
func (b *bus) Subscribe(actorID string, fn func(msg []byte)) (func(), error) {
	if fn == nil {
		return nil, fmt.Errorf("sqlite backend: subscribe %s: nil function", actorID)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, fmt.Errorf("sqlite backend: subscribe %s: %w", actorID, backend.ErrClosed)
	}
	s := &subscriber{fn: fn, limit: b.queue}
	subs := b.topics[actorID]
	if subs == nil {
		subs = map[*subscriber]struct{}{}
		b.topics[actorID] = subs
	}
	subs[s] = struct{}{}
	return func() {
		b.mu.Lock()
		if subs := b.topics[actorID]; subs != nil {
			delete(subs, s)
			if len(subs) == 0 {
				delete(b.topics, actorID)
			}
		}
		b.mu.Unlock()
		s.cancel()
	}, nil
}

// close stops serving and cancels every subscription.
func (b *bus) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	clear(b.servers)
	for _, subs := range b.topics {
		for s := range subs {
			s.cancel()
		}
	}
	clear(b.topics)
}

// subscriber is one Subscribe: a bounded queue and, while it is not empty,
// one goroutine that calls fn for each message in order. Idle subscribers
// cost no goroutine.
type subscriber struct {
	fn    func([]byte)
	limit int

	mu        sync.Mutex
	queue     [][]byte
	running   bool
	cancelled bool
	// overflow: messages were dropped since the last one queued.
	overflow bool
}

// push queues msg, or drops it when the queue is full; it reports whether
// this drop starts an overflow.
func (s *subscriber) push(msg []byte) (startsOverflow bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cancelled {
		return false
	}
	if len(s.queue) >= s.limit {
		startsOverflow = !s.overflow
		s.overflow = true
		return startsOverflow
	}
	s.overflow = false
	s.queue = append(s.queue, msg)
	if !s.running {
		s.running = true
		go s.drain()
	}
	return false
}

func (s *subscriber) drain() {
	for {
		s.mu.Lock()
		if s.cancelled || len(s.queue) == 0 {
			s.running = false
			s.queue = nil
			s.mu.Unlock()
			return
		}
		msg := s.queue[0]
		s.queue[0] = nil
		s.queue = s.queue[1:]
		s.mu.Unlock()
		s.fn(msg)
	}
}

func (s *subscriber) cancel() {
	s.mu.Lock()
	s.cancelled = true
	s.queue = nil
	s.mu.Unlock()
}
