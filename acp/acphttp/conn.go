// Package acphttp is the client side of ACP (Agent Client Protocol) over
// HTTP as served by sandbox-agent at /v1/acp/{serverId}: JSON-RPC envelopes
// are POSTed one per request (the first POST carries ?agent=<id> and creates
// the agent process), and everything the agent writes arrives on an SSE
// stream that is resumed with Last-Event-ID.
//
// Compared with the upstream TypeScript transport, a Conn never hangs: when
// the connection is lost (SSE 404, a POST answered 4xx/5xx, a network error)
// Done is closed, Err reports why, and every pending Call fails at once.
package acphttp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/acp"
	"github.com/sandbox-agent-go/sandbox-agent/internal/ctxsync"
	"github.com/sandbox-agent-go/sandbox-agent/internal/sse"
)

// Defaults.
const (
	DefaultReconnectDelay = 150 * time.Millisecond
	DefaultCloseTimeout   = 2 * time.Second
	DefaultInlineGrace    = 2 * time.Second
	// DefaultIdleTimeout is three missed SSE heartbeats (the server sends
	// one every 15 s).
	DefaultIdleTimeout = 45 * time.Second
	dedupeWindow       = 2048
)

// Errors reported by Err and by failed calls (test with errors.Is).
var (
	// ErrClosed: Close was called.
	ErrClosed = errors.New("acphttp: connection closed")
	// ErrConnectionLost: the server went away, the agent server was
	// removed, or a POST was refused. The wrapped cause says which.
	ErrConnectionLost = errors.New("acphttp: connection lost")
)

// RPCError is a JSON-RPC error response.
type RPCError struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

func (e *RPCError) Error() string {
	label := ""
	switch e.Code {
	case -32700:
		label = "Parse error"
	case -32600:
		label = "Invalid request"
	case -32601:
		label = "Method not supported by agent"
	case -32602:
		label = "Invalid parameters"
	case -32603:
		label = "Internal agent error"
	case -32000:
		label = "Authentication required"
	case -32002:
		label = "Resource not found"
	}
	if label != "" {
		return fmt.Sprintf("acp: %s: %s (code %d)", label, e.Message, e.Code)
	}
	return fmt.Sprintf("acp: %s (code %d)", e.Message, e.Code)
}

// HTTPError is a non-2xx answer of the ACP endpoint.
type HTTPError struct {
	Method  string
	Status  int
	Problem json.RawMessage // the problem+json body, if any
}

func (e *HTTPError) Error() string {
	var p struct {
		Title  string `json:"title"`
		Detail string `json:"detail"`
	}
	_ = json.Unmarshal(e.Problem, &p)
	msg := p.Detail
	if msg == "" {
		msg = p.Title
	}
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	return fmt.Sprintf("acphttp: %s answered %d: %s", e.Method, e.Status, msg)
}

// Message is one envelope seen by Observe.
type Message struct {
	// Outbound is true for envelopes this client sent.
	Outbound bool
	// Raw is the envelope exactly as sent or received.
	Raw json.RawMessage
	// Envelope is its classification.
	Envelope acp.Envelope
}

// Request is an agent→client request or notification.
type Request struct {
	ID     json.RawMessage // nil for notifications
	Method string
	Params json.RawMessage
}

