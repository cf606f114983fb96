package sandboxagent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// SessionInit is the session/new request of a session (upstream's
// sessionInit without _meta).
type SessionInit struct {
	Cwd        string            `json:"cwd"`
	McpServers []json.RawMessage `json:"mcpServers"`
}

// CreateSessionRequest creates a session.
type CreateSessionRequest struct {
	// ID is the local session id; default a random UUID.
	ID string
	// Agent, e.g. "claude" or "mock". Required.
	Agent string
	// Cwd of the session; falls back to the provider's DefaultCwd, then
	// the client process's working directory.
	Cwd string
	// SessionInit overrides the whole session/new request (its Cwd still
	// falls back to Cwd).
	SessionInit *SessionInit
	// Applied in this order after creation; on failure the session is
	// destroyed and the error returned.
	Mode, Model, ThoughtLevel string
}

// Session is a handle on one persisted session. One handle exists per id
// per Client; methods are safe for concurrent use.
//
// Events of the session (every ACP envelope, persisted in order) reach the
// program three ways: OnEvent, the primary API, calls a listener on the
// dispatch goroutine as each is stored; Events ranges over the same events
// from its own bounded queue; GetEvents pages through the store.
type Session struct {
	c  *Client
	id string

	// opMu serialises binding and restoration. It is held across the
	// health gate, session/new and the store, so it is a ctxMutex: a call
	// queued behind a stuck restore still ends with its own context.
	opMu ctxMutex

	mu        sync.Mutex
	rec       SessionRecord
	nextSub   int
	listeners map[int]func(SessionEvent)
	permFns   map[int]func(PermissionRequest)
}

// ID returns the local session id.
func (s *Session) ID() string { return s.id }

// Record returns a copy of the session's record as last seen.
func (s *Session) Record() SessionRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rec.Clone()
}

// Agent returns the session's agent.
func (s *Session) Agent() string { return s.Record().Agent }

// AgentSessionID returns the agent's id of the session.
func (s *Session) AgentSessionID() string { return s.Record().AgentSessionID }

func (s *Session) setRec(r SessionRecord) {
	s.mu.Lock()
	s.rec = r.Clone()
	s.mu.Unlock()
}

func (c *Client) cachedSession(id string) *Session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sessions[id]
}

func (c *Client) handle(rec SessionRecord) *Session {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sessions[rec.ID]
	if s == nil {
		s = &Session{c: c, id: rec.ID, listeners: map[int]func(SessionEvent){}, permFns: map[int]func(PermissionRequest){}}
		c.sessions[rec.ID] = s
	}
	s.setRec(rec)
	return s
}

func (c *Client) defaultCwd(ctx context.Context) string {
	if p, ok := c.provider.(DefaultCwdProvider); ok {
		if d, err := p.DefaultCwd(ctx, c.providerID); err == nil && d != "" {
			return d
		}
	}
	if wd, err := os.Getwd(); err == nil {
		return wd
	}
	return "/"
}

// CreateSession creates an agent session and persists its record. It
// always creates: an existing record with the same id is replaced.
func (c *Client) CreateSession(ctx context.Context, req CreateSessionRequest) (*Session, error) {
	agent := strings.TrimSpace(req.Agent)
	if agent == "" {
		return nil, errors.New("sandboxagent: CreateSession requires a non-empty agent")
	}
	id := strings.TrimSpace(req.ID)
	if id == "" {
		id = uuid.NewString()
	}
	init := SessionInit{}
	if req.SessionInit != nil {
		init = *req.SessionInit
	}
	if init.Cwd == "" {
		init.Cwd = req.Cwd
	}
	if init.Cwd == "" {
		init.Cwd = c.defaultCwd(ctx)
	}
	if init.McpServers == nil {
		init.McpServers = []json.RawMessage{}
	}
	initJSON, err := json.Marshal(init)
	if err != nil {
		return nil, err
	}
	live, err := c.getLive(ctx, agent)
	if err != nil {
		return nil, err
	}
	// A handle must exist before session/new so early events reach it.
	s := c.handle(SessionRecord{ID: id, Agent: agent, SessionInit: initJSON})
	if err := s.opMu.lock(ctx, s.lockWhat()); err != nil {
		return nil, err
	}
	asid, res, err := live.newSession(ctx, id, initJSON)
	if err != nil {
		s.opMu.unlock()
		return nil, err
	}
	rec := SessionRecord{
		ID: id, Agent: agent, AgentSessionID: asid, LastConnectionID: live.connID,
		CreatedAt: time.Now().UnixMilli(), SandboxID: c.sandboxID, SessionInit: initJSON,
	}
	applyNewSessionResult(&rec, res)
	err = c.store.UpdateSession(ctx, rec)
	s.setRec(rec)
	s.opMu.unlock()
	if err != nil {
		return nil, fmt.Errorf("sandboxagent: persist session: %w", err)
	}
	if err := s.applySettings(ctx, req); err != nil {
		_ = c.DestroySession(context.WithoutCancel(ctx), id)
		return nil, err
	}
	return s, nil
}

