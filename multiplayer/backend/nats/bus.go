package natsbackend

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sandbox-agent-go/sandbox-agent/multiplayer/backend"
)

// bus carries requests on core subject p.rpc.<actor> (only the owner
// subscribes, so no queue group) and live messages on p.bc.<actor>.
type bus struct {
	b *Backend

	mu       sync.Mutex
	closed   bool
	serves   map[*serving]struct{}
	subs     map[*nats.Subscription]struct{}
	handlers sync.WaitGroup
}

type serving struct {
	sub    *nats.Subscription
	cancel context.CancelFunc
}

var _ backend.Bus = (*bus)(nil)

func (u *bus) rpcSubj(id string) string { return u.b.opts.Prefix + ".rpc." + escapeToken(id) }
func (u *bus) bcSubj(id string) string  { return u.b.opts.Prefix + ".bc." + escapeToken(id) }

// flush makes a new subscription known to our server before Serve or
// Subscribe returns (other servers of a cluster learn it moments later).
func (u *bus) flush() error {
	if err := u.b.nc.FlushTimeout(5 * time.Second); err != nil {
		return fmt.Errorf("natsbackend: bus: %w", err)
	}
	return nil
}

// Serve answers requests for actorID, each in its own goroutine; the
// handler's ctx ends at the requester's deadline (sent in a header), at
// stop, or at Close.
func (u *bus) Serve(actorID string, h backend.Handler) (func(), error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return nil, errClosed
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &serving{cancel: cancel}
	sub, err := u.b.nc.Subscribe(u.rpcSubj(actorID), func(m *nats.Msg) {
		if m.Reply == "" {
			return
		}
		u.mu.Lock()
		if u.closed || ctx.Err() != nil {
			u.mu.Unlock()
			return
		}
		u.handlers.Add(1)
		u.mu.Unlock()
		go func() {
			defer u.handlers.Done()
			rctx := ctx
			if ms, err := strconv.ParseInt(m.Header.Get(hdrTimeout), 10, 64); err == nil && ms > 0 {
				var c context.CancelFunc
				rctx, c = context.WithTimeout(ctx, time.Duration(ms)*time.Millisecond)
				defer c()
			}
			resp := h(rctx, m.Data)
			if err := m.Respond(resp); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
				u.b.log.Debug("natsbackend: respond", "actor", actorID, "err", err)
			}
		}()
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("natsbackend: serve %s: %w", actorID, err)
	}
	s.sub = sub
	u.serves[s] = struct{}{}
	if err := u.flush(); err != nil {
		delete(u.serves, s)
		_ = sub.Unsubscribe()
		cancel()
		return nil, err
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			u.mu.Lock()
			delete(u.serves, s)
			u.mu.Unlock()
			_ = sub.Unsubscribe()
			cancel()
		})
	}, nil
}

// Request sends req to whoever serves actorID.
func (u *bus) Request(ctx context.Context, actorID string, req []byte) ([]byte, error) {
	if u.isClosed() {
		return nil, errClosed
	}
	m := nats.NewMsg(u.rpcSubj(actorID))
	m.Data = req
	if d, ok := ctx.Deadline(); ok {
		m.Header.Set(hdrTimeout, strconv.FormatInt(max(time.Until(d).Milliseconds(), 1), 10))
	}
	resp, err := u.b.nc.RequestMsgWithContext(ctx, m)
	if errors.Is(err, nats.ErrNoResponders) {
		return nil, fmt.Errorf("natsbackend: request %s: %w", actorID, backend.ErrNoOwner)
	}
	if err != nil {
		return nil, fmt.Errorf("natsbackend: request %s: %w", actorID, err)
	}
	return resp.Data, nil
}

// Publish sends msg on the actor's broadcast subject. One connection keeps
// one publisher's order.
func (u *bus) Publish(ctx context.Context, actorID string, msg []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if u.isClosed() {
		return errClosed
	}
	if err := u.b.nc.Publish(u.bcSubj(actorID), msg); err != nil {
		return fmt.Errorf("natsbackend: publish %s: %w", actorID, err)
	}
	return nil
}

// Subscribe calls fn, on the subscription's own delivery goroutine, for
// each message; none after cancel returns except one already running.
func (u *bus) Subscribe(actorID string, fn func(msg []byte)) (func(), error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return nil, errClosed
	}
	var off atomic.Bool
	sub, err := u.b.nc.Subscribe(u.bcSubj(actorID), func(m *nats.Msg) {
		if !off.Load() {
			fn(m.Data)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("natsbackend: subscribe %s: %w", actorID, err)
	}
	if u.subs == nil {
		u.subs = map[*nats.Subscription]struct{}{}
	}
	u.subs[sub] = struct{}{}
	if err := u.flush(); err != nil {
		delete(u.subs, sub)
		_ = sub.Unsubscribe()
		return nil, err
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			off.Store(true)
			u.mu.Lock()
			delete(u.subs, sub)
			u.mu.Unlock()
			_ = sub.Unsubscribe()
		})
	}, nil
}

func (u *bus) isClosed() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.closed
}

// close stops every Serve and Subscribe and waits for running handlers
// (their ctx is cancelled).
func (u *bus) close() {
	u.mu.Lock()
	u.closed = true
	serves, subs := u.serves, u.subs
	u.serves, u.subs = map[*serving]struct{}{}, nil
	u.mu.Unlock()
	for s := range serves {
		_ = s.sub.Unsubscribe()
		s.cancel()
	}
	for s := range subs {
		_ = s.Unsubscribe()
	}
	u.handlers.Wait()
}
