package multiplayer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	sandboxagent "github.com/sandbox-agent-go/sandbox-agent"
	"github.com/sandbox-agent-go/sandbox-agent/multiplayer/backend"
	"github.com/sandbox-agent-go/sandbox-agent/multiplayer/internal/wire"
)

// Handler serves RivetKit's client protocol, so that the official
// rivetkit client (createClient(endpoint)) talks to this runtime
// unchanged: GET /metadata, the gateway routes
// /gateway/{name|actorId}/connect (WebSocket) and /action/{action} (HTTP),
// PUT/POST/GET /actors, and our extension /gateway/{…}/events (Published
// events as SSE, resumable by sequence number). Mount it at the root of an
// endpoint, or under a prefix with http.StripPrefix.
func (rt *Runtime) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metadata", rt.serveMetadata)
	mux.HandleFunc("GET /actors/names", rt.serveNames)
	mux.HandleFunc("PUT /actors", rt.serveActorsPut)
	mux.HandleFunc("POST /actors", rt.serveActorsPut)
	mux.HandleFunc("GET /actors", rt.serveActorsList)
	mux.HandleFunc("GET /gateway/{target}/connect", rt.serveConnect)
	mux.HandleFunc("POST /gateway/{target}/action/{action}", rt.serveAction)
	mux.HandleFunc("GET /gateway/{target}/events", rt.serveEvents)
	return rt.cors(mux)
}

// cors allows the endpoint's own origin and Config.AllowedOrigins, echoing
// the Origin with credentials as rivetkit's client needs (it fetches
// /metadata with credentials: "include"); any other browser origin is
// refused, so a page on another site cannot drive the actors.
func (rt *Runtime) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !rt.hostAllowed(r.Host) {
			writeHTTPError(w, http.StatusForbidden, &Error{Group: "auth", Code: "forbidden", Message: "host " + r.Host + " is not allowed (Config.AllowedHosts)"})
			return
		}
		origin := r.Header.Get("Origin")
		if origin != "" {
			if !rt.originAllowed(origin, r.Host) {
				writeHTTPError(w, http.StatusForbidden, &Error{Group: "auth", Code: "forbidden", Message: "origin " + origin + " is not allowed"})
				return
			}
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Credentials", "true")
			h.Set("Access-Control-Expose-Headers", "*")
			h.Add("Vary", "Origin")
			if r.Method == http.MethodOptions {
				h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS, PATCH")
				if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
					h.Set("Access-Control-Allow-Headers", req)
				}
				h.Set("Access-Control-Max-Age", "86400")
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// hostAllowed: IP literals and localhost always (a rebinding attack needs
// a DNS name), other names only when listed.
func (rt *Runtime) hostAllowed(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if host == "" || net.ParseIP(host) != nil || strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return true
	}
	for _, h := range rt.cfg.AllowedHosts {
		if strings.EqualFold(h, host) {
			return true
		}
	}
	return false
}

func (rt *Runtime) originAllowed(origin, host string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, host) {
		return true
	}
	for _, o := range rt.cfg.AllowedOrigins {
		if o == "*" || strings.EqualFold(strings.TrimSuffix(o, "/"), origin) {
			return true
		}
	}
	return false
}

func (rt *Runtime) serveMetadata(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"runtime": "sandbox-agent-go multiplayer",
		"version": sandboxagent.Version,
		// Clients older than 2.3 read these; 2.3 only logs them.
		"actorNames": rt.names(),
	})
}

func (rt *Runtime) names() map[string]any {
	names := map[string]any{}
	for n := range rt.reg.kinds {
		names[n] = map[string]any{"metadata": map[string]any{}}
	}
	return names
}

func (rt *Runtime) serveNames(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"names": rt.names()})
}

// actorJSON is an actor as the engine API answers it.
func actorJSON(a backend.Actor) map[string]any {
	return map[string]any{
		"actor_id": a.ID, "name": a.Name, "key": backend.CanonicalKey(a.Key),
		"namespace_id": "default", "runner_name_selector": "default",
		"create_ts": a.CreatedAt.UnixMilli(), "crash_policy": "sleep",
	}
}

