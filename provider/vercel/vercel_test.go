//go:build unix

package vercel_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	sandboxagent "github.com/sandbox-agent-go/sandbox-agent"
	"github.com/sandbox-agent-go/sandbox-agent/internal/testutil/testbin"
	"github.com/sandbox-agent-go/sandbox-agent/provider"
	"github.com/sandbox-agent-go/sandbox-agent/provider/internal/fakesandbox"
	"github.com/sandbox-agent-go/sandbox-agent/provider/internal/fakesandbox/vercelfake"
	"github.com/sandbox-agent-go/sandbox-agent/provider/internal/providertest"
	"github.com/sandbox-agent-go/sandbox-agent/provider/vercel"
)

var bin string

func TestMain(m *testing.M) { os.Exit(testbin.Main(m, &bin)) }

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// options points a provider at f, with the test binary uploaded.
func options(f *vercelfake.Fake) vercel.Options {
	return vercel.Options{
		Token: f.Token(), TeamID: f.TeamID(), ProjectID: f.ProjectID(),
		APIURL: f.APIURL, SandboxURL: f.SandboxURL,
		Install: provider.Install{BinaryPath: bin},
		Logger:  quiet(),
	}
}

func newProvider(t *testing.T, f *vercelfake.Fake, mod func(*vercel.Options)) *vercel.Provider {
	t.Helper()
	o := options(f)
	if mod != nil {
		mod(&o)
	}
	p, err := vercel.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConformance(t *testing.T) {
	providertest.Run(t, "vercel", func(t *testing.T) providertest.Fixture {
		f := vercelfake.New(t, vercelfake.Options{})
		return providertest.Fixture{
			NewProvider:      func(t *testing.T) sandboxagent.SandboxProvider { return newProvider(t, f, nil) },
			Sleep:            func(t *testing.T, id string) { f.Expire(t, id) },
			SleepLosesServer: true,
			Delete:           func(t *testing.T, id string) { f.Delete(t, id) },
			Leftovers:        f.Leftovers,
			ServerStarts:     f.ServerStarts,
		}
	})
}

// create makes a sandbox through the provider (no client) and destroys it
// at the end.
func create(t *testing.T, p *vercel.Provider) string {
	t.Helper()
	name, err := p.Create(t.Context())
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() { _ = p.Destroy(context.Background(), name) })
	return name
}

func TestCreateBodyCarriesLifetimeKnobs(t *testing.T) {
	tests := []struct {
		name     string
		mod      func(*vercel.Options)
		path     string
		timeout  float64
		runtime  string
		image    string
		resource bool
	}{
		{"defaults", nil, "/v3/sandboxes", float64(vercel.DefaultTimeout.Milliseconds()), "", "", false},
		{"runtime", func(o *vercel.Options) { o.Runtime, o.Timeout, o.VCPUs = "node24", 10*time.Minute, 4 },
			"/v2/sandboxes", float64((10 * time.Minute).Milliseconds()), "node24", "", true},
		{"image", func(o *vercel.Options) { o.Image = "vercel/sandbox/universal" }, "/v3/sandboxes",
			float64(vercel.DefaultTimeout.Milliseconds()), "", "vercel/sandbox/universal", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := vercelfake.New(t, vercelfake.Options{})
			p := newProvider(t, f, func(o *vercel.Options) {
				o.Env = map[string]string{"ANTHROPIC_API_KEY": "sk-test"}
				if tc.mod != nil {
					tc.mod(o)
				}
			})
			name := create(t, p)
			if !strings.HasPrefix(name, vercel.NamePrefix) {
				t.Fatalf("name %q", name)
			}
			var createPath string
			for _, r := range f.Faults.Log() {
				if r.Method == http.MethodPost && strings.HasSuffix(r.Path, "/sandboxes") {
					createPath = r.Path
				}
			}
			b := f.Creates()[0]
			ports, _ := b["ports"].([]any)
			env, _ := b["env"].(map[string]any)
			if createPath != tc.path || b["name"] != name || b["projectId"] != f.ProjectID() || len(ports) != 1 || ports[0] != float64(3000) ||
				b["timeout"] != tc.timeout || b["persistent"] != true || env["ANTHROPIC_API_KEY"] != "sk-test" ||
				(b["runtime"] != nil) != (tc.runtime != "") || (b["image"] != nil) != (tc.image != "") ||
				(b["resources"] != nil) != tc.resource {
				t.Fatalf("create %s body: %v", createPath, b)
			}
			if s, _ := f.Session(name); s.Timeout != time.Duration(tc.timeout)*time.Millisecond {
				t.Fatalf("session timeout %v", s.Timeout)
			}
		})
	}
}