// Options configure a Conn.
type Options struct {
	// BaseURL of the sandbox-agent server, e.g. "http://127.0.0.1:2468".
	BaseURL string
	// ServerID is the ACP server id; required.
	ServerID string
	// Agent is sent as ?agent= on the first POST (creates the server).
	Agent string
	// HTTPClient defaults to http.DefaultClient. Its Timeout must be zero
	// (the SSE stream is long-lived); use contexts instead.
	HTTPClient *http.Client
	// Header is added to every request (e.g. Authorization).
	Header http.Header
	// Observe is called for every envelope, in arrival order, before it is
	// dispatched: outbound envelopes before they are POSTed, duplicate
	// responses only once. Calls are serialised; it must not call back into
	// the Conn synchronously.
	Observe func(ctx context.Context, m Message)
	// OnRequest answers agent→client requests. It runs on its own
	// goroutine and may block; ctx ends when the Conn does. A returned
	// *RPCError is sent as is, any other error as -32603. Nil → -32601.
	OnRequest func(ctx context.Context, r Request) (any, error)
	// OnNotification receives agent notifications in arrival order, on
	// the dispatch goroutine (it must not block for long).
	OnNotification func(r Request)
	// ReconnectDelay before resuming an SSE stream that ended cleanly.
	ReconnectDelay time.Duration
	// CloseTimeout bounds the DELETE sent by Close.
	CloseTimeout time.Duration
	// IdleTimeout: an SSE stream that delivers nothing (not even a
	// heartbeat) for this long, or a stream request that gets no answer
	// in that time, is abandoned and resumed with Last-Event-ID; if the
	// server cannot be reached the connection is lost. It detects a peer
	// that vanished without closing the connection (a sandbox put to sleep,
	// a dropped network path), which TCP alone notices only after minutes.
	// Default DefaultIdleTimeout; negative disables.
	IdleTimeout time.Duration
	// InlineGrace is how long a call whose response came back in the POST
	// body waits for the same response on the ordered SSE stream (so
	// every notification the agent sent before it is dispatched first).
	InlineGrace time.Duration
}

// Conn is one ACP-over-HTTP connection. Its zero value is not usable; use
// New. Methods are safe for concurrent use.
type Conn struct {
	o   Options
	url string

	ctx    context.Context // ends when the Conn ends
	cancel context.CancelFunc
	done   chan struct{}
	errMu  sync.Mutex
	err    error

	nextID  atomic.Int64
	posted  atomic.Bool
	bootMu  waitLock // serialises the bootstrap POST (held across it)
	sseOnce sync.Once
	wg      sync.WaitGroup

	obsMu waitLock // serialises Observe + dispatch (held across the callbacks)

	mu       sync.Mutex
	pending  map[string]chan response
	seen     map[string]struct{}
	seenRing []string
	closed   bool
}

type response struct {
	result json.RawMessage
	err    *RPCError
}

// New returns a Conn. No I/O happens until the first Call or Notify.
func New(o Options) (*Conn, error) {
	if o.ServerID == "" {
		return nil, errors.New("acphttp: ServerID is required")
	}
	if o.BaseURL == "" {
		return nil, errors.New("acphttp: BaseURL is required")
	}
	if o.HTTPClient == nil {
		o.HTTPClient = http.DefaultClient
	}
	if o.ReconnectDelay <= 0 {
		o.ReconnectDelay = DefaultReconnectDelay
	}
	if o.CloseTimeout <= 0 {
		o.CloseTimeout = DefaultCloseTimeout
	}
	if o.InlineGrace <= 0 {
		o.InlineGrace = DefaultInlineGrace
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Conn{
		o:       o,
		url:     strings.TrimRight(o.BaseURL, "/") + "/v1/acp/" + url.PathEscape(o.ServerID),
		ctx:     ctx,
		cancel:  cancel,
		done:    make(chan struct{}),
		pending: make(map[string]chan response),
		seen:    make(map[string]struct{}),
	}, nil
}

// ServerID returns the ACP server id.
func (c *Conn) ServerID() string { return c.o.ServerID }

// Done is closed when the connection has ended (Close or loss).
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err is nil while the connection is alive, then an error wrapping ErrClosed
// or ErrConnectionLost.
func (c *Conn) Err() error {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.err
}

// fail ends the connection with err (first caller wins) and fails every
// pending call.
func (c *Conn) fail(err error) {
	c.errMu.Lock()
	if c.err != nil {
		c.errMu.Unlock()
		return
	}
	c.err = err
	c.errMu.Unlock()
	c.mu.Lock()
	c.closed = true
	c.pending = map[string]chan response{}
	c.mu.Unlock()
	c.cancel()
	close(c.done)
}

func (c *Conn) lost(cause error) {
	c.fail(fmt.Errorf("%w (server %s): %w", ErrConnectionLost, c.o.ServerID, cause))
}

// Call sends a request and waits for its response. A JSON-RPC error comes
// back as *RPCError; a lost connection as an error wrapping
// ErrConnectionLost.
func (c *Conn) Call(ctx context.Context, method string, params any) (json.RawMessage, error) {
	id := c.nextID.Add(1)
	idRaw := json.RawMessage(strconv.FormatInt(id, 10))
	body, err := marshalEnvelope(idRaw, method, params)
	if err != nil {
		return nil, err
	}
	key := acp.IDKey(idRaw)
	ch := make(chan response, 1)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, c.Err()
	}
	c.pending[key] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, key)
		c.mu.Unlock()
	}()

	if err := c.observe(ctx, true, body); err != nil {
		return nil, err
	}
	inline, err := c.post(ctx, body)
	if err != nil {
		return nil, err
	}
	var grace <-chan time.Time
	if len(inline) > 0 {
		t := time.NewTimer(c.o.InlineGrace)
		defer t.Stop()
		grace = t.C
	}
	for {
		select {
		case r := <-ch:
			if r.err != nil {
				return nil, r.err
			}
			return r.result, nil
		case <-grace:
			grace = nil
			c.receive(ctx, inline) // a ctx that ended is seen next round
		case <-c.done:
			// A response delivered just before the end wins.
			select {
			case r := <-ch:
				if r.err != nil {
					return nil, r.err
				}
				return r.result, nil
			default:
			}
			return nil, c.Err()
		case <-ctx.Done():
			return nil, fmt.Errorf("acphttp: gave up waiting for the answer to %s: %w", method, ctx.Err())
		}
	}
}

