//go:build unix

package daytonafake

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/provider/internal/fakesandbox"
)

// Defaults.
const (
	DefaultAPIKey        = "daytona-test-key"
	DefaultHome          = "/home/daytona"
	DefaultPreviewDomain = "proxy.daytona.test"
	// VendorAutoStop is Daytona's autoStopInterval when a create request
	// leaves it out, in minutes.
	VendorAutoStop = 15
)

// Options configure the fake.
type Options struct {
	// APIKey is the only Bearer accepted; default DefaultAPIKey.
	APIKey string
	// BootSteps is how many API requests about a new (or started) sandbox
	// see it "starting" before "started": a slow boot.
	BootSteps int
	// BuildFailure makes a sandbox created from an image end in
	// "build_failed" with this errorReason.
	BuildFailure string
	// Home is the sandbox user's $HOME; default /home/daytona.
	Home string
	// PreviewDomain is the preview hosts' domain; default
	// proxy.daytona.test.
	PreviewDomain string
}

// Fake is a running fake Daytona. Its fields are read-only.
type Fake struct {
	// APIURL is the control plane's base URL (Options.APIURL of the
	// provider).
	APIURL string
	// Faults fails the next control-plane or toolbox requests and logs
	// them all.
	Faults *fakesandbox.Faults

	o     Options
	srv   *httptest.Server
	dir   string
	tr    *http.Transport
	proxy *fakesandbox.Proxy

	mu     sync.Mutex
	boxes  map[string]*box
	signed map[string]*signedURL
	gone   map[string]*fakesandbox.Sandbox // deleted, kept for Leftovers
	starts map[string]int                  // server starts by sandbox
	// creates are the create bodies received, in order.
	creates []map[string]any
}

// box is one sandbox as the control plane sees it.
type box struct {
	sb          *fakesandbox.Sandbox
	id          string
	state       string
	next        []string // pending transition: one step per request
	onStarted   func() error
	errorReason string
	authToken   string
	autoStop    int // minutes; 0 = never
	idle        time.Duration
	public      bool
	body        map[string]any
}

type signedURL struct {
	id      string
	port    int
	expires time.Time
}

// New starts a fake that t's cleanup closes.
func New(t testing.TB, o Options) *Fake {
	t.Helper()
	f, err := Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

// Start starts a fake; Close stops it and destroys every sandbox.
func Start(o Options) (*Fake, error) {
	if o.APIKey == "" {
		o.APIKey = DefaultAPIKey
	}
	if o.Home == "" {
		o.Home = DefaultHome
	}
	if o.PreviewDomain == "" {
		o.PreviewDomain = DefaultPreviewDomain
	}
	dir, err := os.MkdirTemp("", "daytonafake-")
	if err != nil {
		return nil, err
	}
	f := &Fake{o: o, dir: dir, Faults: &fakesandbox.Faults{}, boxes: map[string]*box{},
		signed: map[string]*signedURL{}, gone: map[string]*fakesandbox.Sandbox{}, starts: map[string]int{}}
	f.proxy = &fakesandbox.Proxy{Route: f.route, Unavailable: f.unavailable}
	mux := http.NewServeMux()
	f.apiRoutes(mux)
	f.toolboxRoutes(mux)
	api := f.Faults.Wrap(mux)
	// Unstarted, so that f.srv is set before the serving goroutine exists:
	// handlers read f.srv.URL (toolboxURL).
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f.isPreview(r.Host) {
			f.servePreview(w, r)
			return
		}
		api.ServeHTTP(w, r)
	}))
	f.srv.Start()
	f.APIURL = f.srv.URL + "/api"
	addr := f.srv.Listener.Addr().String()
	f.tr = http.DefaultTransport.(*http.Transport).Clone()
	f.tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	return f, nil
}

// Client is an HTTP client that reaches the fake for every host, so the
// preview hosts need no DNS. Give it to the provider as Options.HTTPClient.
func (f *Fake) Client() *http.Client { return &http.Client{Transport: f.tr} }

// Close destroys every sandbox (killing its processes) and stops the
// server.
func (f *Fake) Close() {
	f.mu.Lock()
	boxes := make([]*box, 0, len(f.boxes))
	for _, b := range f.boxes {
		boxes = append(boxes, b)
	}
	f.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, b := range boxes {
		_ = b.sb.Destroy(ctx)
	}
	f.tr.CloseIdleConnections()
	f.srv.CloseClientConnections()
	f.srv.Close()
	_ = os.RemoveAll(f.dir)
}

// Creates returns the create bodies received so far.
func (f *Fake) Creates() []map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]map[string]any(nil), f.creates...)
}

// State is the sandbox's current SandboxState ("" once deleted).
func (f *Fake) State(id string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if b := f.boxes[id]; b != nil {
		return b.state
	}
	return ""
}