func TestMissingCredentials(t *testing.T) {
	jwt := func(payload string) string {
		return "eyJhbGciOiJub25lIn0." + strings.TrimRight(b64(payload), "=") + ".sig"
	}
	tests := []struct {
		name    string
		env     map[string]string
		o       vercel.Options
		option  string
		envVars []string
	}{
		{"nothing", nil, vercel.Options{}, "Token", []string{"VERCEL_TOKEN", "VERCEL_OIDC_TOKEN"}},
		{"no team", map[string]string{"VERCEL_TOKEN": "t", "VERCEL_PROJECT_ID": "p"}, vercel.Options{}, "TeamID", []string{"VERCEL_TEAM_ID"}},
		{"no project", map[string]string{"VERCEL_TOKEN": "t", "VERCEL_TEAM_ID": "team"}, vercel.Options{}, "ProjectID", []string{"VERCEL_PROJECT_ID"}},
		{"oidc without project claim", map[string]string{"VERCEL_OIDC_TOKEN": jwt(`{"owner_id":"team_x"}`)}, vercel.Options{}, "ProjectID", []string{"VERCEL_PROJECT_ID"}},
		{"token option, no team", nil, vercel.Options{Token: "t", ProjectID: "p"}, "TeamID", []string{"VERCEL_TEAM_ID"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"VERCEL_TOKEN", "VERCEL_OIDC_TOKEN", "VERCEL_TEAM_ID", "VERCEL_PROJECT_ID"} {
				t.Setenv(k, tc.env[k])
			}
			_, err := vercel.New(tc.o)
			var mc *sandboxagent.MissingCredentialsError
			if !errors.As(err, &mc) || mc.Provider != "vercel" || mc.Option != tc.option || strings.Join(mc.EnvVars, ",") != strings.Join(tc.envVars, ",") {
				t.Fatalf("New: %v", err)
			}
			for _, v := range tc.envVars {
				if !strings.Contains(err.Error(), v) {
					t.Fatalf("%q does not name %s", err, v)
				}
			}
		})
	}
}

