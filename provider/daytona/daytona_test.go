//go:build unix

package daytona_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	sandboxagent "github.com/sandbox-agent-go/sandbox-agent"
	"github.com/sandbox-agent-go/sandbox-agent/internal/testutil/testbin"
	"github.com/sandbox-agent-go/sandbox-agent/provider"
	"github.com/sandbox-agent-go/sandbox-agent/provider/daytona"
	"github.com/sandbox-agent-go/sandbox-agent/provider/internal/fakesandbox"
	"github.com/sandbox-agent-go/sandbox-agent/provider/internal/fakesandbox/daytonafake"
	"github.com/sandbox-agent-go/sandbox-agent/provider/internal/providertest"
	"go.uber.org/goleak"
)

var bin string

func TestMain(m *testing.M) { os.Exit(testbin.Main(m, &bin)) }

func options(f *daytonafake.Fake, mod func(*daytona.Options)) daytona.Options {
	o := daytona.Options{APIKey: daytonafake.DefaultAPIKey, APIURL: f.APIURL, HTTPClient: f.Client(),
		Install: provider.Install{BinaryPath: bin}}
	if mod != nil {
		mod(&o)
	}
	return o
}

func newProvider(t *testing.T, f *daytonafake.Fake, mod func(*daytona.Options)) *daytona.Provider {
	t.Helper()
	p, err := daytona.New(options(f, mod))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConformance(t *testing.T) {
	providertest.Run(t, daytona.Name, func(t *testing.T) providertest.Fixture {
		f := daytonafake.New(t, daytonafake.Options{BootSteps: 2})
		return providertest.Fixture{
			// Auto-stop on, so the fixture's sleep is Daytona's own.
			NewProvider: func(t *testing.T) sandboxagent.SandboxProvider {
				return newProvider(t, f, func(o *daytona.Options) { o.AutoStopInterval = 15 })
			},
			Sleep: func(t *testing.T, id string) {
				if !f.Idle(t, id, 15*time.Minute) {
					t.Fatalf("sandbox %s did not auto-stop after 15 idle minutes", id)
				}
			},
			SleepLosesServer: true,
			Delete:           func(t *testing.T, id string) { f.Delete(t, id) },
			Leftovers:        f.Leftovers,
			ServerStarts:     f.ServerStarts,
		}
	})
}

func start(t *testing.T, p *daytona.Provider) (*sandboxagent.Client, string) {
	t.Helper()
	c, err := sandboxagent.Start(t.Context(), p, sandboxagent.StartOptions{})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = c.DestroySandbox(context.Background()) })
	return c, strings.TrimPrefix(c.SandboxID(), daytona.Name+"/")
}

func TestMissingCredentials(t *testing.T) {
	t.Setenv(daytona.EnvAPIKey, "")
	_, err := daytona.New(daytona.Options{})
	var mc *sandboxagent.MissingCredentialsError
	if !errors.As(err, &mc) || mc.Option != "APIKey" || len(mc.EnvVars) != 1 || mc.EnvVars[0] != "DAYTONA_API_KEY" ||
		!strings.Contains(err.Error(), "DAYTONA_API_KEY") {
		t.Fatalf("New without a key: %v", err)
	}
}

func TestEnvDefaults(t *testing.T) {
	f := daytonafake.New(t, daytonafake.Options{})
	t.Setenv(daytona.EnvAPIKey, daytonafake.DefaultAPIKey)
	t.Setenv(daytona.EnvAPIURL, f.APIURL)
	t.Setenv(daytona.EnvTarget, "eu")
	p, err := daytona.New(daytona.Options{HTTPClient: f.Client(), Install: provider.Install{BinaryPath: bin}})
	if err != nil {
		t.Fatal(err)
	}
	start(t, p)
	if body := f.Creates()[0]; body["target"] != "eu" {
		t.Fatalf("create body without DAYTONA_TARGET: %v", body)
	}
}

