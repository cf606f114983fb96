//go:build unix

// Package vercelfake is a test fake of the Vercel Sandbox v2 REST API
// (named sandboxes and sessions, @vercel/sandbox ≥ 2), modelled on the
// shapes of Vercel's own @vercel/sandbox-mock, whose sandboxes are real
// fakesandbox sandboxes running real processes.
//
// It serves only what provider/vercel calls: create (POST /v2/sandboxes
// and /v3/sandboxes), get with ?resume=true, delete, and the
// session's cmd (NDJSON with wait:true), fs/write (a gzipped tar),
// stop and extend-timeout. Every request needs the Bearer token and
// ?teamId=; errors are {"error":{"code","message"}} with the vendor's
// statuses: 404 not_found, 410 sandbox_stopped, 422 sandbox_stopping.
//
// Beyond the mock it simulates the session timeout (at expiry the session
// is stopped: its processes are killed, the port URL stops answering and
// commands get 410), resume=true starting a new session with nothing
// running, extend-timeout (bounded by Options.MaxTimeout), and deletion
// (404 afterwards). Port URLs are served by a separate proxy server,
// path-routed by the route's subdomain (<name>-<port>) because loopback
// has no wildcard DNS: SandboxURL gives the URL the provider should use.
package vercelfake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/provider/internal/fakesandbox"
)

// Defaults of Options.
const (
	DefaultToken     = "vercel-test-token"
	DefaultTeamID    = "team_fake"
	DefaultProjectID = "prj_fake"
	// Home and Cwd of a sandbox, as on Vercel (the session's cwd is not
	// the user's home).
	Home = "/home/vercel-sandbox"
	Cwd  = "/vercel/sandbox"
	// defaultTimeout is the vendor's session timeout when create sends
	// none.
	defaultTimeout = 5 * time.Minute
)

// Options configure the fake.
type Options struct {
	// Token, TeamID and ProjectID the fake accepts (defaults above).
	Token, TeamID, ProjectID string
	// MaxTimeout is the plan's longest session: a create or an extension
	// beyond it is refused with 400. Zero: no limit.
	MaxTimeout time.Duration
}

// Fake is a running fake. The exported fields are set by New.
type Fake struct {
	// APIURL is the control plane (Options.APIURL of the provider).
	APIURL string
	// ProxyURL serves the sandboxes' port URLs; see SandboxURL.
	ProxyURL string
	// Faults fails the next API requests and logs every one.
	Faults *fakesandbox.Faults

	dir   string // sandboxes' directories go here
	o     Options
	api   *httptest.Server
	proxy *httptest.Server

	mu        sync.Mutex
	seq       int
	sandboxes map[string]*sandbox // live ones, by name
	all       map[string]*sandbox // also deleted ones (Leftovers)
	sessions  map[string]*session
	creates   []map[string]any
}

type sandbox struct {
	name       string
	box        *fakesandbox.Sandbox
	ports      []int
	timeout    int64 // ms, for every new session
	persistent bool
	runtime    string
	image      string
	createdAt  int64
	cur        *session
	sessions   int
	starts     int // server starts (daemon start that brought a server up)
}

type session struct {
	id        string
	sb        *sandbox
	status    string // pending, running, stopping, stopped, ...
	timeout   int64  // ms
	startedAt int64  // ms
	stoppedAt int64
	timer     *time.Timer
}

// New starts a fake; it is shut down, with every sandbox destroyed, when
// the test ends.
func New(t testing.TB, o Options) *Fake {
	f := Start(t.TempDir(), o)
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Error(err)
		}
	})
	return f
}

// Start starts a fake whose sandboxes live under dir, for code without a
// *testing.T (examples); Close shuts it down.
func Start(dir string, o Options) *Fake {
	if o.Token == "" {
		o.Token = DefaultToken
	}
	if o.TeamID == "" {
		o.TeamID = DefaultTeamID
	}
	if o.ProjectID == "" {
		o.ProjectID = DefaultProjectID
	}
	f := &Fake{dir: dir, o: o, Faults: &fakesandbox.Faults{}, sandboxes: map[string]*sandbox{}, all: map[string]*sandbox{}, sessions: map[string]*session{}}
	f.api = httptest.NewServer(f.Faults.Wrap(f.auth(f.routes())))
	f.proxy = httptest.NewServer(&fakesandbox.Proxy{Route: f.route, Unavailable: unavailable})
	f.APIURL, f.ProxyURL = f.api.URL, f.proxy.URL
	return f
}

// Close destroys every sandbox (killing its processes) and stops the
// servers.
func (f *Fake) Close() error {
	f.mu.Lock()
	var boxes []*fakesandbox.Sandbox
	for _, sb := range f.all {
		boxes = append(boxes, sb.box)
	}
	for _, s := range f.sessions {
		s.timer.Stop()
	}
	f.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Processes first: a command still running holds its handler, which
	// Close would wait for.
	var errs []error
	for _, b := range boxes {
		if err := b.Destroy(ctx); err != nil {
			errs = append(errs, fmt.Errorf("vercelfake: destroy %s: %w", b.ID, err))
		}
	}
	f.api.Close()
	f.proxy.Close()
	return errors.Join(errs...)
}

// Token, TeamID and ProjectID are the credentials the fake accepts.
func (f *Fake) Token() string     { return f.o.Token }
func (f *Fake) TeamID() string    { return f.o.TeamID }
func (f *Fake) ProjectID() string { return f.o.ProjectID }

