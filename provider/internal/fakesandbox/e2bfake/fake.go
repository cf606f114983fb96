//go:build unix

package e2bfake

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/provider/internal/fakesandbox"
)

// Defaults.
const (
	DefaultDomain = "e2b.test"
	DefaultAPIKey = "e2b_0123456789abcdef"
	EnvdPort      = 49983
)

// Options configure New.
type Options struct {
	// APIKey the control API accepts; default DefaultAPIKey.
	APIKey string
	// Domain of the API (api.<Domain>) and sandbox hosts; default e2b.test.
	Domain string
	// PauseLosesMemory makes every pause (the API's and Expire's) a pause
	// with memory:false: the sandbox's processes die and resume is a cold
	// boot. By default a pause keeps a memory snapshot (processes frozen
	// and continued on resume), unless the pause request says memory:false.
	PauseLosesMemory bool
	// OldEnvd makes the sandboxes' envd version 0.3.9 (else 0.5.7): before
	// 0.4.0 envd has no default user, so /files needs ?username= and
	// commands an Authorization: Basic naming the user.
	OldEnvd bool
}

// Fake is one fake E2B. Its fields are read-only.
type Fake struct {
	// Domain of the fake.
	Domain string
	// APIURL is the control API's base URL, http://api.<Domain>.
	APIURL string
	// Faults wraps the control API: queue 401/429/5xx answers, read the
	// request log.
	Faults fakesandbox.Faults

	dir       string // the sandboxes' directories
	o         Options
	srv       *httptest.Server
	transport *http.Transport
	client    *http.Client
	proxy     *fakesandbox.Proxy
	api       http.Handler

	mu      sync.Mutex
	boxes   map[string]*box
	creates []map[string]any
	hold    chan struct{} // non-nil: creates wait until it is closed
}

// box is one sandbox and its E2B-side state.
type box struct {
	sb           *fakesandbox.Sandbox
	template     string
	envdToken    string
	trafficToken string
	public       bool
	autoPause    bool
	startedAt    time.Time
	endAt        time.Time
	starts       int
	execs        []Exec
}

// Exec is one process.Process/Start request envd received.
type Exec struct {
	// Command is the shell script (the -c argument of bash), as run.
	Command string
	// Header is the request's header (e.g. Connect-Timeout-Ms).
	Header http.Header
	// Done is closed when the process has exited.
	Done <-chan struct{}
}

// New starts a fake that is closed at the end of the test.
func New(t testing.TB, o Options) *Fake {
	t.Helper()
	f, err := Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Error(err)
		}
	})
	return f
}

// Start starts a fake; Close stops it. (New is the form for tests.)
func Start(o Options) (*Fake, error) {
	if o.APIKey == "" {
		o.APIKey = DefaultAPIKey
	}
	if o.Domain == "" {
		o.Domain = DefaultDomain
	}
	dir, err := os.MkdirTemp("", "e2bfake-")
	if err != nil {
		return nil, fmt.Errorf("e2bfake: %w", err)
	}
	f := &Fake{Domain: o.Domain, APIURL: "http://api." + o.Domain, dir: dir, o: o, boxes: map[string]*box{}}
	f.api = f.Faults.Wrap(f.apiMux())
	f.proxy = &fakesandbox.Proxy{Route: f.route, Unavailable: f.unavailable}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	addr := f.srv.Listener.Addr().String()
	f.transport = &http.Transport{
		// Every host of the domain is this listener, as E2B's edge is.
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			host, _, _ := net.SplitHostPort(a)
			if host != f.Domain && !strings.HasSuffix(host, "."+f.Domain) {
				return nil, &net.DNSError{Err: "not a host of the fake E2B", Name: host, IsNotFound: true}
			}
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		},
	}
	f.client = &http.Client{Transport: f.transport}
	return f, nil
}