func (rt *Runtime) serveActorsPut(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Name  string  `json:"name"`
		Key   *string `json:"key"`
		Input *string `json:"input"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, rt.cfg.MaxMessageSize)).Decode(&body); err != nil || body.Name == "" {
		writeHTTPError(w, http.StatusBadRequest, &Error{Group: "request", Code: "invalid", Message: "body needs a name"})
		return
	}
	key := []string{}
	if body.Key != nil {
		key = backend.ParseKey(*body.Key)
	}
	var input json.RawMessage
	if body.Input != nil {
		in, err := wire.DecodeInput(*body.Input)
		if err != nil {
			writeHTTPError(w, http.StatusBadRequest, &Error{Group: "request", Code: "invalid", Message: err.Error()})
			return
		}
		input = in
	}
	method := "getOrCreate"
	if r.Method == http.MethodPost {
		method = "create"
	}
	before, _ := rt.b.Get(r.Context(), body.Name, key)
	a, err := rt.resolve(r.Context(), body.Name, key, method, input)
	if err != nil {
		writeHTTPError(w, 0, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"actor": actorJSON(a), "created": before.ID == ""})
}

func (rt *Runtime) serveActorsList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	actors := []map[string]any{}
	if ids := q.Get("actor_ids"); ids != "" {
		for id := range strings.SplitSeq(ids, ",") {
			if a, err := rt.b.Lookup(r.Context(), id); err == nil {
				actors = append(actors, actorJSON(a))
			}
		}
	} else if name := q.Get("name"); name != "" && q.Has("key") {
		if a, err := rt.b.Get(r.Context(), name, backend.ParseKey(q.Get("key"))); err == nil {
			actors = append(actors, actorJSON(a))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"actors": actors})
}

// target resolves the gateway path's {target}: an actor name addressed by
// the rvt-* query (rivetkit ≥ 2.3), or an actor id (older clients, and
// resolve()d handles), optionally suffixed "@token".
func (rt *Runtime) target(r *http.Request) (backend.Actor, error) {
	t := r.PathValue("target")
	q := r.URL.Query()
	if method := q.Get("rvt-method"); method != "" {
		key := []string{}
		if k := q.Get("rvt-key"); k != "" {
			key = strings.Split(k, ",")
		}
		input, err := wire.DecodeInput(q.Get("rvt-input"))
		if err != nil {
			return backend.Actor{}, &Error{Group: "request", Code: "invalid", Message: err.Error()}
		}
		if method != "get" && method != "getOrCreate" && method != "create" {
			return backend.Actor{}, &Error{Group: "request", Code: "invalid", Message: "unknown rvt-method " + method}
		}
		return rt.resolve(r.Context(), t, key, method, input)
	}
	id, _, _ := strings.Cut(t, "@")
	a, err := rt.b.Lookup(r.Context(), id)
	return a, mapBackendErr(err)
}

// serveAction is a stateless action: x-rivet-encoding selects the body's
// encoding, x-rivet-conn-params carries the params (OnBeforeConnect runs
// on them).
func (rt *Runtime) serveAction(w http.ResponseWriter, r *http.Request) {
	enc := wire.JSON
	if h := r.Header.Get("x-rivet-encoding"); h != "" {
		e, err := wire.ParseEncoding(h)
		if err != nil {
			writeHTTPError(w, http.StatusBadRequest, &Error{Group: "encoding", Code: "invalid", Message: "unsupported encoding " + h})
			return
		}
		enc = e
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, rt.cfg.MaxMessageSize+1))
	if err != nil {
		writeHTTPError(w, http.StatusBadRequest, &Error{Group: "request", Code: "invalid", Message: err.Error()})
		return
	}
	if int64(len(body)) > rt.cfg.MaxMessageSize {
		writeHTTPError(w, http.StatusRequestEntityTooLarge, errTooLong(rt.cfg.MaxMessageSize))
		return
	}
	args, version, err := wire.DecodeHTTPArgs(enc, body)
	if err != nil {
		writeHTTPError(w, http.StatusBadRequest, &Error{Group: "message", Code: "malformed", Message: err.Error()})
		return
	}
	params, err := connParams(r.Header.Get("x-rivet-conn-params"))
	if err != nil {
		writeHTTPError(w, http.StatusBadRequest, err)
		return
	}
	a, err := rt.target(r)
	if err != nil {
		writeHTTPError(w, 0, err)
		return
	}
	resp, err := rt.request(r.Context(), a.ID, &hostReq{Op: opAction, Name: r.PathValue("action"), Args: args, Params: params, Stateless: true,
		within: rt.answerWithin(a.Name)})
	if err != nil {
		writeHTTPError(w, 0, err)
		return
	}
	if resp.Err != nil {
		writeHTTPError(w, 0, resp.Err.toError())
		return
	}
	out, err := wire.EncodeHTTPOutput(enc, version, resp.Output)
	if err != nil {
		writeHTTPError(w, 0, err)
		return
	}
	w.Header().Set("Content-Type", enc.ContentType())
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

func errTooLong(limit int64) *Error {
	return &Error{Group: "message", Code: "incoming_too_long",
		Message: fmt.Sprintf("incoming message too long (limit %d bytes)", limit)}
}

// connParams decodes connection params (JSON; "" → none).
func connParams(s string) (json.RawMessage, error) {
	if s == "" {
		return nil, nil
	}
	if !json.Valid([]byte(s)) {
		return nil, &Error{Group: "params", Code: "invalid", Message: "connection params are not JSON"}
	}
	return json.RawMessage(s), nil
}

func httpStatus(e *Error) int {
	switch {
	case e.Group == "user":
		return http.StatusBadRequest
	case e.Code == "not_found":
		return http.StatusNotFound
	case e.Group == "actor" && e.Code == "duplicate_key":
		return http.StatusConflict
	case e.Group == "auth":
		return http.StatusForbidden
	case e.Code == "action_timed_out":
		return http.StatusGatewayTimeout
	case e.Code == "stopping" || e.Code == "restarting":
		return http.StatusServiceUnavailable
	case e.Code == "internal_error":
		return http.StatusInternalServerError
	}
	return http.StatusBadRequest
}

// writeHTTPError writes the Rivet error body (JSON whatever the encoding:
// every client version parses JSON errors).
func writeHTTPError(w http.ResponseWriter, status int, err error) {
	e := publicError(err)
	if status == 0 {
		status = httpStatus(e)
	}
	we := wireErrorOf(e)
	body, encErr := wire.EncodeHTTPError(wire.HTTPError{Group: we.Group, Code: we.Code, Message: we.Message, Metadata: we.Metadata})
	if encErr != nil {
		body = []byte(`{"group":"actor","code":"internal_error","message":"an internal error occurred"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// serveConnect is the realtime connection: a WebSocket with the rivet
// sub-protocols.
func (rt *Runtime) serveConnect(w http.ResponseWriter, r *http.Request) {
	encName, paramsRaw := "", ""
	for _, p := range offeredSubprotocols(r) {
		switch {
		case strings.HasPrefix(p, "rivet_encoding."):
			encName = strings.TrimPrefix(p, "rivet_encoding.")
		case strings.HasPrefix(p, "rivet_conn_params."):
			raw, err := url.PathUnescape(strings.TrimPrefix(p, "rivet_conn_params."))
			if err != nil {
				raw = "\x00" // not JSON: refused as params.invalid below
			}
			paramsRaw = raw
		}
	}
	if encName == "" {
		encName = r.URL.Query().Get("encoding")
	}
	// The Origin was checked by cors; the library's own same-origin check
	// would refuse the AllowedOrigins.
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"rivet"}, InsecureSkipVerify: true})
	if err != nil {
		return
	}
	// Reading is bounded by hand (readFrame), so that an oversize frame gets
	// Rivet's error rather than the library's bare close.
	ws.SetReadLimit(-1)
	if encName == "" {
		encName = "json"
	}
	enc, err := wire.ParseEncoding(encName)
	if err != nil {
		closeWS(ws, &Error{Group: "encoding", Code: "invalid", Message: "unsupported encoding " + encName})
		return
	}
	c := &wsConn{rt: rt, ws: ws, enc: enc, version: wire.InitVersion, id: uuid.NewString(),
		out: make(chan outFrame, rt.cfg.MaxOutgoing), subs: map[string]bool{}, closed: make(chan struct{}),
		actions: make(chan struct{}, maxActionsInFlight)}
	c.serve(r.Context(), r, paramsRaw)
}

