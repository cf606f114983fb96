// Package sandboxagent is the Go SDK of sandbox-agent: a client for the
// HTTP API (health, agents, filesystem, config, processes) and for agent
// sessions over ACP, with persistence (SessionStore), restoration of lost
// sessions by replaying their history, a health gate that re-runs when the
// server dies, and sandbox providers (SandboxProvider, Start).
package sandboxagent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coder/quartz"

	"github.com/sandbox-agent-go/sandbox-agent/internal/ctxsync"
)

// Defaults taken from the TypeScript SDK.
const (
	DefaultReplayMaxEvents = 50
	DefaultReplayMaxChars  = 12_000
	apiPrefix              = "/v1"
)

// Options configure Connect.
type Options struct {
	// BaseURL of the server, e.g. "http://127.0.0.1:2468". One trailing
	// slash is ignored. Required.
	BaseURL string
	// Token is sent as "Authorization: Bearer <token>" on every request
	// (it overrides an Authorization in Headers) and as access_token on
	// WebSocket URLs.
	Token string
	// Headers are added to every HTTP and ACP request.
	Headers http.Header
	// HTTPClient is used for everything; default a client without a
	// Timeout (SSE streams are long-lived; calls are bounded by contexts).
	HTTPClient *http.Client
	// Store persists sessions and their events; default a MemoryStore.
	Store SessionStore
	// ReplayMaxEvents and ReplayMaxChars bound the history replayed into a
	// restored session; zero or negative select 50 and 12,000.
	ReplayMaxEvents int
	ReplayMaxChars  int
	// Health configures the health gate.
	Health HealthOptions
	// StreamIdleTimeout: an ACP event stream silent for this long (the
	// server sends a heartbeat every 15 s) is resumed, and if the server
	// cannot be reached the connection counts as lost, so a sandbox that
	// went to sleep is noticed and brought back through the health gate.
	// Zero selects 45 s; negative disables.
	StreamIdleTimeout time.Duration
	// Logger receives warnings (health waits, failed persistence);
	// default slog.Default().
	Logger *slog.Logger
}

// attachment is what Start adds to Options: the provider behind the
// client, and a clock tests replace. Kept out of Options so the public
// struct holds only what a caller sets.
type attachment struct {
	provider   SandboxProvider
	providerID string // raw id
	sandboxID  string // prefixed
	clock      quartz.Clock
}

// Client talks to one sandbox-agent server. Create it with Connect or
// Start; it is safe for concurrent use. Close it when done.
type Client struct {
	// baseURL changes only when a provider's URL moved after EnsureServer
	// (a quick tunnel or a route that changed on resume); read it with url.
	urlMu   sync.RWMutex
	baseURL string
	token   string
	headers http.Header
	hc      *http.Client
	store   SessionStore
	log     *slog.Logger
	clock   quartz.Clock

	replayMaxEvents int
	replayMaxChars  int
	streamIdle      time.Duration

	provider   SandboxProvider
	providerID string
	sandboxID  string

	ctx    context.Context // ends with Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	gate *healthGate

	// recMu serialises every read-modify-write of a session record, so a
	// method's reply and a notification (set_config_option and
	// config_option_update, say) never overwrite each other's change. It is
	// never held across ACP calls (the dispatch goroutine takes it), but it
	// is held across the store, which may be a database that stopped
	// answering: hence a ctxMutex.
	recMu ctxMutex

	mu       sync.Mutex
	live     map[string]*liveConn // by agent
	sessions map[string]*Session  // handles by local id
	perms    map[string]*pendingPermission
	closed   bool
	// closeDone is closed when the teardown started by the first Close
	// has finished.
	closeDone chan struct{}
}

// Connect returns a Client for opts.BaseURL after waiting for the server to
// be healthy (see HealthOptions), unless the health gate is disabled.
func Connect(ctx context.Context, opts Options) (*Client, error) {
	return connect(ctx, opts, attachment{})
}

