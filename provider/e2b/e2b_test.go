//go:build unix

package e2b_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	sandboxagent "github.com/sandbox-agent-go/sandbox-agent"
	"github.com/sandbox-agent-go/sandbox-agent/internal/testutil/testbin"
	"github.com/sandbox-agent-go/sandbox-agent/provider"
	"github.com/sandbox-agent-go/sandbox-agent/provider/e2b"
	"github.com/sandbox-agent-go/sandbox-agent/provider/internal/fakesandbox"
	"github.com/sandbox-agent-go/sandbox-agent/provider/internal/fakesandbox/e2bfake"
	"github.com/sandbox-agent-go/sandbox-agent/provider/internal/providertest"
)

var bin string

func TestMain(m *testing.M) { os.Exit(testbin.Main(m, &bin)) }

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// options points a provider at the fake, with the test binary to upload.
func options(f *e2bfake.Fake) e2b.Options {
	return e2b.Options{APIKey: f.APIKey(), Domain: f.Domain, APIURL: f.APIURL, HTTPClient: f.Client(),
		SandboxURL: f.SandboxURL, Install: provider.Install{BinaryPath: bin}, Logger: quiet()}
}

func newProvider(t *testing.T, f *e2bfake.Fake, mod func(*e2b.Options)) *e2b.Provider {
	t.Helper()
	o := options(f)
	if mod != nil {
		mod(&o)
	}
	p, err := e2b.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestConformance runs the providers' scenario twice: E2B's pause keeps a
// memory snapshot (the frozen server simply continues), and a pause
// without memory (the server is gone and EnsureServer starts it again).
func TestConformance(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    e2bfake.Options
	}{{"MemorySnapshot", e2bfake.Options{}}, {"NoMemory", e2bfake.Options{PauseLosesMemory: true}}} {
		t.Run(tc.name, func(t *testing.T) {
			providertest.Run(t, "e2b", func(t *testing.T) providertest.Fixture {
				f := e2bfake.New(t, tc.o)
				return providertest.Fixture{
					NewProvider:      func(t *testing.T) sandboxagent.SandboxProvider { return newProvider(t, f, nil) },
					Sleep:            f.Expire, // the timeout ran out; autoPause pauses
					SleepLosesServer: tc.o.PauseLosesMemory,
					Delete:           f.Delete,
					Leftovers:        f.Leftovers,
					ServerStarts:     f.ServerStarts,
				}
			})
		})
	}
}

func TestMissingCredentials(t *testing.T) {
	t.Setenv(e2b.EnvAPIKey, "")
	_, err := e2b.New(e2b.Options{})
	var me *sandboxagent.MissingCredentialsError
	if !errors.As(err, &me) || me.Provider != "e2b" || me.Option != "APIKey" || !slices.Equal(me.EnvVars, []string{"E2B_API_KEY"}) ||
		!strings.Contains(err.Error(), "E2B_API_KEY") {
		t.Fatalf("New without a key: %v", err)
	}
	// The environment is the default.
	t.Setenv(e2b.EnvAPIKey, "e2b_abc")
	if _, err := e2b.New(e2b.Options{}); err != nil {
		t.Fatal(err)
	}
}

// TestRefusedCredentials: a 401 or 403 is ErrProviderUnauthorized after
// exactly one request; a 429 with Retry-After is retried.
func TestVendorErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		key      string
		fault    *fakesandbox.Fault
		requests int
		unauth   bool
	}{
		{name: "wrong key", key: "e2b_wrong", requests: 1, unauth: true},
		{name: "403", fault: &fakesandbox.Fault{Status: 403, Body: `{"code":403,"message":"team is blocked"}`}, requests: 1, unauth: true},
		{name: "429 retried", fault: &fakesandbox.Fault{Status: 429, RetryAfter: time.Second, Body: `{"code":429,"message":"rate limit"}`}, requests: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := e2bfake.New(t, e2bfake.Options{})
			if tc.fault != nil {
				f.Faults.FailNext(1, *tc.fault)
			}
			p := newProvider(t, f, func(o *e2b.Options) {
				if tc.key != "" {
					o.APIKey = tc.key
				}
			})
			err := p.Reconnect(t.Context(), "nosuchsandbox")
			if got := len(f.Faults.Log()); got != tc.requests {
				t.Fatalf("%d requests, want %d", got, tc.requests)
			}
			if tc.unauth {
				var ae *sandboxagent.ProviderAPIError
				if !errors.Is(err, sandboxagent.ErrProviderUnauthorized) || !errors.As(err, &ae) || ae.Provider != "e2b" {
					t.Fatalf("err %v", err)
				}
				return
			}
			// Retried, then the real answer: the sandbox does not exist.
			if !errors.As(err, new(*sandboxagent.SandboxDestroyedError)) {
				t.Fatalf("err %v", err)
			}
			if h := f.Faults.Log()[1].Header.Get("X-API-Key"); h != f.APIKey() {
				t.Fatalf("retry without the key: %q", h)
			}
		})
	}
}