func TestUnauthorizedIsTypedAndNotRetried(t *testing.T) {
	for _, status := range []int{http.StatusUnauthorized, http.StatusForbidden} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			f := daytonafake.New(t, daytonafake.Options{})
			f.Faults.FailNext(1, fakesandbox.Fault{Status: status,
				Body: `{"statusCode":` + strconv.Itoa(status) + `,"error":"` + http.StatusText(status) + `","message":"Invalid credentials"}`})
			_, err := newProvider(t, f, nil).Create(t.Context())
			var ae *sandboxagent.ProviderAPIError
			if !errors.Is(err, sandboxagent.ErrProviderUnauthorized) || !errors.As(err, &ae) || ae.Message != "Invalid credentials" {
				t.Fatalf("Create: %v", err)
			}
			if n := len(f.Faults.Log()); n != 1 {
				t.Fatalf("%d requests, want 1 (no retry)", n)
			}
		})
	}
	// A wrong key is refused by the fake itself, too.
	f := daytonafake.New(t, daytonafake.Options{})
	_, err := newProvider(t, f, func(o *daytona.Options) { o.APIKey = "wrong" }).Create(t.Context())
	if !errors.Is(err, sandboxagent.ErrProviderUnauthorized) || len(f.Faults.Log()) != 1 {
		t.Fatalf("Create with a wrong key: %v (%d requests)", err, len(f.Faults.Log()))
	}
}

func TestRateLimitRetried(t *testing.T) {
	f := daytonafake.New(t, daytonafake.Options{})
	f.Faults.FailNext(1, fakesandbox.Fault{Status: http.StatusTooManyRequests, RetryAfter: time.Second,
		Body: `{"statusCode":429,"error":"Too Many Requests","message":"ThrottlerException: Too Many Requests"}`})
	p := newProvider(t, f, nil)
	begin := time.Now()
	_, id := start(t, p)
	log := f.Faults.Log()
	if log[0].Status != http.StatusTooManyRequests || log[1].Method != http.MethodPost || log[1].Path != "/api/sandbox" || log[1].Status != 0 {
		t.Fatalf("requests %+v: the 429 was not retried", log[:2])
	}
	if time.Since(begin) < time.Second {
		t.Fatal("Retry-After was not honoured")
	}
	if f.State(id) != "started" {
		t.Fatalf("state %q", f.State(id))
	}
}

func TestCreateBody(t *testing.T) {
	cases := []struct {
		name string
		mod  func(*daytona.Options)
		want map[string]any
		none []string
	}{
		{"defaults", nil, map[string]any{"autoStopInterval": 0.0, "public": false}, []string{"snapshot", "buildInfo", "target"}},
		{"snapshot", func(o *daytona.Options) {
			o.Snapshot, o.AutoStopInterval, o.Target, o.Public = "sandbox-agent-full", 30, "us", true
			o.Env, o.Labels = map[string]string{"ANTHROPIC_API_KEY": "sk"}, map[string]string{"team": "a"}
		}, map[string]any{"snapshot": "sandbox-agent-full", "autoStopInterval": 30.0, "target": "us", "public": true}, []string{"buildInfo"}},
		{"image, vendor auto-stop", func(o *daytona.Options) { o.Image, o.AutoStopInterval = "ubuntu:24.04", -1 },
			map[string]any{}, []string{"snapshot", "autoStopInterval"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := daytonafake.New(t, daytonafake.Options{})
			start(t, newProvider(t, f, tc.mod))
			body := f.Creates()[0]
			for k, v := range tc.want {
				if body[k] != v {
					t.Errorf("%s = %v, want %v (body %v)", k, body[k], v, body)
				}
			}
			for _, k := range tc.none {
				if _, ok := body[k]; ok {
					t.Errorf("%s sent: %v", k, body)
				}
			}
			if tc.name == "snapshot" && (body["env"].(map[string]any)["ANTHROPIC_API_KEY"] != "sk" || body["labels"].(map[string]any)["team"] != "a") {
				t.Errorf("env/labels: %v", body)
			}
			if tc.name == "image, vendor auto-stop" && body["buildInfo"].(map[string]any)["dockerfileContent"] != "FROM ubuntu:24.04\n" {
				t.Errorf("buildInfo: %v", body)
			}
		})
	}
}

// With the default autoStopInterval 0 an idle sandbox is never stopped;
// with the vendor's 15 it is after 15 minutes.
func TestAutoStopInterval(t *testing.T) {
	for _, tc := range []struct {
		interval  int
		idle      time.Duration
		wantStops bool
	}{{0, 1000 * time.Hour, false}, {15, 14 * time.Minute, false}, {-1, 15 * time.Minute, true}} {
		f := daytonafake.New(t, daytonafake.Options{})
		_, id := start(t, newProvider(t, f, func(o *daytona.Options) { o.AutoStopInterval = tc.interval }))
		if got := f.Idle(t, id, tc.idle); got != tc.wantStops {
			t.Errorf("autoStopInterval %d, idle %s: stopped %v, want %v", tc.interval, tc.idle, got, tc.wantStops)
		}
	}
}