// Notify sends a notification.
func (c *Conn) Notify(ctx context.Context, method string, params any) error {
	body, err := marshalEnvelope(nil, method, params)
	if err != nil {
		return err
	}
	if err := c.Err(); err != nil {
		return err
	}
	if err := c.observe(ctx, true, body); err != nil {
		return err
	}
	_, err = c.post(ctx, body)
	return err
}

func marshalEnvelope(id json.RawMessage, method string, params any) ([]byte, error) {
	env := struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id,omitempty"`
		Method  string          `json:"method"`
		Params  any             `json:"params,omitempty"`
	}{"2.0", id, method, params}
	b, err := json.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("acphttp: encode %s: %w", method, err)
	}
	return b, nil
}

func (c *Conn) header(req *http.Request) {
	for k, vs := range c.o.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
}

// post sends one envelope; the first one bootstraps the server. It returns
// the non-blank body of a 200.
func (c *Conn) post(ctx context.Context, body []byte) ([]byte, error) {
	boot := false
	if !c.posted.Load() {
		// The holder's POST ends with its caller's context or the Conn.
		if err := c.bootMu.lock(ctx, "another call's bootstrap POST to "+c.url); err != nil {
			return nil, err
		}
		if c.posted.Load() {
			c.bootMu.unlock()
		} else {
			boot = true
			defer c.bootMu.unlock()
		}
	}
	u := c.url
	if boot && c.o.Agent != "" {
		u += "?agent=" + url.QueryEscape(c.o.Agent)
	}
	// The request must survive the caller's ctx only as long as the
	// Conn lives; a cancelled caller still cancels its POST.
	rctx, stop := mergeCancel(ctx, c.ctx)
	defer stop()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	c.header(req)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := c.o.HTTPClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("acphttp: POST %s: %w", u, ctx.Err())
		}
		if e := c.Err(); e != nil {
			return nil, e
		}
		c.lost(fmt.Errorf("POST: %w", err))
		return nil, c.Err()
	}
	defer resp.Body.Close()
	data, rerr := io.ReadAll(resp.Body)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		c.lost(&HTTPError{Method: "POST", Status: resp.StatusCode, Problem: json.RawMessage(bytes.TrimSpace(data))})
		return nil, c.Err()
	}
	if rerr != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("acphttp: POST %s: read body: %w", u, ctx.Err())
		}
		c.lost(fmt.Errorf("POST: read body: %w", rerr))
		return nil, c.Err()
	}
	if boot {
		c.posted.Store(true)
	}
	c.startSSE()
	if resp.StatusCode == http.StatusOK && len(bytes.TrimSpace(data)) > 0 {
		return data, nil
	}
	return nil, nil
}