func offeredSubprotocols(r *http.Request) []string {
	var out []string
	for _, h := range r.Header.Values("Sec-WebSocket-Protocol") {
		for p := range strings.SplitSeq(h, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// maxActionsInFlight bounds one connection's concurrent actions (each
// holds its arguments until it ends); more are refused with
// actor.too_many_actions.
const maxActionsInFlight = 64

// closeWS closes with a reason the client turns into an ActorError
// (group.code).
func closeWS(ws *websocket.Conn, e *Error) {
	code := websocket.StatusInternalError
	switch e.Code {
	case "stopping", "restarting":
		code = websocket.StatusTryAgainLater
	case "forbidden":
		code = websocket.StatusPolicyViolation
	case "incoming_too_long":
		code = websocket.StatusMessageTooBig
	}
	reason := e.Group + "." + e.Code
	if e.kick {
		code, reason = websocket.StatusNormalClosure, e.Message
	}
	// A close reason longer than 123 bytes is dropped by the protocol.
	if len(reason) > 123 {
		reason = reason[:123]
	}
	_ = ws.Close(code, reason)
}

type outFrame struct {
	data []byte
	text bool
}

// wsConn is one rivetkit connection on this gateway.
type wsConn struct {
	rt      *Runtime
	ws      *websocket.Conn
	enc     wire.Encoding
	id      string
	params  json.RawMessage
	actorID string
	hub     *hub
	gen     atomic.Uint64 // generation of the instance it connected to
	actions chan struct{} // bounds the actions in flight
	within  time.Duration // see Runtime.answerWithin

	out       chan outFrame
	closeOnce sync.Once
	closed    chan struct{}
	closeErr  *Error

	mu      sync.Mutex
	version uint16 // BARE: answer in the client's version
	subs    map[string]bool
}

func (c *wsConn) attached() bool              { return true }
func (c *wsConn) connGen() uint64             { return c.gen.Load() }
func (c *wsConn) connID() string              { return c.id }
func (c *wsConn) connParams() json.RawMessage { return c.params }

func (c *wsConn) serve(ctx context.Context, r *http.Request, paramsRaw string) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	params, err := connParams(paramsRaw)
	if err != nil {
		c.fail(err)
		return
	}
	c.params = params
	a, err := c.rt.target(r)
	if err != nil {
		c.fail(err)
		return
	}
	c.actorID = a.ID
	c.within = c.rt.answerWithin(a.Name)
	h, err := c.rt.join(a.ID, c)
	if err != nil {
		c.fail(err)
		return
	}
	c.hub = h
	defer h.leave(c)
	resp, err := c.rt.request(ctx, a.ID, &hostReq{Op: opConnect, Conn: c.id, Node: c.rt.b.NodeID(), Params: params, within: c.within})
	if err == nil && resp.Err != nil {
		err = resp.Err.toError()
	}
	if err != nil {
		c.fail(err)
		return
	}
	c.gen.Store(resp.Gen)
	defer func() {
		dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer dcancel()
		_, _ = c.rt.request(dctx, a.ID, &hostReq{Op: opDisconnect, Conn: c.id})
	}()
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.writeLoop(ctx)
	}()
	defer func() { <-writerDone }()
	var inflight sync.WaitGroup
	defer inflight.Wait()
	defer cancel()
	c.send(wire.ToClient{Kind: wire.Init, ActorID: a.ID, ConnectionID: c.id}, wire.InitVersion)
	c.readLoop(ctx, &inflight)
}

// fail reports a connection-level error (actionId null) and closes.
func (c *wsConn) fail(err error) {
	e := publicError(err)
	we := wireErrorOf(e)
	frame, text, encErr := wire.EncodeToClient(c.enc, c.currentVersion(), wire.ToClient{Kind: wire.Error, Group: we.Group, Code: we.Code, Message: we.Message, Metadata: we.Metadata})
	if encErr == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = c.ws.Write(ctx, msgType(text), frame)
		cancel()
	}
	closeWS(c.ws, e)
}