// applySettings applies req's Mode, Model and ThoughtLevel in that order,
// skipping empty ones, and stops at the first error.
func (s *Session) applySettings(ctx context.Context, req CreateSessionRequest) error {
	for _, step := range []struct {
		v  string
		fn func(context.Context, string) error
	}{{req.Mode, s.SetMode}, {req.Model, s.SetModel}, {req.ThoughtLevel, s.SetThoughtLevel}} {
		if step.v == "" {
			continue
		}
		if err := step.fn(ctx, step.v); err != nil {
			return err
		}
	}
	return nil
}

func applyNewSessionResult(rec *SessionRecord, res json.RawMessage) {
	var r struct {
		ConfigOptions json.RawMessage `json:"configOptions"`
		Modes         json.RawMessage `json:"modes"`
	}
	_ = json.Unmarshal(res, &r)
	rec.ConfigOptions = nil
	if len(r.ConfigOptions) > 0 && string(r.ConfigOptions) != "null" {
		rec.ConfigOptions = r.ConfigOptions
	}
	rec.Modes = json.RawMessage("null")
	if len(r.Modes) > 0 {
		rec.Modes = r.Modes
	}
}

// ResumeSession returns the handle of a stored session, restoring it when
// its agent session is not bound on this client's live connection: a new
// agent session is created and the stored history is queued to be replayed
// before the next prompt.
func (c *Client) ResumeSession(ctx context.Context, id string) (*Session, error) {
	rec, ok, err := c.store.GetSession(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("sandboxagent: read session %q: %w", id, err)
	}
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrSessionNotFound, id)
	}
	s := c.cachedSession(id)
	if s == nil {
		s = c.handle(rec)
	}
	if _, _, err := s.ensureBound(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// ResumeOrCreateSession resumes req.ID if it is stored (then applies Mode,
// Model, ThoughtLevel) or creates it.
func (c *Client) ResumeOrCreateSession(ctx context.Context, req CreateSessionRequest) (*Session, error) {
	if id := strings.TrimSpace(req.ID); id != "" {
		_, ok, err := c.store.GetSession(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("sandboxagent: read session %q: %w", id, err)
		}
		if ok {
			s, err := c.ResumeSession(ctx, id)
			if err != nil {
				return nil, err
			}
			return s, s.applySettings(ctx, req)
		}
	}
	return c.CreateSession(ctx, req)
}

// DestroySession cancels the session's pending permission requests and its
// prompt in flight (only if it is bound on a live connection; a session of
// an earlier process is not restored just to be cancelled) and marks the
// record destroyed.
func (c *Client) DestroySession(ctx context.Context, id string) error {
	c.cancelPermissions(func(p *pendingPermission) bool { return p.req.SessionID == id })
	rec, ok, err := c.store.GetSession(ctx, id)
	if err != nil {
		return fmt.Errorf("sandboxagent: read session %q: %w", id, err)
	}
	if !ok {
		return fmt.Errorf("%w: %q", ErrSessionNotFound, id)
	}
	c.mu.Lock()
	l := c.live[rec.Agent]
	c.mu.Unlock()
	if l != nil && l.conn.Err() == nil && l.bound(id, rec.AgentSessionID) {
		_ = l.conn.Notify(ctx, "session/cancel", map[string]string{"sessionId": rec.AgentSessionID})
	}
	now := time.Now().UnixMilli()
	rec, err = c.modifyRecord(ctx, id, nil, func(r *SessionRecord) { r.DestroyedAt = &now })
	if err != nil {
		return err
	}
	if s := c.cachedSession(id); s != nil {
		s.setRec(rec)
	}
	return nil
}

// ListSessions pages through stored sessions.
func (c *Client) ListSessions(ctx context.Context, req ListPageRequest) (ListPage[SessionRecord], error) {
	return c.store.ListSessions(ctx, req)
}

// GetSession returns a stored session record.
func (c *Client) GetSession(ctx context.Context, id string) (SessionRecord, bool, error) {
	return c.store.GetSession(ctx, id)
}

// GetEvents pages through a session's stored events.
func (c *Client) GetEvents(ctx context.Context, req ListEventsRequest) (ListPage[SessionEvent], error) {
	return c.store.ListEvents(ctx, req)
}

// ensureBound returns the live connection and agent session id of s,
// restoring the session when needed. Never recursive: a restore that does
// not yield a session id is an error.
func (s *Session) ensureBound(ctx context.Context) (*liveConn, string, error) {
	if err := s.opMu.lock(ctx, s.lockWhat()); err != nil {
		return nil, "", err
	}
	defer s.opMu.unlock()
	c := s.c
	rec, ok, err := c.store.GetSession(ctx, s.id)
	if err != nil {
		return nil, "", fmt.Errorf("sandboxagent: read session %q: %w", s.id, err)
	}
	if !ok {
		return nil, "", fmt.Errorf("%w: %q", ErrSessionNotFound, s.id)
	}
	live, err := c.getLive(ctx, rec.Agent)
	if err != nil {
		return nil, "", err
	}
	if rec.LastConnectionID == live.connID && live.bound(rec.ID, rec.AgentSessionID) {
		s.setRec(rec)
		return live, rec.AgentSessionID, nil
	}
	replay, err := c.buildReplay(ctx, rec.ID)
	if err != nil {
		return nil, "", err
	}
	init := rec.SessionInit
	if len(init) == 0 {
		init, _ = json.Marshal(SessionInit{Cwd: c.defaultCwd(ctx), McpServers: []json.RawMessage{}})
	}
	asid, res, err := live.newSession(ctx, rec.ID, init)
	if err != nil {
		return nil, "", fmt.Errorf("sandboxagent: restore session %q: %w", rec.ID, err)
	}
	rec, err = c.modifyRecord(ctx, rec.ID, nil, func(r *SessionRecord) {
		r.AgentSessionID = asid
		r.LastConnectionID = live.connID
		r.DestroyedAt = nil
		applyNewSessionResult(r, res)
	})
	if err != nil {
		return nil, "", err
	}
	s.setRec(rec)
	live.setReplay(rec.ID, replay)
	return live, asid, nil
}

// lockWhat names opMu's wait in errors.
func (s *Session) lockWhat() string {
	return fmt.Sprintf("session %q (another call is binding or restoring it)", s.id)
}

// PromptResponse is the answer of a prompt.
type PromptResponse struct {
	StopReason string          `json:"stopReason"`
	Raw        json.RawMessage `json:"-"`
}

// TextBlock is a text content block for PromptContent.
func TextBlock(text string) map[string]string { return map[string]string{"type": "text", "text": text} }

// Prompt sends one text prompt and waits for the turn to end. Streamed
// output arrives as session events: every event of the turn has been
// passed to the OnEvent listeners (and queued for Events loops) by the
// time Prompt returns.
func (s *Session) Prompt(ctx context.Context, text string) (PromptResponse, error) {
	return s.PromptContent(ctx, TextBlock(text))
}

// PromptContent sends content blocks (any JSON-encodable ACP
// ContentBlock). If the session was restored, the replayed history is
// prepended as a text block.
func (s *Session) PromptContent(ctx context.Context, blocks ...any) (PromptResponse, error) {
	live, asid, err := s.ensureBound(ctx)
	if err != nil {
		return PromptResponse{}, err
	}
	prompt := make([]any, 0, len(blocks)+1)
	if r := live.takeReplay(s.id); r != "" {
		prompt = append(prompt, TextBlock(r))
	}
	prompt = append(prompt, blocks...)
	res, err := live.conn.Call(ctx, "session/prompt", map[string]any{"sessionId": asid, "prompt": prompt})
	if err != nil {
		return PromptResponse{}, s.callErr("session/prompt", err)
	}
	var pr PromptResponse
	_ = json.Unmarshal(res, &pr)
	pr.Raw = res
	return pr, nil
}

func (s *Session) callErr(method string, err error) error {
	if errors.Is(err, ErrConnectionLost) {
		return fmt.Errorf("sandboxagent: %s on session %q failed because the connection to the agent was lost; the session is restored on its next use: %w", method, s.id, err)
	}
	return err
}

// Call sends a raw session method with params.sessionId set to the agent's
// session id and returns the raw result.
func (s *Session) Call(ctx context.Context, method string, params map[string]any) (json.RawMessage, error) {
	live, asid, err := s.ensureBound(ctx)
	if err != nil {
		return nil, err
	}
	p := make(map[string]any, len(params)+1)
	for k, v := range params {
		p[k] = v
	}
	p["sessionId"] = asid
	res, err := live.conn.Call(ctx, method, p)
	if err != nil {
		return nil, s.callErr(method, err)
	}
	return res, nil
}

// Notify sends a raw session notification.
func (s *Session) Notify(ctx context.Context, method string, params map[string]any) error {
	live, asid, err := s.ensureBound(ctx)
	if err != nil {
		return err
	}
	p := make(map[string]any, len(params)+1)
	for k, v := range params {
		p[k] = v
	}
	p["sessionId"] = asid
	return s.callErr(method, live.conn.Notify(ctx, method, p))
}

// Cancel asks the agent to stop the prompt in flight (session/cancel); the
// prompt then ends with stop reason "cancelled".
func (s *Session) Cancel(ctx context.Context) error {
	return s.Notify(ctx, "session/cancel", nil)
}

// OnEvent registers fn for every persisted event of the session, called in
// order on the connection's dispatch goroutine: it must not block or call
// the session. It returns the unsubscribe function.
//
// OnEvent is the primary event API: because fn runs on the dispatch
// goroutine, every event of a turn has reached it when Prompt returns.
// Events is a convenience built on it (a queue a range loop reads on its
// own goroutine), and GetEvents pages through the persisted history,
// including events from before a listener was registered.
func (s *Session) OnEvent(fn func(SessionEvent)) (unsubscribe func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextSub++
	k := s.nextSub
	s.listeners[k] = fn
	return func() {
		s.mu.Lock()
		delete(s.listeners, k)
		s.mu.Unlock()
	}
}

func (s *Session) emit(ev SessionEvent) {
	s.mu.Lock()
	fns := make([]func(SessionEvent), 0, len(s.listeners))
	for _, fn := range s.listeners {
		fns = append(fns, fn)
	}
	s.mu.Unlock()
	for _, fn := range fns {
		fn(ev)
	}
}

// eventsQueueLen bounds how far an Events loop may fall behind the
// dispatch goroutine. OnEvent listeners must not block, so a full queue
// cannot wait for the loop: the loop ends with ErrEventsOverflow instead,
// and the caller reads the rest from the store (GetEvents).
const eventsQueueLen = 1024

// ErrEventsOverflow ends an Events loop that fell more than 1024 events
// behind; every event is still persisted and listed by GetEvents.
var ErrEventsOverflow = errors.New("sandboxagent: the Events loop fell too far behind")

// Events returns a single-use iterator over the session's events from this
// call on, queued for it by an OnEvent listener registered now, so that
//
//	events := s.Events(ctx)
//	go func() { for ev, err := range events { … } }()
//	s.Prompt(ctx, "hi")
//
// sees the whole turn. The loop ends when it breaks, ctx ends or the client
// closes; when it falls eventsQueueLen events behind, it yields the events
// queued so far and then ErrEventsOverflow. The listener is removed when the
// loop ends or ctx does, whichever comes first, so call Events with a ctx
// that ends if the iterator might never run.
func (s *Session) Events(ctx context.Context) iter.Seq2[SessionEvent, error] {
	queue := make(chan SessionEvent, eventsQueueLen)
	overflow := make(chan struct{})
	var overflowed sync.Once
	var full atomic.Bool // once set, nothing more is queued: no gap mid-stream
	unsub := s.OnEvent(func(ev SessionEvent) {
		if full.Load() {
			return
		}
		select {
		case queue <- ev:
		default:
			full.Store(true)
			overflowed.Do(func() { close(overflow) })
		}
	})
	stop := context.AfterFunc(ctx, unsub)
	return func(yield func(SessionEvent, error) bool) {
		defer func() {
			stop()
			unsub()
		}()
		for {
			select {
			case ev := <-queue:
				if !yield(ev, nil) {
					return
				}
			case <-overflow:
				for len(queue) > 0 {
					if !yield(<-queue, nil) {
						return
					}
				}
				yield(SessionEvent{}, fmt.Errorf("%w: session %q", ErrEventsOverflow, s.id))
				return
			case <-ctx.Done():
				return
			case <-s.c.ctx.Done():
				return
			}
		}
	}
}
