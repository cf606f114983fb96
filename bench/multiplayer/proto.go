package main

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
	"time"

	"github.com/coder/websocket"
)

// This file speaks the JSON encoding of the RivetKit client protocol
// directly (reference-rivetkit-client.md §2.2 and §2.4): the same frames the
// official client sends, without the client's own overhead, so that the
// numbers measure the server. Only what the benchmark needs is here.

// ActorError is an Error frame or a non-2xx HTTP answer from the server.
type ActorError struct {
	Group, Code, Message string
}

func (e *ActorError) Error() string {
	return fmt.Sprintf("actor error %s.%s: %s", e.Group, e.Code, e.Message)
}

// ErrClosed is returned for calls on a connection whose socket has gone.
var ErrClosed = errors.New("connection closed")

// Target names an actor by name and key, the getOrCreate query of the
// gateway routes.
type Target struct {
	Name string
	Key  []string
}

func (t Target) query() url.Values {
	q := url.Values{}
	q.Set("rvt-namespace", "default")
	q.Set("rvt-method", "getOrCreate")
	q.Set("rvt-runner", "default")
	// The client joins key parts with ","; a comma inside a part is
	// ambiguous upstream too, and the benchmark never uses one.
	q.Set("rvt-key", strings.Join(t.Key, ","))
	q.Set("rvt-crash-policy", "sleep")
	return q
}

// bigID is an action id: JSON-compat bigint ["$BigInt","n"] on the wire.
type bigID uint64

func (b bigID) MarshalJSON() ([]byte, error) {
	return []byte(`["$BigInt","` + strconv.FormatUint(uint64(b), 10) + `"]`), nil
}

func (b *bigID) UnmarshalJSON(p []byte) error {
	var pair []json.RawMessage
	if err := json.Unmarshal(p, &pair); err != nil || len(pair) != 2 {
		// Be lenient with a plain number; the official client is not.
		var n uint64
		if err2 := json.Unmarshal(p, &n); err2 != nil {
			return fmt.Errorf("action id %s: not a $BigInt pair", p)
		}
		*b = bigID(n)
		return nil
	}
	var tag, digits string
	if err := json.Unmarshal(pair[0], &tag); err != nil || tag != "$BigInt" {
		return fmt.Errorf("action id %s: tag %q", p, tag)
	}
	if err := json.Unmarshal(pair[1], &digits); err != nil {
		return fmt.Errorf("action id %s: %w", p, err)
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	if err != nil {
		return fmt.Errorf("action id %s: %w", p, err)
	}
	*b = bigID(n)
	return nil
}

type envelope struct {
	Body struct {
		Tag string          `json:"tag"`
		Val json.RawMessage `json:"val"`
	} `json:"body"`
}

type initVal struct {
	ActorID      string `json:"actorId"`
	ConnectionID string `json:"connectionId"`
}

type responseVal struct {
	ID     bigID           `json:"id"`
	Output json.RawMessage `json:"output"`
}

type errorVal struct {
	Group    string `json:"group"`
	Code     string `json:"code"`
	Message  string `json:"message"`
	ActionID *bigID `json:"actionId"`
}

type eventVal struct {
	Name string          `json:"name"`
	Args json.RawMessage `json:"args"`
}

// EventFunc receives each Event frame with the time its frame was read,
// taken before any decoding so decode cost does not count as latency.
type EventFunc func(name string, args json.RawMessage, at time.Time)

type result struct {
	output json.RawMessage
	err    error
}

// Conn is one actor connection over the query gateway WebSocket.
type Conn struct {
	ws      *websocket.Conn
	ActorID string
	ConnID  string
	onEvent EventFunc

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]chan result
	err     error // set once the reader stops

	done chan struct{}
}

// wsURL turns an http(s) endpoint into the ws(s) gateway connect URL.
func wsURL(endpoint string, t Target) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", fmt.Errorf("endpoint %q: %w", endpoint, err)
	}
	switch u.Scheme {
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	case "ws", "wss":
	default:
		return "", fmt.Errorf("endpoint %q: scheme %q", endpoint, u.Scheme)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/gateway/" + url.PathEscape(t.Name) + "/connect"
	u.RawQuery = t.query().Encode()
	return u.String(), nil
}

// Dial opens a connection and waits for Init, for at most timeout. onEvent
// may be nil. The connection lives until Close or until ctx is cancelled.
func Dial(ctx context.Context, timeout time.Duration, endpoint string, t Target, onEvent EventFunc) (*Conn, error) {
	u, err := wsURL(endpoint, t)
	if err != nil {
		return nil, err
	}
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ws, _, err := websocket.Dial(hctx, u, &websocket.DialOptions{
		Subprotocols: []string{"rivet", "rivet_encoding.json"},
	})
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", t.Name, err)
	}
	ws.SetReadLimit(32 << 20)
	c := &Conn{ws: ws, onEvent: onEvent, pending: map[uint64]chan result{}, done: make(chan struct{})}
	// Init is the first frame; nothing counts as connected before it.
	_, p, err := ws.Read(hctx)
	if err != nil {
		ws.CloseNow()
		return nil, fmt.Errorf("read init: %w", err)
	}
	var env envelope
	if err := json.Unmarshal(p, &env); err != nil || env.Body.Tag != "Init" {
		ws.CloseNow()
		return nil, fmt.Errorf("first frame is not Init: %.200s", p)
	}
	var iv initVal
	if err := json.Unmarshal(env.Body.Val, &iv); err != nil {
		ws.CloseNow()
		return nil, fmt.Errorf("init: %w", err)
	}
	c.ActorID, c.ConnID = iv.ActorID, iv.ConnectionID
	go c.readLoop(ctx)
	return c, nil
}

