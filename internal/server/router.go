// Package server wires the /v1 HTTP API: the route table, bearer-token
// auth, CORS, the Host allow-list, body limits, problem+json fallbacks and
// the OpenAPI document. It holds no business logic: every capability lives
// in its own package and contributes Routes.
package server

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/internal/httpjson"
	"github.com/sandbox-agent-go/sandbox-agent/internal/problem"
)

// DefaultMaxBodyBytes is upstream's buffered-body limit (2 MiB).
const DefaultMaxBodyBytes = 2 << 20

// DefaultBodyIdleTimeout is how long a request body may deliver nothing.
const DefaultBodyIdleTimeout = 30 * time.Second

// Route is one (method, path) of the API.
type Route struct {
	Method  string // GET, POST, PUT, DELETE; HEAD is derived from GET
	Pattern string // net/http ServeMux path pattern, e.g. /v1/acp/{server_id}
	Handler http.HandlerFunc
	// Open routes need no token (upstream: /, /ui*).
	Open bool
	// QueryToken routes also accept ?access_token= (browser WebSockets).
	QueryToken bool
	// RawBody routes enforce their own body limit (streaming uploads).
	RawBody bool
}

// Config is the HTTP-level configuration.
type Config struct {
	// Token enables bearer auth when AuthEnabled is set. An empty token with
	// auth enabled rejects every request, as upstream does.
	Token       string
	AuthEnabled bool

	CORSOrigins     []string // exact, case-sensitive Origin matches
	CORSMethods     []string // empty: "*"
	CORSHeaders     []string // empty: "*"
	CORSCredentials bool

	// MaxBodyBytes limits buffered request bodies (default 2 MiB).
	MaxBodyBytes int64
	// AllowedHosts, when non-empty, is the Host allow-list against DNS
	// rebinding: requests whose Host (port stripped) is not listed get 403.
	// "*" accepts any Host. See DefaultAllowedHosts.
	AllowedHosts []string
	// BodyIdleTimeout ends a request whose body delivers nothing for this
	// long with 408 (default DefaultBodyIdleTimeout; negative: never).
	BodyIdleTimeout time.Duration

	Logger *slog.Logger
	// LogHTTP logs every finished request (method, path, status, bytes,
	// duration; tokens redacted); LogHTTPHeaders adds the request headers
	// (secrets redacted).
	LogHTTP, LogHTTPHeaders bool
}

// ErrInvalidCORS reports a CORS flag combination browsers cannot honour.
var ErrInvalidCORS = errors.New("invalid CORS configuration")

// Validate rejects configurations upstream panics on, with a clear error.
func (c *Config) Validate() error {
	if slices.Contains(c.CORSOrigins, "*") {
		return fmt.Errorf("%w: wildcard origin (*) is not allowed; list exact origins with --cors-allow-origin", ErrInvalidCORS)
	}
	if c.CORSCredentials && (len(c.CORSMethods) == 0 || len(c.CORSHeaders) == 0) {
		return fmt.Errorf("%w: --cors-allow-credentials needs explicit --cors-allow-method and --cors-allow-header lists (browsers reject credentials with wildcard methods or headers)", ErrInvalidCORS)
	}
	if c.MaxBodyBytes < 0 {
		return fmt.Errorf("max body bytes must not be negative")
	}
	return nil
}

// Handler is the assembled API.
type Handler struct {
	cfg    Config
	mux    *http.ServeMux
	routes []Route
	allowM string
	allowH string
}

// NewHandler validates cfg and builds the handler for routes.
func NewHandler(cfg Config, routes []Route) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.BodyIdleTimeout == 0 {
		cfg.BodyIdleTimeout = DefaultBodyIdleTimeout
	}
	if slices.Contains(cfg.AllowedHosts, "*") {
		cfg.AllowedHosts = nil
	}
	h := &Handler{cfg: cfg, mux: http.NewServeMux(), routes: routes,
		allowM: joinOrStar(cfg.CORSMethods), allowH: joinOrStar(cfg.CORSHeaders)}
	byPattern := map[string]*pathRoutes{}
	var order []string
	for _, rt := range routes {
		pr := byPattern[rt.Pattern]
		if pr == nil {
			pr = &pathRoutes{h: h, methods: map[string]Route{}}
			byPattern[rt.Pattern] = pr
			order = append(order, rt.Pattern)
		}
		if _, dup := pr.methods[rt.Method]; dup {
			return nil, fmt.Errorf("duplicate route %s %s", rt.Method, rt.Pattern)
		}
		pr.methods[rt.Method] = rt
		pr.allow = append(pr.allow, rt.Method)
		if rt.Method == http.MethodGet {
			pr.methods[http.MethodHead] = rt
			pr.allow = append(pr.allow, http.MethodHead)
		}
	}
	for _, p := range order {
		pr := byPattern[p]
		pr.allowHeader = strings.Join(pr.allow, ",")
		h.mux.Handle(p, pr)
	}
	h.mux.HandleFunc("/", h.fallback)
	return h, nil
}

