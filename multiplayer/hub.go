package multiplayer

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
)

// A hub is this node's gateway side of one actor: the client connections
// it holds for that actor, and one bus subscription that feeds them
// whatever the actor's owner (on any node) publishes.
type hub struct {
	rt      *Runtime
	actorID string
	cancel  func()

	mu    sync.Mutex
	conns map[string]clientConn
}

// clientConn is one client connection held by a gateway (a WebSocket, or
// a test's in-process client).
type clientConn interface {
	connID() string
	connParams() json.RawMessage
	// deliver sends an event if the client subscribed to it; it must not
	// block (a full queue disconnects the client).
	deliver(m *busMsg, cache *frameCache)
	// closeWith closes the connection with a reason the client turns into
	// an ActorError (and reconnects).
	closeWith(e *Error)
	// attached: a connection the actor sees (OnConnect, keeps it awake);
	// an events stream is not.
	attached() bool
	// connGen is the generation of the instance it connected to.
	connGen() uint64
}

// frameCache holds one delivery's encoded frames, so a broadcast to a
// thousand clients encodes once per encoding.
type frameCache struct {
	frames map[uint32]cachedFrame
}

type cachedFrame struct {
	data []byte
	text bool
	err  error
}

func (c *frameCache) get(key uint32, enc func() ([]byte, bool, error)) ([]byte, bool, error) {
	if f, ok := c.frames[key]; ok {
		return f.data, f.text, f.err
	}
	d, t, err := enc()
	if c.frames == nil {
		c.frames = map[uint32]cachedFrame{}
	}
	c.frames[key] = cachedFrame{d, t, err}
	return d, t, err
}

// join adds c to the actor's hub (creating it and its subscription).
func (rt *Runtime) join(actorID string, c clientConn) (*hub, error) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.closed {
		return nil, errStopping
	}
	h := rt.hubs[actorID]
	if h == nil {
		h = &hub{rt: rt, actorID: actorID, conns: map[string]clientConn{}}
		cancel, err := rt.bus.Subscribe(actorID, h.receive)
		if err != nil {
			return nil, err
		}
		h.cancel = cancel
		rt.hubs[actorID] = h
	}
	h.mu.Lock()
	h.conns[c.connID()] = c
	h.mu.Unlock()
	return h, nil
}

// leave removes c; the last one out drops the subscription.
func (h *hub) leave(c clientConn) {
	rt := h.rt
	rt.mu.Lock()
	defer rt.mu.Unlock()
	h.mu.Lock()
	delete(h.conns, c.connID())
	empty := len(h.conns) == 0
	h.mu.Unlock()
	if empty && rt.hubs[h.actorID] == h {
		delete(rt.hubs, h.actorID)
		h.cancel()
	}
}

func (h *hub) snapshot() []clientConn {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]clientConn, 0, len(h.conns))
	for _, c := range h.conns {
		out = append(out, c)
	}
	return out
}

// receive is the bus callback: fan an owner's message out to the clients.
func (h *hub) receive(msg []byte) {
	var m busMsg
	if err := json.Unmarshal(msg, &m); err != nil {
		h.rt.log.Warn("bad bus message", "actor_id", h.actorID, "err", err)
		return
	}
	switch m.T {
	case "ev":
		var cache frameCache
		for _, c := range h.snapshot() {
			c.deliver(&m, &cache)
		}
	case "kick":
		h.mu.Lock()
		c := h.conns[m.Conn]
		h.mu.Unlock()
		if c != nil {
			group, code, _ := strings.Cut(m.Reason, ".")
			c.closeWith(&Error{Group: group, Code: code, Message: m.Reason, kick: true})
		}
	case "close":
		e := errStopping
		if m.Err != nil {
			e = m.Err.toError()
		}
		h.closeAll(e)
	}
}

func (h *hub) closeAll(e *Error) {
	for _, c := range h.snapshot() {
		c.closeWith(e)
	}
}

// helloLoop tells each actor's owner which connections this node holds:
// after a failover the new owner (activated by this very request) learns
// them, and it drops the ones this node no longer lists.
func (rt *Runtime) helloLoop() {
	defer rt.wg.Done()
	node := rt.b.NodeID()
	for {
		t := rt.clock.NewTimer(rt.cfg.HelloInterval, "hello")
		select {
		case <-rt.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		rt.mu.Lock()
		hubs := make([]*hub, 0, len(rt.hubs))
		for _, h := range rt.hubs {
			hubs = append(hubs, h)
		}
		rt.mu.Unlock()
		for _, h := range hubs {
			conns := h.snapshot()
			req := &hostReq{Op: opHello, Node: node}
			for _, c := range conns {
				if !c.attached() {
					continue
				}
				req.Conns = append(req.Conns, helloConn{ID: c.connID(), Params: c.connParams(), Gen: c.connGen()})
			}
			if len(req.Conns) == 0 {
				continue
			}
			ctx, cancel := context.WithTimeout(rt.ctx, rt.cfg.HelloInterval)
			if _, err := rt.request(ctx, h.actorID, req); err != nil && rt.ctx.Err() == nil {
				rt.log.Debug("hello to an actor failed", "actor_id", h.actorID, "err", err)
			}
			cancel()
		}
	}
}