// TestOIDCToken: the team and project come from the token's claims, and
// every request carries the token and ?teamId=.
func TestOIDCToken(t *testing.T) {
	token := "eyJhbGciOiJSUzI1NiJ9." + strings.TrimRight(b64(`{"owner_id":"team_oidc","project_id":"prj_oidc","sub":"owner:x"}`), "=") + ".c2ln"
	f := vercelfake.New(t, vercelfake.Options{Token: token, TeamID: "team_oidc", ProjectID: "prj_oidc"})
	for _, k := range []string{"VERCEL_TOKEN", "VERCEL_TEAM_ID", "VERCEL_PROJECT_ID"} {
		t.Setenv(k, "")
	}
	t.Setenv("VERCEL_OIDC_TOKEN", token)
	p, err := vercel.New(vercel.Options{APIURL: f.APIURL, SandboxURL: f.SandboxURL, Install: provider.Install{BinaryPath: bin}, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	create(t, p)
	log := f.Faults.Log()
	if len(log) < 4 {
		t.Fatalf("only %d requests", len(log))
	}
	for _, r := range log {
		if r.Header.Get("Authorization") != "Bearer "+token || r.Status != 0 {
			t.Fatalf("%s %s: %v %d", r.Method, r.Path, r.Header, r.Status)
		}
	}
}

func TestUnauthorizedIsNotRetried(t *testing.T) {
	for _, status := range []int{http.StatusUnauthorized, http.StatusForbidden} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			f := vercelfake.New(t, vercelfake.Options{})
			f.Faults.FailNext(5, fakesandbox.Fault{Status: status, Body: `{"error":{"code":"forbidden","message":"Not authorized"}}`})
			p := newProvider(t, f, nil)
			_, err := p.Create(t.Context())
			var ae *sandboxagent.ProviderAPIError
			if !errors.Is(err, sandboxagent.ErrProviderUnauthorized) || !errors.As(err, &ae) || ae.StatusCode != status || ae.Code != "forbidden" {
				t.Fatalf("Create: %v", err)
			}
			if n := len(f.Faults.Log()); n != 1 {
				t.Fatalf("%d requests, want 1 (no retry)", n)
			}
		})
	}
	// The fake's own refusal of a wrong token, too.
	f := vercelfake.New(t, vercelfake.Options{})
	p := newProvider(t, f, func(o *vercel.Options) { o.Token = "wrong" })
	if _, err := p.Create(t.Context()); !errors.Is(err, sandboxagent.ErrProviderUnauthorized) || len(f.Faults.Log()) != 1 {
		t.Fatalf("Create with a wrong token: %v (%d requests)", err, len(f.Faults.Log()))
	}
}

func TestRateLimitIsRetried(t *testing.T) {
	f := vercelfake.New(t, vercelfake.Options{})
	f.Faults.FailNext(2, fakesandbox.Fault{Status: http.StatusTooManyRequests, RetryAfter: time.Second,
		Body: `{"error":{"code":"rate_limited","message":"slow down"}}`})
	p := newProvider(t, f, nil)
	name := create(t, p)
	log := f.Faults.Log()
	if len(log) < 3 || log[0].Status != 429 || log[1].Status != 429 || log[2].Status != 0 || log[2].Path != "/v3/sandboxes" {
		t.Fatalf("requests: %+v", log[:min(3, len(log))])
	}
	if len(f.Creates()) != 1 || f.Creates()[0]["name"] != name {
		t.Fatalf("creates: %v", f.Creates())
	}
}

func TestURLFromRoutes(t *testing.T) {
	f := vercelfake.New(t, vercelfake.Options{})
	p := newProvider(t, f, nil)
	name := create(t, p)
	// Default: the route's subdomain on vercel.run.
	def := newProvider(t, f, func(o *vercel.Options) { o.SandboxURL = nil })
	u, err := def.URL(t.Context(), name)
	if want := "https://" + vercelfake.Subdomain(name, 3000) + ".vercel.run"; err != nil || u != want {
		t.Fatalf("URL %q %v, want %s", u, err, want)
	}
	// A port without a route is an error, not a guessed URL.
	other := newProvider(t, f, func(o *vercel.Options) { o.Port = 4000 })
	if _, err := other.URL(t.Context(), name); err == nil || !strings.Contains(err.Error(), "no route for port 4000") {
		t.Fatalf("URL of an undeclared port: %v", err)
	}
	// The session's cwd, not the user's home.
	if cwd, err := p.DefaultCwd(t.Context(), name); err != nil || cwd != vercelfake.Cwd {
		t.Fatalf("DefaultCwd %q %v", cwd, err)
	}
}