// mergeCancel returns a context cancelled when either a or b is.
func mergeCancel(a, b context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(a)
	stop := context.AfterFunc(b, cancel)
	return ctx, func() { stop(); cancel() }
}

func (c *Conn) startSSE() {
	c.sseOnce.Do(func() {
		c.wg.Add(1)
		go c.sseLoop()
	})
}

func (c *Conn) sseLoop() {
	defer c.wg.Done()
	lastID := ""
	for {
		ended, err := c.sseOnceRead(&lastID)
		if c.ctx.Err() != nil {
			return
		}
		if err != nil {
			c.lost(err)
			return
		}
		_ = ended
		t := time.NewTimer(c.o.ReconnectDelay)
		select {
		case <-c.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// sseOnceRead reads one SSE response until it ends. A clean end returns
// (true, nil).
func (c *Conn) sseOnceRead(lastID *string) (bool, error) {
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	// The idle timer covers the wait for the answer and every gap between
	// bytes of the stream after it.
	var stalled atomic.Bool
	var idle *time.Timer
	if c.o.IdleTimeout > 0 {
		idle = time.AfterFunc(c.o.IdleTimeout, func() { stalled.Store(true); cancel() })
		defer idle.Stop()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return false, err
	}
	c.header(req)
	req.Header.Set("Accept", "text/event-stream")
	if *lastID != "" {
		req.Header.Set("Last-Event-ID", *lastID)
	}
	resp, err := c.o.HTTPClient.Do(req)
	if err != nil {
		if stalled.Load() {
			return false, fmt.Errorf("SSE: no answer within %s", c.o.IdleTimeout)
		}
		return false, fmt.Errorf("SSE: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return false, &HTTPError{Method: "GET", Status: resp.StatusCode, Problem: json.RawMessage(bytes.TrimSpace(data))}
	}
	var body io.Reader = resp.Body
	if idle != nil {
		body = &activityReader{r: resp.Body, t: idle, d: c.o.IdleTimeout}
	}
	r := sse.NewReader(body)
	for {
		ev, err := r.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return true, nil
			}
			if stalled.Load() && c.ctx.Err() == nil {
				return true, nil // silent for too long: resume from lastID
			}
			if c.ctx.Err() != nil {
				return false, nil
			}
			return false, fmt.Errorf("SSE: %w", err)
		}
		if ev.HasID {
			*lastID = ev.ID
		}
		if ev.Event != "message" || len(ev.Data) == 0 {
			continue
		}
		c.receive(c.ctx, ev.Data)
	}
}

// activityReader pushes the idle deadline back whenever bytes arrive.
type activityReader struct {
	r io.Reader
	t *time.Timer
	d time.Duration
}

func (a *activityReader) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if n > 0 {
		a.t.Reset(a.d)
	}
	return n, err
}

// observe hands an outbound envelope to Observe, in order with the
// inbound ones; it fails only when ctx ends while another envelope is
// being observed.
func (c *Conn) observe(ctx context.Context, out bool, raw []byte) error {
	if c.o.Observe == nil {
		return nil
	}
	env, err := acp.Parse(raw)
	if err != nil {
		return nil
	}
	if err := c.obsMu.lock(ctx, "Observe of an earlier message"); err != nil {
		return err
	}
	defer c.obsMu.unlock()
	c.o.Observe(ctx, Message{Outbound: out, Raw: json.RawMessage(raw), Envelope: env})
	return nil
}

// receive handles one inbound envelope: de-duplicate responses, observe,
// dispatch. Serialised by obsMu so arrival order is kept. The envelope is
// dropped if ctx ends first (the Conn's: it is closing; a caller's: it has
// given up on the answer).
func (c *Conn) receive(ctx context.Context, raw []byte) {
	env, err := acp.Parse(raw)
	if err != nil {
		return
	}
	if c.obsMu.lock(ctx, "Observe of an earlier message") != nil {
		return
	}
	defer c.obsMu.unlock()
	if env.Kind == acp.Response {
		key := acp.IDKey(env.ID)
		c.mu.Lock()
		_, dup := c.seen[key]
		if !dup {
			c.seen[key] = struct{}{}
			c.seenRing = append(c.seenRing, key)
			if len(c.seenRing) > dedupeWindow {
				delete(c.seen, c.seenRing[0])
				c.seenRing = c.seenRing[1:]
			}
		}
		c.mu.Unlock()
		if dup {
			return
		}
	}
	if c.o.Observe != nil {
		c.o.Observe(context.Background(), Message{Raw: json.RawMessage(raw), Envelope: env})
	}
	switch env.Kind {
	case acp.Response:
		var r struct {
			Result json.RawMessage `json:"result"`
			Error  *RPCError       `json:"error"`
		}
		_ = json.Unmarshal(raw, &r)
		c.mu.Lock()
		ch := c.pending[acp.IDKey(env.ID)]
		c.mu.Unlock()
		if ch != nil {
			select {
			case ch <- response{result: r.Result, err: r.Error}:
			default:
			}
		}
	case acp.Notification:
		if c.o.OnNotification != nil {
			var p struct {
				Params json.RawMessage `json:"params"`
			}
			_ = json.Unmarshal(raw, &p)
			c.o.OnNotification(Request{Method: env.Method, Params: p.Params})
		}
	case acp.Request:
		var p struct {
			Params json.RawMessage `json:"params"`
		}
		_ = json.Unmarshal(raw, &p)
		req := Request{ID: env.ID, Method: env.Method, Params: p.Params}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.answer(req)
		}()
	}
}