// Sandbox is the fakesandbox behind id (nil if unknown or deleted).
func (f *Fake) Sandbox(id string) *fakesandbox.Sandbox {
	f.mu.Lock()
	defer f.mu.Unlock()
	if b := f.boxes[id]; b != nil {
		return b.sb
	}
	return nil
}

// ServerStarts counts the toolbox commands that started a sandbox-agent
// daemon in id (`daemon start` printing "daemon started").
func (f *Fake) ServerStarts(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.starts[id]
}

// Leftovers lists id's processes still alive, also after its deletion.
func (f *Fake) Leftovers(id string) []int {
	f.mu.Lock()
	sb := f.gone[id]
	if b := f.boxes[id]; b != nil {
		sb = b.sb
	}
	f.mu.Unlock()
	if sb == nil {
		return nil
	}
	return sb.Leftovers()
}

// Idle advances the sandbox's idle clock by d (compressed time). When it
// reaches the sandbox's autoStopInterval (none if 0) Daytona stops it:
// its processes are killed and its preview URL stops answering. It
// reports whether the sandbox was stopped.
func (f *Fake) Idle(t testing.TB, id string, d time.Duration) bool {
	t.Helper()
	f.mu.Lock()
	b := f.boxes[id]
	if b == nil {
		f.mu.Unlock()
		t.Fatalf("daytonafake: Idle: no sandbox %s", id)
	}
	b.idle += d
	stop := b.state == "started" && b.autoStop > 0 && b.idle >= time.Duration(b.autoStop)*time.Minute
	if stop {
		b.state, b.next = "stopped", nil
	}
	f.mu.Unlock()
	if stop {
		if err := b.sb.Pause(t.Context(), fakesandbox.Kill); err != nil {
			t.Fatalf("daytonafake: auto-stop %s: %v", id, err)
		}
	}
	return stop
}

// Delete deletes the sandbox behind the provider's back: its processes
// are killed and every request about it answers 404.
func (f *Fake) Delete(t testing.TB, id string) {
	t.Helper()
	f.mu.Lock()
	b := f.boxes[id]
	delete(f.boxes, id)
	if b != nil {
		f.gone[id] = b.sb
	}
	f.mu.Unlock()
	if b == nil {
		t.Fatalf("daytonafake: Delete: no sandbox %s", id)
	}
	if err := b.sb.Destroy(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// RotatePreviewToken gives the sandbox a new preview token: requests with
// the old one get 401.
func (f *Fake) RotatePreviewToken(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if b := f.boxes[id]; b != nil {
		b.authToken = randomHex(16)
	}
}

// ExpireSignedURLs expires every signed preview URL issued so far.
func (f *Fake) ExpireSignedURLs() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.signed {
		s.expires = time.Time{}
	}
}

// step advances a pending transition by one step; reaching "started" runs
// its side effect (the boot finishing, or the resume). Called with f.mu.
func (b *box) step() {
	if len(b.next) == 0 {
		return
	}
	b.state, b.next = b.next[0], b.next[1:]
	if b.state == "started" && b.onStarted != nil {
		if err := b.onStarted(); err != nil {
			b.state, b.errorReason = "error", err.Error()
		}
		b.onStarted = nil
		b.idle = 0
	}
}

func (b *box) json(toolboxURL string) map[string]any {
	m := map[string]any{}
	for k, v := range b.body {
		m[k] = v
	}
	m["id"], m["name"], m["state"], m["user"] = b.id, b.id, b.state, "daytona"
	m["desiredState"] = "started"
	if b.state == "stopped" || b.state == "stopping" {
		m["desiredState"] = "stopped"
	}
	m["errorReason"], m["recoverable"] = b.errorReason, false
	m["autoStopInterval"], m["public"] = b.autoStop, b.public
	m["toolboxProxyUrl"] = toolboxURL
	delete(m, "buildInfo")
	return m
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// nestError writes the API's error body (its NestJS exception filter).
func nestError(w http.ResponseWriter, r *http.Request, status int, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"path": r.URL.Path, "timestamp": time.Now().UTC().Format(time.RFC3339),
		"statusCode": status, "error": http.StatusText(status), "message": message})
}

// goError writes the toolbox's and proxy's error body (common-go).
func goError(w http.ResponseWriter, r *http.Request, status int, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"statusCode": status, "message": message,
		"code":      strings.ToUpper(strings.ReplaceAll(http.StatusText(status), " ", "_")),
		"timestamp": time.Now().UTC().Format(time.RFC3339), "path": r.URL.Path, "method": r.Method})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (f *Fake) authorized(r *http.Request) bool {
	return r.Header.Get("Authorization") == "Bearer "+f.o.APIKey
}

func (f *Fake) String() string { return fmt.Sprintf("daytonafake(%s)", f.srv.URL) }
