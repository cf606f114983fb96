package sandboxagent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/sandbox-agent-go/sandbox-agent/acp"
	"github.com/sandbox-agent-go/sandbox-agent/acp/acphttp"
)

// liveConn is the one ACP connection of an agent: every session of that
// agent is multiplexed over it.
type liveConn struct {
	c      *Client
	agent  string
	connID string
	conn   *acphttp.Conn

	ready   chan struct{}
	initErr error

	mu      sync.Mutex
	byLocal map[string]string // local id → agent session id
	byAgent map[string]string // agent session id → local id
	outReq  map[string]outReq // our request ids → attribution
	inReq   map[string]string // agent request ids → local id
	replay  map[string]string // local id → queued replay text
	exited  *acp.AgentExitedParams
	exitAt  time.Time
}

type outReq struct {
	local  string
	method string
}

type localIDKey struct{}

func withLocal(ctx context.Context, local string) context.Context {
	return context.WithValue(ctx, localIDKey{}, local)
}

// getLive returns the live connection of agent, creating and initialising
// it after the health gate.
func (c *Client) getLive(ctx context.Context, agent string) (*liveConn, error) {
	for {
		if err := c.gate.wait(ctx); err != nil {
			return nil, err
		}
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, ErrClosed
		}
		l := c.live[agent]
		if l == nil || l.conn.Err() != nil {
			var err error
			l, err = c.newLive(agent)
			if err != nil {
				c.mu.Unlock()
				return nil, err
			}
			c.live[agent] = l
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				l.init(c.ctx)
			}()
		}
		c.mu.Unlock()
		select {
		case <-l.ready:
		case <-ctx.Done():
			// initialize goes on under the client's context, for the
			// next caller.
			return nil, ctxWaitErr(fmt.Sprintf("the ACP connection of agent %q to initialize", agent), ctx.Err())
		}
		if l.initErr == nil {
			return l, nil
		}
		c.dropLive(l)
		if errors.Is(l.initErr, ErrConnectionLost) && ctx.Err() == nil && c.ctx.Err() == nil {
			// The server went away between the gate and initialize:
			// re-arm the gate and go round.
			c.gate.markUnhealthy(l.initErr)
			continue
		}
		return nil, l.initErr
	}
}

func (c *Client) dropLive(l *liveConn) {
	c.mu.Lock()
	if c.live[l.agent] == l {
		delete(c.live, l.agent)
	}
	c.mu.Unlock()
}

func (c *Client) newLive(agent string) (*liveConn, error) {
	l := &liveConn{
		c:       c,
		agent:   agent,
		connID:  uuid.NewString(),
		ready:   make(chan struct{}),
		byLocal: map[string]string{},
		byAgent: map[string]string{},
		outReq:  map[string]outReq{},
		inReq:   map[string]string{},
		replay:  map[string]string{},
	}
	conn, err := acphttp.New(acphttp.Options{
		BaseURL:        c.url(),
		ServerID:       "sdk-" + agent + "-" + uuid.NewString(),
		Agent:          agent,
		HTTPClient:     c.hc,
		Header:         c.authHeader(),
		Observe:        l.observe,
		OnRequest:      l.onRequest,
		OnNotification: l.onNotification,
		IdleTimeout:    c.streamIdle,
	})
	if err != nil {
		return nil, err
	}
	l.conn = conn
	return l, nil
}

func (l *liveConn) init(ctx context.Context) {
	defer close(l.ready)
	res, err := l.conn.Call(ctx, "initialize", map[string]any{
		"protocolVersion": 1,
		"clientInfo":      map[string]string{"name": "sandbox-agent-sdk", "version": "v1"},
	})
	if err != nil {
		l.initErr = fmt.Errorf("sandboxagent: initialize agent %q: %w", l.agent, err)
		_ = l.conn.Close(context.Background())
		return
	}
	var r struct {
		AuthMethods []struct {
			ID string `json:"id"`
		} `json:"authMethods"`
	}
	_ = json.Unmarshal(res, &r)
	for _, m := range r.AuthMethods {
		if m.ID == "codex-api-key" || m.ID == "openai-api-key" || m.ID == "anthropic-api-key" {
			_, _ = l.conn.Call(ctx, "authenticate", map[string]string{"methodId": m.ID})
			break
		}
	}
	l.c.wg.Add(1)
	go func() {
		defer l.c.wg.Done()
		l.watch()
	}()
}

// watch reacts to the end of the connection: the client forgets it, the
// health gate is re-armed, pending permissions are cancelled and the
// sessions bound to it are restored in the background.
func (l *liveConn) watch() {
	select {
	case <-l.conn.Done():
	case <-l.c.ctx.Done():
		return
	}
	err := l.conn.Err()
	l.c.dropLive(l)
	if errors.Is(err, acphttp.ErrClosed) || l.c.ctx.Err() != nil {
		return
	}
	l.c.log.Warn("sandbox-agent ACP connection lost; reconnecting", "agent", l.agent, "err", err)
	l.c.cancelPermissions(func(p *pendingPermission) bool { return p.live == l })
	_ = l.conn.Close(context.Background()) // release goroutines; DELETE best effort
	l.c.gate.markUnhealthy(err)
	l.mu.Lock()
	locals := make([]string, 0, len(l.byLocal))
	for local := range l.byLocal {
		locals = append(locals, local)
	}
	l.mu.Unlock()
	for _, local := range locals {
		s := l.c.cachedSession(local)
		if s == nil {
			continue
		}
		if _, _, err := s.ensureBound(l.c.ctx); err != nil && l.c.ctx.Err() == nil {
			l.c.log.Warn("sandbox-agent: restoring session failed", "session", local, "err", err)
		}
	}
}