func connect(ctx context.Context, opts Options, at attachment) (*Client, error) {
	base := strings.TrimSpace(opts.BaseURL)
	if base == "" {
		return nil, errors.New("sandboxagent: Options.BaseURL is required")
	}
	base = strings.TrimSuffix(base, "/")
	if _, err := url.Parse(base); err != nil {
		return nil, fmt.Errorf("sandboxagent: invalid BaseURL: %w", err)
	}
	c := &Client{
		baseURL:         base,
		token:           opts.Token,
		headers:         opts.Headers.Clone(),
		hc:              opts.HTTPClient,
		store:           opts.Store,
		log:             opts.Logger,
		clock:           at.clock,
		replayMaxEvents: opts.ReplayMaxEvents,
		replayMaxChars:  opts.ReplayMaxChars,
		streamIdle:      opts.StreamIdleTimeout,
		provider:        at.provider,
		providerID:      at.providerID,
		sandboxID:       at.sandboxID,
		live:            map[string]*liveConn{},
		sessions:        map[string]*Session{},
		perms:           map[string]*pendingPermission{},
	}
	if c.hc == nil {
		c.hc = &http.Client{}
	}
	if c.store == nil {
		c.store = NewMemoryStore(MemoryStoreOptions{})
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	if c.clock == nil {
		c.clock = quartz.NewReal()
	}
	if c.replayMaxEvents < 1 {
		c.replayMaxEvents = DefaultReplayMaxEvents
	}
	if c.replayMaxChars < 1 {
		c.replayMaxChars = DefaultReplayMaxChars
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.gate = newHealthGate(c, opts.Health)
	if err := c.gate.wait(ctx); err != nil {
		c.Close(context.Background())
		return nil, err
	}
	return c, nil
}

// BaseURL returns the server's base URL.
func (c *Client) BaseURL() string { return c.url() }

func (c *Client) url() string {
	c.urlMu.RLock()
	defer c.urlMu.RUnlock()
	return c.baseURL
}

// setURL moves the client to a new base URL; connections opened from now on
// use it.
func (c *Client) setURL(u string) {
	c.urlMu.Lock()
	defer c.urlMu.Unlock()
	c.baseURL = strings.TrimSuffix(u, "/")
}

// Store returns the client's SessionStore.
func (c *Client) Store() SessionStore { return c.store }

// InspectorURL returns the URL of the server's web inspector.
func (c *Client) InspectorURL() string { return strings.TrimRight(c.url(), "/") + "/ui/" }

// Close closes every ACP connection (each DELETE bounded by ctx and 2 s),
// cancels pending permission requests and stops background work. The store
// is not closed. It waits for the background work to end only as long as
// ctx allows: it then returns ctx's error wrapped, and the work, already
// cancelled, ends on its own. A later Close waits for the same end.
func (c *Client) Close(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		done := c.closeDone
		c.mu.Unlock()
		return awaitClosed(ctx, done)
	}
	c.closed = true
	done := make(chan struct{})
	c.closeDone = done
	lives := make([]*liveConn, 0, len(c.live))
	for _, l := range c.live {
		lives = append(lives, l)
	}
	c.live = map[string]*liveConn{}
	perms := c.perms
	c.perms = map[string]*pendingPermission{}
	c.mu.Unlock()
	for _, p := range perms {
		p.resolve(cancelledOutcome())
	}
	c.cancel()
	// The teardown runs apart so that Close can give up on it: a stuck
	// store write in the dispatch goroutine, say, must not hold the caller
	// past its deadline.
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		for _, l := range lives {
			wg.Go(func() { _ = l.conn.Close(ctx) })
		}
		wg.Wait()
		c.wg.Wait()
	}()
	return awaitClosed(ctx, done)
}

func awaitClosed(ctx context.Context, done <-chan struct{}) error {
	if err := ctxsync.Wait(ctx, done); err != nil {
		return ctxWaitErr("the client's background work to end", err)
	}
	return nil
}

// header builds the request headers: defaults, token, then per-call.
func (c *Client) setHeaders(req *http.Request) {
	for k, vs := range c.headers {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
}

func (c *Client) authHeader() http.Header {
	h := c.headers.Clone()
	if h == nil {
		h = http.Header{}
	}
	if c.token != "" {
		h.Set("Authorization", "Bearer "+c.token)
	}
	return h
}

type request struct {
	method  string
	path    string
	query   url.Values
	json    any       // JSON body
	body    io.Reader // raw body
	ctype   string    // raw body content type
	accept  string
	noGate  bool
	noCheck bool // return the response whatever the status
}

// do sends r after the health gate and returns the response; non-2xx
// answers become *Error. Network errors re-arm the health gate.
func (c *Client) do(ctx context.Context, r request) (*http.Response, error) {
	if !r.noGate {
		if err := c.gate.wait(ctx); err != nil {
			return nil, err
		}
	}
	u := c.url() + apiPrefix + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	var body io.Reader = r.body
	ctype := r.ctype
	if r.json != nil {
		b, err := json.Marshal(r.json)
		if err != nil {
			return nil, fmt.Errorf("sandboxagent: encode request: %w", err)
		}
		body = bytes.NewReader(b)
		ctype = "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, body)
	if err != nil {
		return nil, err
	}
	c.setHeaders(req)
	if r.accept == "" {
		r.accept = "application/json"
	}
	req.Header.Set("Accept", r.accept)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() == nil && isServerGone(err) {
			c.gate.markUnhealthy(err)
		}
		return nil, err
	}
	if !r.noGate && c.provider != nil && proxyGone(resp) {
		c.gate.markUnhealthy(fmt.Errorf("the sandbox's port proxy answered %s", resp.Status))
	}
	if !r.noCheck && (resp.StatusCode < 200 || resp.StatusCode > 299) {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return nil, newError(resp.StatusCode, b)
	}
	return resp, nil
}

// doJSON sends r and decodes a JSON answer into out (nil: discard).
func (c *Client) doJSON(ctx context.Context, r request, out any) error {
	resp, err := c.do(ctx, r)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil || resp.StatusCode == http.StatusNoContent {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("sandboxagent: decode %s %s: %w", r.method, r.path, err)
	}
	return nil
}

// isServerGone reports network errors that mean the server is not there
// (refused, reset, unreachable) — the ones that re-arm the health gate.
// proxyGone reports an answer that came from a vendor's port proxy in
// front of a sandbox whose server is not there (E2B's 502 "port is not
// open", a stopped Daytona or Vercel sandbox): the server itself answers
// errors as problem+json. The health gate then runs, and EnsureServer with
// it, as for a refused connection.
func proxyGone(resp *http.Response) bool {
	switch resp.StatusCode {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		ct := resp.Header.Get("Content-Type")
		return !strings.HasPrefix(ct, "application/problem+json")
	}
	return false
}

func isServerGone(err error) bool {
	if err == nil {
		return false
	}
	var ne net.Error
	var oe *net.OpError
	if errors.As(err, &oe) || errors.As(err, &ne) {
		return true
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}