// Routes returns the route table (the OpenAPI test compares against it).
func (h *Handler) Routes() []Route { return h.routes }

func joinOrStar(v []string) string {
	if len(v) == 0 {
		return "*"
	}
	return strings.Join(v, ",")
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.cfg.LogHTTP || h.cfg.LogHTTPHeaders {
		rec := &statusRecorder{ResponseWriter: w}
		start := time.Now()
		defer func() { logRequest(h.cfg.Logger, h.cfg.LogHTTPHeaders, r, rec, time.Since(start)) }()
		w = rec
	}
	g := newGuard(w, r, h.cfg.BodyIdleTimeout, h.cfg.Logger)
	defer g.finish()
	w = g
	if len(h.cfg.AllowedHosts) > 0 && !h.hostAllowed(r.Host) {
		problem.Write(w, problem.Forbidden("host "+r.Host+" is not in the allowed host list; allow it with --allowed-host"))
		return
	}
	// Before CORS, auth and every handler, WebSocket upgrades included.
	if h.crossSite(r) {
		problem.Write(w, crossSiteProblem(r))
		return
	}
	hd := w.Header()
	hd.Set("Vary", "origin, access-control-request-method, access-control-request-headers")
	if o := r.Header.Get("Origin"); o != "" && slices.Contains(h.cfg.CORSOrigins, o) {
		hd.Set("Access-Control-Allow-Origin", o)
	}
	if h.cfg.CORSCredentials {
		hd.Set("Access-Control-Allow-Credentials", "true")
	}
	h.mux.ServeHTTP(w, r)
}

func (h *Handler) hostAllowed(host string) bool {
	if hp, _, err := net.SplitHostPort(host); err == nil {
		host = hp
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	for _, a := range h.cfg.AllowedHosts {
		if strings.EqualFold(a, host) {
			return true
		}
	}
	return false
}

func (h *Handler) preflight(w http.ResponseWriter, allow string) {
	hd := w.Header()
	hd.Set("Access-Control-Allow-Methods", h.allowM)
	hd.Set("Access-Control-Allow-Headers", h.allowH)
	if allow != "" {
		hd.Set("Allow", allow)
	}
	hd.Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
}

func (h *Handler) fallback(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodOptions {
		h.preflight(w, "")
		return
	}
	problem.Write(w, problem.EndpointNotFound())
}

// authorized checks the bearer token in constant time.
func (h *Handler) authorized(r *http.Request, queryToken bool) bool {
	if !h.cfg.AuthEnabled {
		return true
	}
	if h.cfg.Token == "" {
		return false
	}
	want := []byte("Bearer " + h.cfg.Token)
	if got := r.Header.Get("Authorization"); got != "" && subtle.ConstantTimeCompare([]byte(got), want) == 1 {
		return true
	}
	if queryToken {
		if t := r.URL.Query().Get("access_token"); t != "" && subtle.ConstantTimeCompare([]byte(t), []byte(h.cfg.Token)) == 1 {
			return true
		}
	}
	return false
}

type pathRoutes struct {
	h           *Handler
	methods     map[string]Route
	allow       []string
	allowHeader string
}

func (p *pathRoutes) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodOptions {
		p.h.preflight(w, p.allowHeader)
		return
	}
	rt, ok := p.methods[r.Method]
	open := ok && rt.Open
	if !ok {
		// Auth runs before method dispatch, as upstream: pick any route of
		// this path to decide whether the path is open.
		for _, m := range p.methods {
			open = m.Open
			break
		}
	}
	if !open && !p.h.authorized(r, ok && rt.QueryToken) {
		problem.Write(w, problem.Unauthorized())
		return
	}
	if !ok {
		w.Header().Set("Allow", p.allowHeader)
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	if !rt.RawBody && r.ContentLength > p.h.cfg.MaxBodyBytes {
		// Refused before reading: the guard closes the connection instead
		// of draining a body that is known to be too large.
		httpjson.WriteText(w, http.StatusRequestEntityTooLarge, httpjson.BodyTooLargeMsg)
		return
	}
	if !rt.RawBody && r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, p.h.cfg.MaxBodyBytes)
	}
	rt.Handler(w, r)
}