func (c *Conn) answer(req Request) {
	var result any
	var err error
	if c.o.OnRequest == nil {
		err = &RPCError{Code: -32601, Message: "Method not found"}
	} else {
		result, err = c.o.OnRequest(c.ctx, req)
	}
	env := map[string]any{"jsonrpc": "2.0", "id": req.ID}
	if err != nil {
		var re *RPCError
		if !errors.As(err, &re) {
			re = &RPCError{Code: -32603, Message: "Internal error"}
			d, _ := json.Marshal(map[string]string{"details": err.Error()})
			re.Data = d
		}
		env["error"] = re
	} else {
		if result == nil {
			result = json.RawMessage("null")
		}
		env["result"] = result
	}
	body, mErr := json.Marshal(env)
	if mErr != nil || c.ctx.Err() != nil {
		return
	}
	if c.observe(c.ctx, true, body) != nil {
		return
	}
	_, _ = c.post(c.ctx, body)
}

// Close ends the connection: pending calls fail with ErrClosed, the SSE
// stream stops, and, if anything was posted, the ACP server is deleted with
// a DELETE bounded by ctx and Options.CloseTimeout (errors ignored). It
// then waits for the Conn's goroutines (a callback may still be running)
// as long as ctx allows, else returns ctx's error wrapped; they have been
// cancelled and end on their own.
func (c *Conn) Close(ctx context.Context) error {
	c.fail(fmt.Errorf("%w (server %s)", ErrClosed, c.o.ServerID))
	if c.posted.Load() {
		dctx, cancel := context.WithTimeout(ctx, c.o.CloseTimeout)
		req, err := http.NewRequestWithContext(dctx, http.MethodDelete, c.url, nil)
		if err == nil {
			c.header(req)
			req.Header.Set("Accept", "application/json")
			if resp, err := c.o.HTTPClient.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
		cancel()
	}
	done := make(chan struct{})
	go func() {
		c.wg.Wait()
		close(done)
	}()
	if err := ctxsync.Wait(ctx, done); err != nil {
		return fmt.Errorf("acphttp: gave up waiting for the connection's goroutines to end: %w", err)
	}
	return nil
}