// TestEnsureServerAfterTimeout: the session timed out; EnsureServer
// resumes the sandbox (a new session, ?resume=true) and starts the server
// again from the kept filesystem, and calling it again changes nothing.
func TestEnsureServerAfterTimeout(t *testing.T) {
	ctx := t.Context()
	f := vercelfake.New(t, vercelfake.Options{})
	p := newProvider(t, f, nil)
	name := create(t, p)
	first, _ := f.Session(name)
	f.Expire(t, name)
	if s, _ := f.Session(name); s.Status != "stopped" {
		t.Fatalf("after expiry: %+v", s)
	}
	if err := p.EnsureServer(ctx, name); err != nil {
		t.Fatal(err)
	}
	s, _ := f.Session(name)
	if s.ID == first.ID || s.Status != "running" || s.Count != 2 || f.ServerStarts(name) != 2 {
		t.Fatalf("after EnsureServer: %+v, %d server starts", s, f.ServerStarts(name))
	}
	resumes := 0
	for _, r := range f.Faults.Log() {
		if r.Method == http.MethodGet && r.Path == "/v2/sandboxes/"+name {
			resumes++
		}
	}
	if resumes == 0 {
		t.Fatal("no GET /v2/sandboxes/{name}")
	}
	// Healthy: idempotent, and the live session is extended instead.
	if err := p.EnsureServer(ctx, name); err != nil {
		t.Fatal(err)
	}
	again, _ := f.Session(name)
	if again.ID != s.ID || f.ServerStarts(name) != 2 || again.Timeout != s.Timeout+vercel.DefaultExtendBy {
		t.Fatalf("second EnsureServer: %+v (was %+v), %d server starts", again, s, f.ServerStarts(name))
	}
	checkHealth(t, p, name)
}