func msgType(text bool) websocket.MessageType {
	if text {
		return websocket.MessageText
	}
	return websocket.MessageBinary
}

func (c *wsConn) currentVersion() uint16 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.version
}

// send queues a message; a full queue means a client that does not keep
// up: it is disconnected rather than allowed to hold the actor back.
func (c *wsConn) send(m wire.ToClient, version uint16) {
	frame, text, err := wire.EncodeToClient(c.enc, version, m)
	if err != nil {
		c.rt.log.Warn("cannot encode a message to a client", "err", err)
		return
	}
	c.queue(outFrame{frame, text})
}

func (c *wsConn) queue(f outFrame) {
	select {
	case <-c.closed:
	case c.out <- f:
	default:
		c.closeWith(&Error{Group: "message", Code: "queue_full", Message: "the client did not keep up; reconnect"})
	}
}

func (c *wsConn) deliver(m *busMsg, cache *frameCache) {
	c.mu.Lock()
	sub := c.subs[m.Name]
	version := c.version
	c.mu.Unlock()
	if !sub {
		return
	}
	key := uint32(c.enc)<<16 | uint32(version)
	data, text, err := cache.get(key, func() ([]byte, bool, error) {
		return wire.EncodeToClient(c.enc, version, wire.ToClient{Kind: wire.Event, Name: m.Name, Args: m.Args})
	})
	if err != nil {
		c.rt.log.Warn("cannot encode an event", "event", m.Name, "err", err)
		return
	}
	c.queue(outFrame{data, text})
}