// TestCreateBody: the lifetime knobs are explicit in the create request.
func TestCreateBody(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*e2b.Options)
		want map[string]any
	}{
		{"defaults", nil, map[string]any{"templateID": "base", "timeout": 3600.0, "autoPause": true, "secure": true}},
		{"knobs", func(o *e2b.Options) {
			o.Template, o.Timeout, o.KillOnTimeout, o.Private = "my-template", 90*time.Second, true, true
			o.Metadata, o.Env = map[string]string{"team": "a"}, map[string]string{"ANTHROPIC_API_KEY": "sk-test"}
		}, map[string]any{"templateID": "my-template", "timeout": 90.0, "autoPause": false, "secure": true,
			"network": map[string]any{"allowPublicTraffic": false}, "metadata": map[string]any{"team": "a"},
			"envVars": map[string]any{"ANTHROPIC_API_KEY": "sk-test"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := e2bfake.New(t, e2bfake.Options{})
			p := newProvider(t, f, tc.mod)
			id, err := p.Create(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			defer p.Destroy(context.Background(), id)
			got := f.Creates()[0]
			if len(got) != len(tc.want) {
				t.Fatalf("create body %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if !equalJSON(got[k], v) {
					t.Fatalf("create body %s = %v, want %v (body %v)", k, got[k], v, got)
				}
			}
			if end := time.Until(f.EndAt(id)); end > time.Duration(got["timeout"].(float64))*time.Second || end < time.Duration(got["timeout"].(float64)-5)*time.Second {
				t.Fatalf("sandbox ends in %s", end)
			}
		})
	}
}

func equalJSON(a, b any) bool {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		if len(am) != len(bm) {
			return false
		}
		for k := range am {
			if !equalJSON(am[k], bm[k]) {
				return false
			}
		}
		return true
	}
	return a == b
}

// TestServerStartHasNoDeadline: envd kills a process at its
// Connect-Timeout-Ms, so the server's start command must not carry one,
// while the installation commands do. The server outlives the request that
// started it.
func TestServerStartHasNoDeadline(t *testing.T) {
	ctx := t.Context()
	f := e2bfake.New(t, e2bfake.Options{})
	p := newProvider(t, f, func(o *e2b.Options) { o.CommandTimeout = time.Minute })
	id, err := p.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Destroy(context.Background(), id)
	var start *e2bfake.Exec
	execs := f.Execs(id)
	for i, e := range execs {
		if strings.Contains(e.Command, " daemon start ") {
			start = &execs[i]
			if v, ok := e.Header["Connect-Timeout-Ms"]; ok {
				t.Fatalf("the server's start carried Connect-Timeout-Ms %v", v)
			}
			continue
		}
		if ms, err := strconv.Atoi(e.Header.Get("Connect-Timeout-Ms")); err != nil || ms <= 0 || ms > 60000 {
			t.Fatalf("command %q: Connect-Timeout-Ms %q, want (0, 60000]", e.Command, e.Header.Get("Connect-Timeout-Ms"))
		}
		if e.Header.Get("X-Access-Token") == "" {
			t.Fatalf("command %q without X-Access-Token", e.Command)
		}
	}
	if start == nil || f.ServerStarts(id) != 1 {
		t.Fatalf("no server start among %d commands (%d starts)", len(execs), f.ServerStarts(id))
	}
	select {
	case <-start.Done:
	default:
		t.Fatal("the start command is still running: it should return once the server is healthy")
	}
	// The command and its request are over; the server answers.
	u, _ := p.URL(ctx, id)
	tok, _ := p.Token(ctx, id)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u+"/v1/health", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := f.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("health after the start request ended: %d", resp.StatusCode)
	}
}

