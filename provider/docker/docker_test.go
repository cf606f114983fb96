package docker_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	sandboxagent "github.com/sandbox-agent-go/sandbox-agent"
	"github.com/sandbox-agent-go/sandbox-agent/internal/testutil/sessiontest"
	"github.com/sandbox-agent-go/sandbox-agent/internal/testutil/testbin"
	"github.com/sandbox-agent-go/sandbox-agent/provider/docker"
)

var bin string

func TestMain(m *testing.M) { os.Exit(testbin.Main(m, &bin)) }

const image = "sandbox-agent:test"

func newProvider(t *testing.T, f *fakeEngine, mod func(*docker.Options)) *docker.Provider {
	t.Helper()
	o := docker.Options{Image: image, HTTPClient: f.srv.Client(), EngineURL: f.srv.URL,
		Env: []string{"ANTHROPIC_API_KEY=sk-test"}, Binds: []string{"/tmp/work:/home/sandbox/work"}, Labels: map[string]string{"team": "a"}}
	if mod != nil {
		mod(&o)
	}
	p, err := docker.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestStartPromptDestroy(t *testing.T) {
	ctx := t.Context()
	f, p, c := startSandbox(t, sandboxagent.StartOptions{})
	id, ok := strings.CutPrefix(c.SandboxID(), "docker/")
	if !ok || f.container(id) == nil {
		t.Fatalf("sandbox id %q", c.SandboxID())
	}
	// The container as upstream creates it, with the host port fixed at
	// create time so a restart keeps the URL.
	body := f.creates[0]
	hc := body["HostConfig"].(map[string]any)
	binding := hc["PortBindings"].(map[string]any)["3000/tcp"].([]any)[0].(map[string]any)
	if body["Image"] != image ||
		!slices.Equal(toStrings(body["Cmd"]), []string{"server", "--no-token", "--host", "0.0.0.0", "--port", "3000"}) ||
		!slices.Equal(toStrings(body["Env"]), []string{"ANTHROPIC_API_KEY=sk-test"}) ||
		!slices.Equal(toStrings(hc["Binds"]), []string{"/tmp/work:/home/sandbox/work"}) ||
		binding["HostIp"] != "127.0.0.1" || binding["HostPort"] == "" || hc["AutoRemove"] != nil ||
		body["Labels"].(map[string]any)[docker.LabelProvider] != "docker" || body["Labels"].(map[string]any)["team"] != "a" {
		t.Fatalf("create body: %v", body)
	}
	if want := "http://127.0.0.1:" + binding["HostPort"].(string); c.BaseURL() != want {
		t.Fatalf("base URL %s, want %s", c.BaseURL(), want)
	}
	// Sessions default their cwd to the provider's.
	s, err := c.CreateSession(ctx, sandboxagent.CreateSessionRequest{Agent: "mock"})
	if err != nil {
		t.Fatal(err)
	}
	if init := string(s.Record().SessionInit); !strings.Contains(init, `"cwd":"`+docker.DefaultCwd+`"`) {
		t.Fatalf("session/new without the provider's cwd: %s", init)
	}
	res, err := s.Prompt(ctx, "hello from docker")
	if err != nil || res.StopReason != "end_turn" {
		t.Fatalf("prompt: %+v %v", res, err)
	}
	if err := c.DestroySandbox(ctx); err != nil {
		t.Fatal(err)
	}
	calls := f.callLog()
	if !slices.Contains(calls, "POST /containers/"+id+"/stop?t=5") || !slices.Contains(calls, "DELETE /containers/"+id+"?force=true&v=true") {
		t.Fatalf("destroy calls: %v", calls)
	}
	if f.container(id) != nil {
		t.Fatal("container not removed")
	}
	// Destroying again is not an error: the container is gone.
	if err := p.Destroy(ctx, id); err != nil {
		t.Fatal(err)
	}
}

// startSandbox starts a sandbox through the docker provider on a fresh
// fake Engine that has the test image.
func startSandbox(t *testing.T, o sandboxagent.StartOptions) (*fakeEngine, *docker.Provider, *sandboxagent.Client) {
	t.Helper()
	f := newFakeEngine(t, bin)
	f.images[image] = true
	p := newProvider(t, f, nil)
	o.Logger = quiet()
	c, err := sandboxagent.Start(t.Context(), p, o)
	if err != nil {
		t.Fatal(err)
	}
	return f, p, c
}

func toStrings(v any) []string {
	var out []string
	for _, s := range v.([]any) {
		out = append(out, s.(string))
	}
	return out
}

func TestMissingImageIsPulled(t *testing.T) {
	ctx := t.Context()
	f := newFakeEngine(t, bin)
	f.pullable["ghcr.io/acme/sandbox:latest"] = true
	p := newProvider(t, f, func(o *docker.Options) { o.Image = "ghcr.io/acme/sandbox:latest" })
	id, err := p.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Destroy(context.Background(), id)
	if calls := f.callLog(); !slices.Contains(calls, "POST /images/create?fromImage=ghcr.io%2Facme%2Fsandbox%3Alatest") {
		t.Fatalf("no pull: %v", calls)
	}

	// An image no registry has: the Engine's message, and nothing created.
	p2 := newProvider(t, f, func(o *docker.Options) { o.Image = "ghcr.io/acme/missing" })
	_, err = p2.Create(ctx)
	var ae *docker.APIError
	if !errors.As(err, &ae) || !strings.Contains(err.Error(), "pull ghcr.io/acme/missing: manifest for ghcr.io/acme/missing:latest not found") {
		t.Fatalf("missing image: %v", err)
	}
}

// TestEnsureServerRestartsDeadContainer: the server inside the container
// dies; the client's health gate calls EnsureServer after 3 failures, the
// provider starts the container again on the same host port, and the
// session answers.
func TestEnsureServerRestartsDeadContainer(t *testing.T) {
	ctx := t.Context()
	f, _, c := startSandbox(t, sandboxagent.StartOptions{})
	defer c.DestroySandbox(context.Background())
	s := sessiontest.Remembered(t, c, "d")
	// The server dies mid-prompt: that prompt fails at once.
	errc := sessiontest.SlowPromptInFlight(ctx, s)
	id := strings.TrimPrefix(c.SandboxID(), "docker/")
	f.crash(t, id)
	if err := <-errc; !errors.Is(err, sandboxagent.ErrConnectionLost) {
		t.Fatalf("in-flight prompt: %v", err)
	}
	res, err := s.Prompt(ctx, "are you back?")
	if err != nil || res.StopReason != "end_turn" {
		t.Fatalf("prompt after restart: %+v %v", res, err)
	}
	if n := f.starts(id); n != 2 {
		t.Fatalf("container started %d times, want 2", n)
	}
}

// TestPauseAndReconnect: PauseSandbox freezes the container; Start with the
// sandbox id resumes it; a removed container is SandboxDestroyedError.
func TestPauseAndReconnect(t *testing.T) {
	ctx := t.Context()
	f, p, c := startSandbox(t, sandboxagent.StartOptions{})
	sandboxID := c.SandboxID()
	id := strings.TrimPrefix(sandboxID, "docker/")
	if err := c.PauseSandbox(ctx); err != nil {
		t.Fatal(err)
	}
	if !f.paused(id) {
		t.Fatal("not paused")
	}
	c2, err := sandboxagent.Start(ctx, p, sandboxagent.StartOptions{SandboxID: sandboxID, Options: sandboxagent.Options{Logger: quiet()}})
	if err != nil {
		t.Fatal(err)
	}
	if f.paused(id) {
		t.Fatal("still paused after reconnect")
	}
	if h, err := c2.GetHealth(ctx); err != nil || h.Status != "ok" {
		t.Fatalf("health after resume: %+v %v", h, err)
	}
	if err := c2.KillSandbox(ctx); err != nil {
		t.Fatal(err)
	}
	if f.container(id) != nil {
		t.Fatal("kill did not remove the container")
	}
	_, err = sandboxagent.Start(ctx, p, sandboxagent.StartOptions{SandboxID: sandboxID, Options: sandboxagent.Options{Logger: quiet()}})
	var gone *sandboxagent.SandboxDestroyedError
	if !errors.As(err, &gone) || gone.SandboxID != id || gone.Provider != "docker" {
		t.Fatalf("reconnect to a removed container: %v", err)
	}
}

func TestEngineErrors(t *testing.T) {
	ctx := t.Context()
	if _, err := docker.New(docker.Options{}); err == nil || !strings.Contains(err.Error(), "Image is required") {
		t.Fatalf("no image: %v", err)
	}
	if _, err := docker.New(docker.Options{Image: image, DockerHost: "ssh://host"}); err == nil || !strings.Contains(err.Error(), "unsupported DOCKER_HOST") {
		t.Fatalf("ssh host: %v", err)
	}
	sock := filepath.Join(t.TempDir(), "docker.sock")
	p, err := docker.New(docker.Options{Image: image, DockerHost: "unix://" + sock})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Create(ctx); err == nil || !strings.Contains(err.Error(), "cannot reach the Docker Engine at unix://"+sock) {
		t.Fatalf("no engine: %v", err)
	}
	// A container that does not publish the port (e.g. stopped) has no URL.
	f := newFakeEngine(t, bin)
	f.images[image] = true
	p = newProvider(t, f, nil)
	id, err := p.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Destroy(context.Background(), id)
	f.crash(t, id)
	if _, err := p.URL(ctx, id); err == nil || !strings.Contains(err.Error(), "port 3000 is not published") {
		t.Fatalf("URL of a stopped container: %v", err)
	}
	if _, err := p.URL(ctx, "nope"); !errors.As(err, new(*sandboxagent.SandboxDestroyedError)) {
		t.Fatalf("URL of a missing container: %v", err)
	}
}

// TestSleepingSandboxIsWokenUp: the sandbox is paused behind the client's
// back, so its server neither answers nor closes connections. The silent
// event stream is noticed (StreamIdleTimeout), the health gate's attempts
// time out, EnsureServer resumes the container, and the session answers.
// At most the first prompt fails (with ErrConnectionLost), none hangs.
func TestSleepingSandboxIsWokenUp(t *testing.T) {
	ctx := t.Context()
	f, _, c := startSandbox(t, sandboxagent.StartOptions{Options: sandboxagent.Options{
		StreamIdleTimeout: 300 * time.Millisecond,
		Health:            sandboxagent.HealthOptions{AttemptTimeout: 300 * time.Millisecond}}})
	defer c.DestroySandbox(context.Background())
	s := sessiontest.Remembered(t, c, "z")
	id := strings.TrimPrefix(c.SandboxID(), "docker/")
	f.freeze(t, id)
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var (
		res sandboxagent.PromptResponse
		err error
	)
	for attempt := 1; ; attempt++ {
		res, err = s.Prompt(pctx, "are you awake?")
		if err == nil || attempt == 2 || !errors.Is(err, sandboxagent.ErrConnectionLost) {
			break
		}
	}
	if err != nil || res.StopReason != "end_turn" {
		t.Fatalf("prompt after the nap: %+v %v", res, err)
	}
	if f.paused(id) {
		t.Fatal("the container is still paused")
	}
	if !slices.Contains(f.callLog(), "POST /containers/"+id+"/unpause") {
		t.Fatalf("EnsureServer did not unpause: %v", f.callLog())
	}
}