func (c *wsConn) closeWith(e *Error) {
	c.closeOnce.Do(func() {
		c.closeErr = e
		close(c.closed)
	})
}

func (c *wsConn) writeLoop(ctx context.Context) {
	ping := time.NewTicker(15 * time.Second)
	defer ping.Stop()
	for {
		select {
		case f := <-c.out:
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := c.ws.Write(wctx, msgType(f.text), f.data)
			cancel()
			if err != nil {
				c.closeWith(errStopping)
				_ = c.ws.CloseNow()
				return
			}
		case <-ping.C:
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := c.ws.Ping(pctx)
			cancel()
			if err != nil {
				_ = c.ws.CloseNow()
				return
			}
		case <-c.closed:
			closeWS(c.ws, c.closeErr)
			return
		case <-ctx.Done():
			_ = c.ws.Close(websocket.StatusNormalClosure, "")
			return
		}
	}
}

// readLoop reads until the socket ends; the actions it started are
// waited for by serve, after their context is cancelled: a closed socket
// disconnects at once (its in-flight actions see their context end).
func (c *wsConn) readLoop(ctx context.Context, inflight *sync.WaitGroup) {
	for {
		_, frame, err := c.readFrame(ctx)
		if err != nil {
			var e *Error
			if errors.As(err, &e) {
				c.fail(e)
			}
			c.closeWith(errStopping)
			return
		}
		msg, version, err := wire.DecodeToServer(c.enc, frame)
		if err != nil {
			c.fail(&Error{Group: "message", Code: "malformed", Message: err.Error()})
			return
		}
		c.mu.Lock()
		if c.enc == wire.BARE {
			c.version = version
		}
		c.mu.Unlock()
		switch msg.Kind {
		case wire.Subscription:
			c.mu.Lock()
			if msg.Subscribe {
				c.subs[msg.EventName] = true
			} else {
				delete(c.subs, msg.EventName)
			}
			c.mu.Unlock()
		case wire.Action:
			select {
			case c.actions <- struct{}{}:
			default:
				id := msg.ID
				c.send(wire.ToClient{Kind: wire.Error, Group: "actor", Code: "too_many_actions",
					Message: fmt.Sprintf("more than %d actions in flight on one connection", cap(c.actions)), ActionID: &id}, version)
				continue
			}
			inflight.Go(func() {
				defer func() { <-c.actions }()
				c.action(ctx, msg, version)
			})
		}
	}
}

// readFrame reads one message, at most MaxMessageSize bytes.
func (c *wsConn) readFrame(ctx context.Context) (websocket.MessageType, []byte, error) {
	typ, r, err := c.ws.Reader(ctx)
	if err != nil {
		return 0, nil, err
	}
	limit := c.rt.cfg.MaxMessageSize
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return 0, nil, err
	}
	if int64(len(b)) > limit {
		return 0, nil, errTooLong(limit)
	}
	return typ, b, nil
}

func (c *wsConn) action(ctx context.Context, msg wire.ToServer, version uint16) {
	id := msg.ID
	resp, err := c.rt.request(ctx, c.actorID, &hostReq{Op: opAction, Conn: c.id, Name: msg.Name, Args: msg.Args, within: c.within})
	if err == nil && resp.Err != nil {
		err = resp.Err.toError()
	}
	if err != nil {
		if ctx.Err() != nil {
			return // the connection is gone
		}
		we := wireErrorOf(publicError(err))
		c.send(wire.ToClient{Kind: wire.Error, Group: we.Group, Code: we.Code, Message: we.Message, Metadata: we.Metadata, ActionID: &id}, version)
		return
	}
	if resp.Kick != "" {
		group, code, _ := strings.Cut(resp.Kick, ".")
		c.closeWith(&Error{Group: group, Code: code, Message: resp.Kick, kick: true})
		return
	}
	c.send(wire.ToClient{Kind: wire.ActionResponse, ID: id, Output: resp.Output}, version)
}