// Close destroys every sandbox (waiting for their processes) and stops
// the fake.
func (f *Fake) Close() error {
	f.mu.Lock()
	boxes := make([]*box, 0, len(f.boxes))
	for _, b := range f.boxes {
		boxes = append(boxes, b)
	}
	if f.hold != nil {
		close(f.hold)
		f.hold = nil
	}
	f.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs []error
	for _, b := range boxes {
		if err := b.sb.Destroy(ctx); err != nil {
			errs = append(errs, fmt.Errorf("e2bfake: destroy %s: %w", b.sb.ID, err))
		}
	}
	f.srv.CloseClientConnections()
	f.srv.Close()
	f.transport.CloseIdleConnections()
	errs = append(errs, os.RemoveAll(f.dir))
	return errors.Join(errs...)
}

// APIKey is the key the control API accepts.
func (f *Fake) APIKey() string { return f.o.APIKey }

// Client reaches every host of the fake's domain.
func (f *Fake) Client() *http.Client { return f.client }

// SandboxURL is E2B's host scheme with http: http://<port>-<id>.<domain>.
func (f *Fake) SandboxURL(id string, port int) string {
	return "http://" + strconv.Itoa(port) + "-" + id + "." + f.Domain
}

func (f *Fake) serve(w http.ResponseWriter, r *http.Request) {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host == "api."+f.Domain {
		f.api.ServeHTTP(w, r)
		return
	}
	id, port, ok := f.sandboxHost(r, host)
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]any{"code": 404, "message": "unknown host " + host})
		return
	}
	b := f.box(id)
	if b != nil && !b.public && port != EnvdPort && r.Header.Get("e2b-traffic-access-token") != b.trafficToken {
		writeJSON(w, http.StatusForbidden, map[string]any{"sandboxId": id, "code": 403,
			"message": "Missing or invalid traffic access token (e2b-traffic-access-token) for a sandbox without public traffic"})
		return
	}
	if port == EnvdPort {
		f.envd(w, r, id, b)
		return
	}
	f.proxy.ServeHTTP(w, r)
}

// sandboxHost parses <port>-<id>.<domain>, or the shared host
// sandbox.<domain> with the E2b-Sandbox-Id and E2b-Sandbox-Port headers.
func (f *Fake) sandboxHost(r *http.Request, host string) (id string, port int, ok bool) {
	if host == "sandbox."+f.Domain {
		id = r.Header.Get("E2b-Sandbox-Id")
		p, err := strconv.Atoi(r.Header.Get("E2b-Sandbox-Port"))
		return id, p, err == nil && id != ""
	}
	sub, ok := strings.CutSuffix(host, "."+f.Domain)
	if !ok {
		return "", 0, false
	}
	ps, id, ok := strings.Cut(sub, "-")
	p, err := strconv.Atoi(ps)
	return id, p, ok && err == nil && id != ""
}

func (f *Fake) route(r *http.Request) (*fakesandbox.Sandbox, int, bool) {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	id, port, ok := f.sandboxHost(r, host)
	if !ok {
		return nil, 0, false
	}
	b := f.box(id)
	if b == nil {
		return nil, 0, false
	}
	return b.sb, port, true
}

// unavailable answers as E2B's proxy does for a non-browser client: 502
// JSON, "not found" for an unknown, deleted or paused sandbox, "port is
// not open" when nothing listens.
func (f *Fake) unavailable(w http.ResponseWriter, r *http.Request, err error) {
	host := r.Host
	if h, _, e := net.SplitHostPort(host); e == nil {
		host = h
	}
	id, port, _ := f.sandboxHost(r, host)
	notFound(w, id, port, err)
}

func notFound(w http.ResponseWriter, id string, port int, err error) {
	if err == nil || isGone(err) {
		writeJSON(w, http.StatusBadGateway, map[string]any{"sandboxId": id, "message": "The sandbox was not found", "code": 502})
		return
	}
	writeJSON(w, http.StatusBadGateway, map[string]any{"sandboxId": id, "message": "The sandbox is running but port is not open", "port": port, "code": 502})
}

func (f *Fake) box(id string) *box {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.boxes[id]
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