func (l *liveConn) bind(local, agentSID string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if old, ok := l.byLocal[local]; ok {
		delete(l.byAgent, old)
	}
	l.byLocal[local] = agentSID
	l.byAgent[agentSID] = local
}

func (l *liveConn) bound(local, agentSID string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	got, ok := l.byLocal[local]
	return ok && got != "" && got == agentSID
}

func (l *liveConn) takeReplay(local string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.replay[local]
	delete(l.replay, local)
	return t
}

func (l *liveConn) setReplay(local, text string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if text == "" {
		delete(l.replay, local)
	} else {
		l.replay[local] = text
	}
}

type envelopeView struct {
	Params struct {
		SessionID string `json:"sessionId"`
	} `json:"params"`
	Result struct {
		SessionID string `json:"sessionId"`
	} `json:"result"`
}

// observe attributes an envelope to a local session, persists it and hands
// it to the session's listeners. Runs serialised, in arrival order.
func (l *liveConn) observe(ctx context.Context, m acphttp.Message) {
	var v envelopeView
	_ = json.Unmarshal(m.Raw, &v)
	key := acp.IDKey(m.Envelope.ID)
	local := ""
	l.mu.Lock()
	switch {
	case m.Outbound && m.Envelope.Kind == acp.Response:
		local = l.inReq[key]
		delete(l.inReq, key)
	case m.Outbound:
		if m.Envelope.Method == "session/new" {
			local, _ = ctx.Value(localIDKey{}).(string)
		} else {
			local = l.byAgent[v.Params.SessionID]
		}
		if local != "" && m.Envelope.Kind == acp.Request {
			l.outReq[key] = outReq{local: local, method: m.Envelope.Method}
		}
	case m.Envelope.Kind == acp.Response:
		if r, ok := l.outReq[key]; ok {
			local = r.local
			delete(l.outReq, key)
			if r.method == "session/new" && v.Result.SessionID != "" {
				// early bind: notifications of the new session may follow
				if old, ok := l.byLocal[local]; ok {
					delete(l.byAgent, old)
				}
				l.byLocal[local] = v.Result.SessionID
				l.byAgent[v.Result.SessionID] = local
			}
		}
	default:
		local = l.byAgent[v.Params.SessionID]
		if local != "" && m.Envelope.Kind == acp.Request {
			l.inReq[key] = local
		}
	}
	l.mu.Unlock()
	if local == "" {
		return
	}
	sender := SessionEventSenderAgent
	if m.Outbound {
		sender = SessionEventSenderClient
	}
	pctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ev, err := l.c.store.InsertEvent(pctx, local, SessionEvent{
		ConnectionID: l.connID,
		Sender:       sender,
		Payload:      append(json.RawMessage(nil), m.Raw...),
	})
	if err != nil {
		l.c.log.Error("sandboxagent: failed to persist ACP envelope", "session", local, "err", err)
		return
	}
	s := l.c.cachedSession(local)
	if !m.Outbound && m.Envelope.Method == "session/update" {
		l.c.applySessionUpdate(pctx, local, m.Raw, s)
	}
	if s != nil {
		s.emit(ev)
	}
}

func (l *liveConn) onNotification(r acphttp.Request) {
	if r.Method == acp.MethodAgentExited {
		var p acp.AgentExitedParams
		_ = json.Unmarshal(r.Params, &p)
		l.mu.Lock()
		l.exited = &p
		l.exitAt = time.Now()
		l.mu.Unlock()
	}
}

func (l *liveConn) onRequest(ctx context.Context, r acphttp.Request) (any, error) {
	if r.Method == "session/request_permission" {
		return l.c.handlePermission(ctx, l, r)
	}
	return nil, &acphttp.RPCError{Code: -32601, Message: "Method not found"}
}

// newSession sends session/new for local and binds the answer.
func (l *liveConn) newSession(ctx context.Context, local string, init json.RawMessage) (string, json.RawMessage, error) {
	started := time.Now()
	res, err := l.conn.Call(withLocal(ctx, local), "session/new", init)
	if err != nil {
		l.mu.Lock()
		ex, at := l.exited, l.exitAt
		l.mu.Unlock()
		if ex != nil && !at.Before(started) {
			if ex.Code != nil {
				return "", nil, fmt.Errorf("%w (code %d): %w", ErrAgentExited, *ex.Code, err)
			}
			return "", nil, fmt.Errorf("%w: %w", ErrAgentExited, err)
		}
		return "", nil, fmt.Errorf("sandboxagent: session/new on agent %q: %w", l.agent, err)
	}
	var r struct {
		SessionID string `json:"sessionId"`
	}
	if json.Unmarshal(res, &r) != nil || r.SessionID == "" {
		return "", nil, fmt.Errorf("%w (agent %q answered %s)", ErrNoAgentSessionID, l.agent, truncate(string(res), 200))
	}
	l.bind(local, r.SessionID)
	return r.SessionID, res, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