func (c *Conn) readLoop(ctx context.Context) {
	defer close(c.done)
	var stopErr error
	for {
		_, p, err := c.ws.Read(ctx)
		at := time.Now()
		if err != nil {
			stopErr = fmt.Errorf("%w: %w", ErrClosed, err)
			break
		}
		var env envelope
		if err := json.Unmarshal(p, &env); err != nil {
			stopErr = fmt.Errorf("bad frame %.120s: %w", p, err)
			break
		}
		switch env.Body.Tag {
		case "Event":
			if c.onEvent != nil {
				var ev eventVal
				if err := json.Unmarshal(env.Body.Val, &ev); err == nil {
					c.onEvent(ev.Name, ev.Args, at)
				}
			}
		case "ActionResponse":
			var rv responseVal
			if err := json.Unmarshal(env.Body.Val, &rv); err != nil {
				stopErr = fmt.Errorf("ActionResponse: %w", err)
				break
			}
			c.finish(uint64(rv.ID), result{output: rv.Output})
		case "Error":
			var ev errorVal
			if err := json.Unmarshal(env.Body.Val, &ev); err != nil {
				stopErr = fmt.Errorf("error frame: %w", err)
				break
			}
			aerr := &ActorError{Group: ev.Group, Code: ev.Code, Message: ev.Message}
			if ev.ActionID == nil {
				stopErr = aerr
				c.ws.Close(websocket.StatusNormalClosure, "")
				break
			}
			c.finish(uint64(*ev.ActionID), result{err: aerr})
		}
		if stopErr != nil {
			break
		}
	}
	c.mu.Lock()
	c.err = stopErr
	pend := c.pending
	c.pending = map[uint64]chan result{}
	c.mu.Unlock()
	for _, ch := range pend {
		ch <- result{err: stopErr}
	}
}

func (c *Conn) finish(id uint64, r result) {
	c.mu.Lock()
	ch, ok := c.pending[id]
	delete(c.pending, id)
	c.mu.Unlock()
	if ok {
		ch <- r
	}
}

// Subscribe sends a SubscriptionRequest. Like the official client it does
// not wait for anything; follow it with an action as a barrier.
func (c *Conn) Subscribe(ctx context.Context, event string) error {
	msg := fmt.Sprintf(`{"body":{"tag":"SubscriptionRequest","val":{"eventName":%q,"subscribe":true}}}`, event)
	if err := c.ws.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		return fmt.Errorf("subscribe %s: %w", event, err)
	}
	return nil
}

// Action calls name(args...) and waits for its response or ctx.
func (c *Conn) Action(ctx context.Context, name string, args ...any) (json.RawMessage, error) {
	if args == nil {
		args = []any{}
	}
	ch := make(chan result, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, err
	}
	id := c.nextID
	c.nextID++
	c.pending[id] = ch
	c.mu.Unlock()

	frame, err := json.Marshal(map[string]any{"body": map[string]any{
		"tag": "ActionRequest",
		"val": map[string]any{"id": bigID(id), "name": name, "args": args},
	}})
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", name, err)
	}
	if err := c.ws.Write(ctx, websocket.MessageText, frame); err != nil {
		c.finish(id, result{})
		return nil, fmt.Errorf("send %s: %w", name, err)
	}
	select {
	case r := <-ch:
		return r.output, r.err
	case <-ctx.Done():
		c.finish(id, result{})
		return nil, fmt.Errorf("action %s: %w", name, ctx.Err())
	}
}

// Close closes the socket and waits (bounded) for the reader to stop.
func (c *Conn) Close() {
	c.ws.Close(websocket.StatusNormalClosure, "Disposed")
	select {
	case <-c.done:
	case <-time.After(2 * time.Second):
		c.ws.CloseNow()
		<-c.done
	}
}

// HTTPClient makes stateless actions: POST /gateway/{name}/action/{action}.
type HTTPClient struct {
	Endpoint string
	HTTP     *http.Client
}

// Action calls the action over plain HTTP and returns its output.
func (h *HTTPClient) Action(ctx context.Context, t Target, name string, args ...any) (json.RawMessage, error) {
	if args == nil {
		args = []any{}
	}
	body, err := json.Marshal(map[string]any{"args": args})
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", name, err)
	}
	u := strings.TrimSuffix(h.Endpoint, "/") + "/gateway/" + url.PathEscape(t.Name) +
		"/action/" + url.PathEscape(name) + "?" + t.query().Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("request %s: %w", name, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-rivet-encoding", "json")
	res, err := h.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("POST %s: %w", name, err)
	}
	defer res.Body.Close()
	p, err := io.ReadAll(io.LimitReader(res.Body, 32<<20))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if res.StatusCode/100 != 2 {
		var ae ActorError
		var raw struct{ Group, Code, Message string }
		if json.Unmarshal(p, &raw) == nil && raw.Code != "" {
			ae = ActorError{Group: raw.Group, Code: raw.Code, Message: raw.Message}
			return nil, &ae
		}
		return nil, fmt.Errorf("POST %s: HTTP %d: %.200s", name, res.StatusCode, p)
	}
	var out struct {
		Output json.RawMessage `json:"output"`
	}
	if err := json.Unmarshal(p, &out); err != nil {
		return nil, fmt.Errorf("POST %s: body %.200s: %w", name, p, err)
	}
	return out.Output, nil
}