// checkHealth calls the server through the URL the provider gives now.
func checkHealth(t *testing.T, p *vercel.Provider, name string) {
	t.Helper()
	u, err := p.URL(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := p.Token(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	c, err := sandboxagent.Connect(t.Context(), sandboxagent.Options{BaseURL: u, Token: tok})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if _, err := c.GetHealth(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// TestExtendRefusedIsNotFatal: the plan's maximum refuses the extension;
// EnsureServer still makes sure the server runs.
func TestExtendRefusedIsNotFatal(t *testing.T) {
	f := vercelfake.New(t, vercelfake.Options{MaxTimeout: vercel.DefaultTimeout})
	p := newProvider(t, f, nil)
	name := create(t, p)
	if err := p.EnsureServer(t.Context(), name); err != nil {
		t.Fatal(err)
	}
	refused := false
	for _, r := range f.Faults.Log() {
		refused = refused || strings.HasSuffix(r.Path, "/extend-timeout")
	}
	if s, _ := f.Session(name); !refused || s.Timeout != vercel.DefaultTimeout {
		t.Fatalf("extend attempted %v, timeout %v", refused, s.Timeout)
	}
}

// TestPauseStopsSession: Pause stops the session (the sandbox stays);
// Reconnect resumes it in a new session and EnsureServer brings the server
// back.
func TestPauseStopsSession(t *testing.T) {
	ctx := t.Context()
	f := vercelfake.New(t, vercelfake.Options{})
	p := newProvider(t, f, nil)
	name := create(t, p)
	if err := p.Pause(ctx, name); err != nil {
		t.Fatal(err)
	}
	if s, _ := f.Session(name); s.Status != "stopped" || len(f.Leftovers(name)) != 0 {
		t.Fatalf("after Pause: %+v, processes %v", s, f.Leftovers(name))
	}
	if err := p.Pause(ctx, name); err != nil {
		t.Fatalf("Pause twice: %v", err)
	}
	if err := p.Reconnect(ctx, name); err != nil {
		t.Fatal(err)
	}
	if s, _ := f.Session(name); s.Status != "running" || s.Count != 2 {
		t.Fatalf("after Reconnect: %+v", s)
	}
	if err := p.EnsureServer(ctx, name); err != nil {
		t.Fatal(err)
	}
	checkHealth(t, p, name)
}

// TestStoppedSessionIsResumedByExec: a provider whose remembered session
// has stopped gets 410 sandbox_stopped on its next command, resumes the
// sandbox and runs the command in the new session.
func TestStoppedSessionIsResumedByExec(t *testing.T) {
	f := vercelfake.New(t, vercelfake.Options{})
	p := newProvider(t, f, nil)
	name := create(t, p)
	tok1, _ := p.Token(t.Context(), name)
	p2 := newProvider(t, f, nil)
	// URL reads the sandbox without resuming it: p2 now knows the session.
	if _, err := p2.URL(t.Context(), name); err != nil {
		t.Fatal(err)
	}
	f.Expire(t, name)
	// Token runs a command (it reads the token file back) in the stopped
	// session first.
	tok2, err := p2.Token(t.Context(), name)
	if err != nil || tok2 != tok1 {
		t.Fatalf("Token from a new provider: %q %v", tok2, err)
	}
	if s, _ := f.Session(name); s.Status != "running" || s.Count != 2 {
		t.Fatalf("session %+v: not resumed by the command's 410", s)
	}
}

func TestStoppingSessionIsWaitedFor(t *testing.T) {
	restore := vercel.SetPollInterval(10 * time.Millisecond)
	defer restore()
	f := vercelfake.New(t, vercelfake.Options{})
	p := newProvider(t, f, nil)
	name := create(t, p)
	release := f.HoldStopping(t, name)
	done := make(chan error, 1)
	go func() { done <- p.EnsureServer(t.Context(), name) }()
	// EnsureServer polls while the session stops; it must not resume yet.
	waitFor(t, func() bool {
		n := 0
		for _, r := range f.Faults.Log() {
			if r.Path == "/v2/sandboxes/"+name {
				n++
			}
		}
		return n >= 3
	})
	if s, _ := f.Session(name); s.Count != 1 || s.Status != "stopping" {
		t.Fatalf("resumed while stopping: %+v", s)
	}
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if s, _ := f.Session(name); s.Count != 2 || s.Status != "running" {
		t.Fatalf("after the stop: %+v", s)
	}
	checkHealth(t, p, name)
}

func TestStoppingWaitIsBounded(t *testing.T) {
	restore := vercel.SetPollInterval(10 * time.Millisecond)
	defer restore()
	f := vercelfake.New(t, vercelfake.Options{})
	p := newProvider(t, f, func(o *vercel.Options) { o.StoppingWait = 100 * time.Millisecond })
	name := create(t, p)
	release := f.HoldStopping(t, name)
	defer release()
	if err := p.EnsureServer(t.Context(), name); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("EnsureServer while stuck stopping: %v", err)
	}
}

func TestDestroyDeletes(t *testing.T) {
	ctx := t.Context()
	f := vercelfake.New(t, vercelfake.Options{})
	p := newProvider(t, f, nil)
	name := create(t, p)
	if err := p.Destroy(ctx, name); err != nil {
		t.Fatal(err)
	}
	if len(f.Names()) != 0 || len(f.Leftovers(name)) != 0 {
		t.Fatalf("after Destroy: sandboxes %v, processes %v", f.Names(), f.Leftovers(name))
	}
	if err := p.Destroy(ctx, name); err != nil {
		t.Fatalf("Destroy twice: %v", err)
	}
	var de *sandboxagent.SandboxDestroyedError
	for what, call := range map[string]func() error{
		"EnsureServer": func() error { return p.EnsureServer(ctx, name) },
		"Pause":        func() error { return p.Pause(ctx, name) },
		"URL":          func() error { _, err := p.URL(ctx, name); return err },
	} {
		if err := call(); !errors.As(err, &de) || de.SandboxID != name {
			t.Fatalf("%s after Destroy: %v", what, err)
		}
	}
}

func TestNoToken(t *testing.T) {
	f := vercelfake.New(t, vercelfake.Options{})
	p := newProvider(t, f, func(o *vercel.Options) { o.NoToken = true })
	name := create(t, p)
	if tok, err := newProvider(t, f, nil).Token(t.Context(), name); err != nil || tok != "" {
		t.Fatalf("Token of a NoToken sandbox: %q %v", tok, err)
	}
	checkHealth(t, p, name)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatal("condition not reached")
		case <-tick.C:
		}
	}
}