var nonAlnum = regexp.MustCompile(`[^a-z0-9]+`)

// Subdomain is the route subdomain of a sandbox's port, as the mock makes
// it: <name>-<port>.
func Subdomain(name string, port int) string {
	return nonAlnum.ReplaceAllString(strings.ToLower(name), "-") + "-" + strconv.Itoa(port)
}

// SandboxURL is the loopback URL of the port's route (path-routed on
// ProxyURL): the provider's Options.SandboxURL.
func (f *Fake) SandboxURL(name string, port int) string {
	return f.ProxyURL + "/" + Subdomain(name, port)
}

func (f *Fake) route(r *http.Request) (*fakesandbox.Sandbox, int, bool) {
	sub, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, sb := range f.sandboxes {
		for _, p := range sb.ports {
			if Subdomain(sb.name, p) == sub {
				r.URL.Path = "/" + rest
				r.URL.RawPath = ""
				return sb.box, p, true
			}
		}
	}
	return nil, 0, false
}

// unavailable answers a port URL that reaches no server: a deleted
// sandbox's host is unknown (404); a stopped session's answers 502.
func unavailable(w http.ResponseWriter, _ *http.Request, err error) {
	status, code := http.StatusBadGateway, "sandbox_unavailable"
	switch {
	case isErr(err, fakesandbox.ErrNotFound):
		status, code = http.StatusNotFound, "not_found"
	case isErr(err, fakesandbox.ErrNotRunning):
		code = "sandbox_stopped"
	}
	writeJSON(w, status, errBody(code, err.Error()))
}

func (f *Fake) lookup(name string) (*sandbox, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sb, ok := f.all[name]
	if !ok {
		return nil, fmt.Errorf("vercelfake: no sandbox %q", name)
	}
	return sb, nil
}

// Expire makes the sandbox's session time out now, as its timer would: it
// is stopped, its processes are killed, its port stops answering.
func (f *Fake) Expire(t testing.TB, name string) {
	t.Helper()
	f.stopCurrent(t, name, "stopped")
}

// stopCurrent stops the sandbox's current session, failing t.
func (f *Fake) stopCurrent(t testing.TB, name, status string) *session {
	t.Helper()
	f.mu.Lock()
	var s *session
	if sb, ok := f.sandboxes[name]; ok {
		s = sb.cur
	}
	f.mu.Unlock()
	if s == nil {
		t.Fatalf("vercelfake: no sandbox %q", name)
	}
	if err := f.stop(s, status); err != nil {
		t.Fatalf("vercelfake: stop %s: %v", name, err)
	}
	return s
}

// HoldStopping puts the sandbox's session in "stopping" (its processes
// killed) until release is called, which completes the stop: meanwhile
// commands answer 422 sandbox_stopping and a resume does not start a new
// session.
func (f *Fake) HoldStopping(t testing.TB, name string) (release func()) {
	t.Helper()
	s := f.stopCurrent(t, name, "stopping")
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if s.status == "stopping" {
			s.status, s.stoppedAt = "stopped", nowMS()
		}
	}
}

// Delete deletes the sandbox on the vendor's side (the dashboard, another
// client): afterwards every call about it answers 404.
func (f *Fake) Delete(t testing.TB, name string) {
	t.Helper()
	if err := f.remove(name); err != nil {
		t.Fatalf("vercelfake: Delete %s: %v", name, err)
	}
}

// Leftovers lists the sandbox's processes still alive.
func (f *Fake) Leftovers(name string) []int {
	sb, err := f.lookup(name)
	if err != nil {
		return nil
	}
	return sb.box.Leftovers()
}

// ServerStarts counts the commands that ran `daemon start` and brought a
// server up on a port that answered nothing before.
func (f *Fake) ServerStarts(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if sb, ok := f.all[name]; ok {
		return sb.starts
	}
	return 0
}

// SessionInfo describes a sandbox's current session.
type SessionInfo struct {
	ID      string
	Status  string
	Timeout time.Duration
	// Count is how many sessions the sandbox has had.
	Count int
}

// Session reports the sandbox's current session.
func (f *Fake) Session(name string) (SessionInfo, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sb, ok := f.sandboxes[name]
	if !ok || sb.cur == nil {
		return SessionInfo{}, false
	}
	s := sb.cur
	return SessionInfo{ID: s.id, Status: s.status, Timeout: time.Duration(s.timeout) * time.Millisecond, Count: sb.sessions}, true
}

// Creates returns the bodies of the create requests, decoded.
func (f *Fake) Creates() []map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]map[string]any(nil), f.creates...)
}

// Names lists the live sandboxes.
func (f *Fake) Names() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ns []string
	for n := range f.sandboxes {
		ns = append(ns, n)
	}
	return ns
}

func nowMS() int64 { return time.Now().UnixMilli() }

func errBody(code, msg string) map[string]any {
	return map[string]any{"error": map[string]string{"code": code, "message": msg}}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func apiError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, errBody(code, msg))
}

// listening reports whether something accepts connections on the real
// port behind the sandbox's logical port.
func listening(box *fakesandbox.Sandbox, logical int) bool {
	p, err := box.Port(logical)
	if err != nil {
		return false
	}
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(p), time.Second)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

func mkdirAll(box *fakesandbox.Sandbox, p string) error {
	return os.MkdirAll(box.HostPath(p), 0o755)
}