// TestPauseDestroyKill: Pause pauses (twice is fine; the port then
// answers E2B's 502), Reconnect resumes, Destroy really deletes (404
// afterwards), and Kill deletes too.
func TestPauseDestroyKill(t *testing.T) {
	ctx := t.Context()
	f := e2bfake.New(t, e2bfake.Options{})
	p := newProvider(t, f, nil)
	c, err := sandboxagent.Start(ctx, p, sandboxagent.StartOptions{Options: sandboxagent.Options{Logger: quiet()}})
	if err != nil {
		t.Fatal(err)
	}
	id := strings.TrimPrefix(c.SandboxID(), "e2b/")
	if err := c.PauseSandbox(ctx); err != nil {
		t.Fatal(err)
	}
	if st := f.Sandbox(id).State(); st != fakesandbox.Paused {
		t.Fatalf("state %s after Pause", st)
	}
	if err := p.Pause(ctx, id); err != nil {
		t.Fatalf("pausing a paused sandbox (409): %v", err)
	}
	u, _ := p.URL(ctx, id)
	if status, body := get(t, f.Client(), u+"/v1/health"); status != http.StatusBadGateway || !strings.Contains(body, "The sandbox was not found") {
		t.Fatalf("paused sandbox's port: %d %s", status, body)
	}
	c2, err := sandboxagent.Start(ctx, p, sandboxagent.StartOptions{SandboxID: "e2b/" + id, Options: sandboxagent.Options{Logger: quiet()}})
	if err != nil {
		t.Fatal(err)
	}
	if st := f.Sandbox(id).State(); st != fakesandbox.Running {
		t.Fatalf("state %s after reconnect", st)
	}
	if f.ServerStarts(id) != 1 {
		t.Fatalf("server started %d times: resume keeps it", f.ServerStarts(id))
	}
	if err := c2.DestroySandbox(ctx); err != nil {
		t.Fatal(err)
	}
	if st := f.Sandbox(id).State(); st != fakesandbox.Deleted {
		t.Fatalf("state %s after Destroy: upstream only pauses, ours deletes", st)
	}
	if status, body := get(t, f.Client(), u+"/v1/health"); status != http.StatusBadGateway || !strings.Contains(body, "not found") {
		t.Fatalf("deleted sandbox's port: %d %s", status, body)
	}
	if err := p.Reconnect(ctx, id); !errors.As(err, new(*sandboxagent.SandboxDestroyedError)) {
		t.Fatalf("Reconnect after Destroy: %v", err)
	}
	if err := p.Pause(ctx, id); !errors.As(err, new(*sandboxagent.SandboxDestroyedError)) {
		t.Fatalf("Pause after Destroy: %v", err)
	}
	if err := p.Destroy(ctx, id); err != nil {
		t.Fatalf("Destroy twice: %v", err)
	}
	deletes := 0
	for _, r := range f.Faults.Log() {
		if r.Method == http.MethodDelete && r.Path == "/sandboxes/"+id {
			deletes++
		}
	}
	if deletes != 2 {
		t.Fatalf("%d DELETE requests, want 2", deletes)
	}

	// Kill is E2B's delete as well.
	id2, err := p.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Kill(ctx, id2); err != nil || f.Sandbox(id2).State() != fakesandbox.Deleted {
		t.Fatalf("Kill: %v, state %s", err, f.Sandbox(id2).State())
	}
}

// TestOldEnvd: an envd before 0.4.0 has no default user; the provider
// names it (as E2B's SDKs do) and the bootstrap works.
func TestOldEnvd(t *testing.T) {
	f := e2bfake.New(t, e2bfake.Options{OldEnvd: true})
	p := newProvider(t, f, nil)
	id, err := p.Create(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Destroy(context.Background(), id)
	if f.ServerStarts(id) != 1 {
		t.Fatal("no server")
	}
}

// TestFailedBootstrapDeletes: a sandbox whose installation fails is
// deleted, not left running until its timeout.
func TestFailedBootstrapDeletes(t *testing.T) {
	notELF := filepath.Join(t.TempDir(), "sandbox-agent")
	if err := os.WriteFile(notELF, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		install provider.Install
		want    string
	}{
		{"not ELF", provider.Install{BinaryPath: notELF}, "not a Linux (ELF) executable"},
		{"not on PATH", provider.Install{Mode: provider.InstallNone}, "not on the sandbox's PATH"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := e2bfake.New(t, e2bfake.Options{})
			p := newProvider(t, f, func(o *e2b.Options) { o.Install = tc.install })
			_, err := p.Create(t.Context())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Create: %v, want %q", err, tc.want)
			}
			var deleted []string
			for _, r := range f.Faults.Log() {
				if r.Method == http.MethodDelete {
					deleted = append(deleted, strings.TrimPrefix(r.Path, "/sandboxes/"))
				}
			}
			if len(deleted) != 1 || f.Sandbox(deleted[0]).State() != fakesandbox.Deleted {
				t.Fatalf("deleted %v", deleted)
			}
		})
	}
}