func TestPreviewTokenHeaderRefreshed(t *testing.T) {
	f := daytonafake.New(t, daytonafake.Options{})
	p := newProvider(t, f, nil)
	c, id := start(t, p)
	url, _ := p.URL(t.Context(), id)
	if !strings.HasPrefix(url, "http://3000-"+id+"."+daytonafake.DefaultPreviewDomain+":") || c.BaseURL() != url {
		t.Fatalf("URL %q, base %q", url, c.BaseURL())
	}
	// Without the header the proxy refuses, even with the server's token.
	resp, err := f.Client().Do(withToken(t, p, id, url+"/v1/health"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("without the preview token: %d", resp.StatusCode)
	}
	fetches := func() int { return count(f, http.MethodGet, "/preview-url") }
	before := fetches()
	f.RotatePreviewToken(id)
	if _, err := c.ListAgents(t.Context(), sandboxagent.AgentQuery{}); err != nil {
		t.Fatalf("after the token changed: %v", err)
	}
	if fetches() != before+1 {
		t.Fatalf("preview URL fetched %d times, want once more", fetches()-before)
	}
}

func TestSignedURLRefreshed(t *testing.T) {
	f := daytonafake.New(t, daytonafake.Options{})
	p := newProvider(t, f, func(o *daytona.Options) { o.SignedURLTTL = time.Hour })
	c, id := start(t, p)
	url, _ := p.URL(t.Context(), id)
	if strings.Contains(url, id) || !strings.HasPrefix(url, "http://3000-") {
		t.Fatalf("signed URL %q names the sandbox id", url)
	}
	// A signed URL needs no header: a plain client with the server's token
	// gets through.
	resp, err := f.Client().Do(withToken(t, p, id, url+"/v1/health"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("signed URL: %d", resp.StatusCode)
	}
	before := count(f, http.MethodGet, "/signed-preview-url")
	f.ExpireSignedURLs()
	if _, err := c.ListAgents(t.Context(), sandboxagent.AgentQuery{}); err != nil {
		t.Fatalf("after the signed URL expired: %v", err)
	}
	if n := count(f, http.MethodGet, "/signed-preview-url") - before; n != 1 {
		t.Fatalf("signed URL fetched %d more times, want 1", n)
	}
	for _, r := range f.Faults.Log() {
		if strings.HasSuffix(r.Path, "/signed-preview-url") && r.Method == http.MethodGet {
			return
		}
	}
	t.Fatal("no signed-preview-url request")
}

func withToken(t *testing.T, p *daytona.Provider, id, url string) *http.Request {
	t.Helper()
	tok, err := p.Token(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	return req
}

func TestSignedURLTTLRange(t *testing.T) {
	for _, ttl := range []time.Duration{time.Millisecond, 25 * time.Hour} {
		if _, err := daytona.New(daytona.Options{APIKey: "k", SignedURLTTL: ttl}); err == nil {
			t.Errorf("SignedURLTTL %s accepted", ttl)
		}
	}
}

func count(f *daytonafake.Fake, method, suffix string) int {
	n := 0
	for _, r := range f.Faults.Log() {
		if r.Method == method && strings.HasSuffix(r.Path, suffix) {
			n++
		}
	}
	return n
}

// A sandbox whose image fails to build: Create reports Daytona's reason
// and deletes it.
func TestBuildFailed(t *testing.T) {
	f := daytonafake.New(t, daytonafake.Options{BuildFailure: "manifest unknown"})
	_, err := newProvider(t, f, func(o *daytona.Options) { o.Image = "nope:latest" }).Create(t.Context())
	if err == nil || !strings.Contains(err.Error(), "build_failed") || !strings.Contains(err.Error(), "manifest unknown") {
		t.Fatalf("Create: %v", err)
	}
	if count(f, http.MethodDelete, "") != 1 {
		t.Fatal("the failed sandbox was not deleted")
	}
}

// Destroy during a transition gets 409 and retries until Daytona accepts.
func TestDestroyRetriesConflict(t *testing.T) {
	f := daytonafake.New(t, daytonafake.Options{BootSteps: 3})
	p := newProvider(t, f, nil)
	_, id := start(t, p)
	if err := p.Pause(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	if f.State(id) != "stopped" || len(f.Leftovers(id)) != 0 {
		t.Fatalf("after Pause: state %q, processes %v", f.State(id), f.Leftovers(id))
	}
	// Start it behind the provider's back: a transition is pending.
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, f.APIURL+"/sandbox/"+id+"/start", nil)
	req.Header.Set("Authorization", "Bearer "+daytonafake.DefaultAPIKey)
	resp, err := f.Client().Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("start: %v %v", resp, err)
	}
	resp.Body.Close()
	if err := p.Destroy(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	var conflicts int
	for _, r := range f.Faults.Log() {
		if r.Method == http.MethodDelete {
			conflicts++
		}
	}
	if conflicts < 2 {
		t.Fatalf("%d DELETEs: no 409 was seen", conflicts)
	}
	err = p.Reconnect(t.Context(), id)
	var de *sandboxagent.SandboxDestroyedError
	if !errors.As(err, &de) {
		t.Fatalf("Reconnect after Destroy: %v", err)
	}
	if err := p.Destroy(t.Context(), id); err != nil {
		t.Fatalf("second Destroy: %v", err)
	}
}

// Pause (stop) then Start by id: EnsureServer starts the sandbox and the
// server, with the token read back from the sandbox by a new provider.
func TestPauseThenReconnect(t *testing.T) {
	f := daytonafake.New(t, daytonafake.Options{BootSteps: 1})
	p := newProvider(t, f, nil)
	c, id := start(t, p)
	if err := c.PauseSandbox(t.Context()); err != nil {
		t.Fatal(err)
	}
	starts := f.ServerStarts(id)
	p2 := newProvider(t, f, nil)
	c2, err := sandboxagent.Start(t.Context(), p2, sandboxagent.StartOptions{SandboxID: daytona.Name + "/" + id})
	if err != nil {
		t.Fatal(err)
	}
	if f.State(id) != "started" || f.ServerStarts(id) != starts+1 {
		t.Fatalf("state %q, server starts %d → %d", f.State(id), starts, f.ServerStarts(id))
	}
	if _, err := c2.ListAgents(t.Context(), sandboxagent.AgentQuery{}); err != nil {
		t.Fatal(err)
	}
	cwd, err := p2.DefaultCwd(t.Context(), id)
	if err != nil || !strings.HasSuffix(cwd, "/home/daytona") {
		t.Fatalf("DefaultCwd %q %v", cwd, err)
	}
	if err := c2.KillSandbox(t.Context()); err != nil {
		t.Fatal(err)
	}
	if f.Sandbox(id) != nil && f.State(id) != "destroying" {
		t.Fatalf("state after Kill: %q", f.State(id))
	}
}

// Everything the provider and the client start ends with them.
func TestNoGoroutineLeak(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	func() {
		f, err := daytonafake.Start(daytonafake.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		c, err := sandboxagent.Start(t.Context(), newProvider(t, f, nil), sandboxagent.StartOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s, err := c.CreateSession(t.Context(), sandboxagent.CreateSessionRequest{Agent: "mock"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Prompt(t.Context(), "hi"); err != nil {
			t.Fatal(err)
		}
		if err := c.DestroySandbox(t.Context()); err != nil {
			t.Fatal(err)
		}
	}()
	goleak.VerifyNone(t, ignore)
}

// A boot slower than CreateTimeout fails Create, and the sandbox is
// deleted although Daytona answers 409 until its boot has settled.
func TestCreateTimeout(t *testing.T) {
	f := daytonafake.New(t, daytonafake.Options{BootSteps: 8})
	_, err := newProvider(t, f, func(o *daytona.Options) { o.CreateTimeout = 300 * time.Millisecond }).Create(t.Context())
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "did not become started") {
		t.Fatalf("Create: %v", err)
	}
	deletes := count(f, http.MethodDelete, "")
	if deletes < 2 || len(f.Creates()) != 1 {
		t.Fatalf("%d DELETEs (want a 409 then success), %d creates", deletes, len(f.Creates()))
	}
	for _, r := range f.Faults.Log() {
		if r.Method == http.MethodDelete {
			if st := f.State(strings.TrimPrefix(r.Path, "/api/sandbox/")); st != "destroying" {
				t.Fatalf("state after Create failed: %q", st)
			}
			return
		}
	}
}