// serveEvents is our extension: the actor's Published events as
// Server-Sent Events from a sequence number (?since=N or Last-Event-ID),
// then live. Each event is "id: <seq>", "event: <name>", "data: <args as
// a JSON array>". Params for OnBeforeConnect come in ?params= (browsers'
// EventSource cannot set headers).
func (rt *Runtime) serveEvents(w http.ResponseWriter, r *http.Request) {
	since := uint64(0)
	// Last-Event-ID first: EventSource reconnects to the same URL (with
	// its ?since=) and says where it got to in the header.
	s := r.Header.Get("Last-Event-ID")
	if s == "" {
		s = r.URL.Query().Get("since")
	}
	if s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			writeHTTPError(w, http.StatusBadRequest, &Error{Group: "request", Code: "invalid", Message: "since must be a sequence number"})
			return
		}
		since = n
	}
	params, err := connParams(r.URL.Query().Get("params"))
	if err != nil {
		writeHTTPError(w, 0, err)
		return
	}
	a, err := rt.target(r)
	if err != nil {
		writeHTTPError(w, 0, err)
		return
	}
	// Authorise as a stateless call would: OnBeforeConnect on the params.
	resp, err := rt.request(r.Context(), a.ID, &hostReq{Op: opAuthorize, Params: params, within: rt.answerWithin(a.Name)})
	if err == nil && resp.Err != nil {
		err = resp.Err.toError()
	}
	if err != nil {
		writeHTTPError(w, 0, err)
		return
	}
	sc := &sseConn{id: uuid.NewString(), live: make(chan *busMsg, rt.cfg.MaxOutgoing), behind: make(chan struct{}, 1)}
	h, err := rt.join(a.ID, sc)
	if err != nil {
		writeHTTPError(w, 0, err)
		return
	}
	defer h.leave(sc)
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	// Every write is bounded: a client that stops reading is dropped.
	flush := func() bool {
		_ = rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		return rc.Flush() == nil
	}
	if !flush() {
		return
	}
	send := func(e backend.Event) bool {
		if e.Seq <= since {
			return true // already sent (replay and live overlap)
		}
		since = e.Seq
		_ = rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		_, err := fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", e.Seq, e.Name, e.Args)
		return err == nil
	}
	// catchUp reads storage from since to its end (or to upto), in pages.
	catchUp := func(upto uint64) bool {
		for upto == 0 || since < upto {
			evs, err := rt.b.Events(r.Context(), a.ID, since, 500)
			if err != nil {
				return false
			}
			for _, e := range evs {
				if upto != 0 && e.Seq > upto {
					break
				}
				if !send(e) {
					return false
				}
			}
			if len(evs) < 500 {
				break
			}
		}
		return flush()
	}
	// Replay what is stored, then live; live events the replay covered are
	// dropped by seq, and a gap (this stream fell behind) is read from
	// storage, so nothing is lost or repeated.
	if !catchUp(0) {
		return
	}
	keep := time.NewTicker(15 * time.Second)
	defer keep.Stop()
	for {
		select {
		case m := <-sc.live:
			if m.Seq > since+1 && !catchUp(m.Seq-1) {
				return
			}
			if !send(backend.Event{Seq: m.Seq, Name: m.Name, Args: m.Args}) || !flush() {
				return
			}
		case <-sc.behind:
			// The live queue overflowed: storage has what it dropped.
			if !catchUp(0) {
				return
			}
		case <-keep.C:
			_ = rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.WriteString(w, ": keep-alive\n\n"); err != nil || !flush() {
				return
			}
		case <-rt.ctx.Done():
			return
		case <-r.Context().Done():
			return
		}
	}
}

// sseConn is an events stream's place in the hub: Published events only.
type sseConn struct {
	id     string
	live   chan *busMsg
	behind chan struct{} // signalled when live overflowed
}

func (s *sseConn) connID() string              { return s.id }
func (s *sseConn) connParams() json.RawMessage { return nil }
func (s *sseConn) connGen() uint64             { return 0 }
func (s *sseConn) deliver(m *busMsg, _ *frameCache) {
	if m.Seq == 0 {
		return
	}
	select {
	case s.live <- m:
	default:
		select {
		case s.behind <- struct{}{}:
		default:
		}
	}
}

// closeWith is a no-op: an events stream outlives the actor's instances
// (it reads storage and the bus, not the instance); it ends with its
// request or the runtime.
func (s *sseConn) closeWith(*Error) {}
func (s *sseConn) attached() bool   { return false }