// TestKillOnTimeout: without autoPause the timeout deletes the sandbox.
func TestKillOnTimeout(t *testing.T) {
	f := e2bfake.New(t, e2bfake.Options{})
	p := newProvider(t, f, func(o *e2b.Options) { o.KillOnTimeout = true })
	id, err := p.Create(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	f.Expire(t, id)
	if err := p.EnsureServer(t.Context(), id); !errors.As(err, new(*sandboxagent.SandboxDestroyedError)) {
		t.Fatalf("EnsureServer after the timeout killed it: %v", err)
	}
	if left := f.Leftovers(id); len(left) != 0 {
		t.Fatalf("processes left: %v", left)
	}
}

// TestPrivateSandbox: a sandbox without public traffic needs the traffic
// token on its URL, which the provider's HTTPClient adds (and a new
// provider instance learns by connecting).
func TestPrivateSandbox(t *testing.T) {
	ctx := t.Context()
	f := e2bfake.New(t, e2bfake.Options{})
	private := func(o *e2b.Options) { o.Private = true }
	p := newProvider(t, f, private)
	c, err := sandboxagent.Start(ctx, p, sandboxagent.StartOptions{Options: sandboxagent.Options{Logger: quiet()}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.DestroySandbox(context.Background())
	id := strings.TrimPrefix(c.SandboxID(), "e2b/")
	u, _ := p.URL(ctx, id)
	if status, _ := get(t, f.Client(), u+"/v1/health"); status != http.StatusForbidden {
		t.Fatalf("without the traffic token: %d", status)
	}
	p2 := newProvider(t, f, private)
	hc, err := p2.HTTPClient(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := p2.Token(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if status, body := get(t, hc, u+"/v1/health", "Authorization", "Bearer "+tok); status != http.StatusOK {
		t.Fatalf("with the provider's client: %d %s", status, body)
	}
	if _, err := c.ListAgents(ctx, sandboxagent.AgentQuery{}); err != nil {
		t.Fatal(err)
	}
}

// TestCreateBoundedByContext: a slow boot outlasting the caller's context
// ends Create with the context's error at its deadline.
func TestCreateBoundedByContext(t *testing.T) {
	f := e2bfake.New(t, e2bfake.Options{})
	release := f.HoldBoot()
	defer release()
	p := newProvider(t, f, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if _, err := p.Create(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Create during a slow boot: %v", err)
	}
	if n := len(f.Creates()); n != 1 {
		t.Fatalf("%d create requests, want 1 (no retry of a create the caller gave up on)", n)
	}
}

func get(t *testing.T, c *http.Client, u string, header ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestDefaultURLs: E2B's host scheme, from Options.Domain or $E2B_DOMAIN.
func TestDefaultURLs(t *testing.T) {
	for _, tc := range []struct {
		name, envDomain, domain string
		port                    int
		want                    string
	}{
		{"default", "", "", 0, "https://3000-abc123.e2b.app"},
		{"env", "e2b.example", "", 0, "https://3000-abc123.e2b.example"},
		{"option wins", "e2b.example", "eu.e2b.dev", 8080, "https://8080-abc123.eu.e2b.dev"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(e2b.EnvDomain, tc.envDomain)
			p, err := e2b.New(e2b.Options{APIKey: "e2b_x", Domain: tc.domain, Port: tc.port})
			if err != nil {
				t.Fatal(err)
			}
			if u, err := p.URL(t.Context(), "abc123"); err != nil || u != tc.want {
				t.Fatalf("URL %q %v, want %q", u, err, tc.want)
			}
		})
	}
}

// TestEnvironmentDefaults: the key and API URL come from E2B's variables.
func TestEnvironmentDefaults(t *testing.T) {
	f := e2bfake.New(t, e2bfake.Options{})
	t.Setenv(e2b.EnvAPIKey, f.APIKey())
	t.Setenv(e2b.EnvAPIURL, f.APIURL)
	p, err := e2b.New(e2b.Options{HTTPClient: f.Client()})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Reconnect(t.Context(), "nosuch"); !errors.As(err, new(*sandboxagent.SandboxDestroyedError)) {
		t.Fatalf("Reconnect: %v", err)
	}
	if log := f.Faults.Log(); len(log) != 1 || log[0].Path != "/sandboxes/nosuch/connect" || log[0].Header.Get("X-API-Key") != f.APIKey() {
		t.Fatalf("requests %+v", log)
	}
}
