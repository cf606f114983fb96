// Package providertest is the conformance suite every remote sandbox
// provider runs against its vendor fake: the required scenario
// (start with a token → session → the sandbox sleeps → the next prompt
// fails fast or waits in the health gate → EnsureServer wakes the sandbox
// and the server → the session goes on with its history), reconnecting by
// id from a new provider, a deleted sandbox, and Destroy leaving no
// process. It is test support: only providers' tests import it.
package providertest

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	sandboxagent "github.com/sandbox-agent-go/sandbox-agent"
	"github.com/sandbox-agent-go/sandbox-agent/internal/testutil/sessiontest"
)

// Fixture is one fresh vendor fake and the ways a test acts on it
// behind the provider's back.
type Fixture struct {
	// NewProvider returns a provider configured against the fake, with
	// BinaryPath the test binary. Each call is a new instance (a new
	// application process, sharing only the vendor).
	NewProvider func(t *testing.T) sandboxagent.SandboxProvider
	// Sleep puts the sandbox to sleep as the vendor would on its own
	// (idle stop, session timeout): its port stops answering and its
	// processes are frozen or gone.
	Sleep func(t *testing.T, rawID string)
	// SleepLosesServer: after Sleep the server's process is gone (a cold
	// boot), so EnsureServer must start it again and the session is
	// restored by replaying its history; otherwise it was frozen and
	// simply continues.
	SleepLosesServer bool
	// Delete deletes the sandbox on the vendor's side.
	Delete func(t *testing.T, rawID string)
	// Leftovers lists the sandbox's processes still alive.
	Leftovers func(rawID string) []int
	// ServerStarts counts the server starts the fake has seen for the
	// sandbox (commands that ran `daemon start` and started a daemon).
	ServerStarts func(rawID string) int
}

// quick makes a frozen server noticed in well under a second instead of the
// SDK's production defaults; the health schedule itself stays upstream's.
func quick() sandboxagent.Options {
	return sandboxagent.Options{
		StreamIdleTimeout: 500 * time.Millisecond,
		Health:            sandboxagent.HealthOptions{AttemptTimeout: 500 * time.Millisecond, Timeout: 60 * time.Second},
	}
}

// Run runs the suite; newFixture is called once per subtest.
func Run(t *testing.T, name string, newFixture func(t *testing.T) Fixture) {
	t.Run("SleepEnsureServerRestore", func(t *testing.T) { sleepRestore(t, name, newFixture(t)) })
	t.Run("ReconnectFromNewProvider", func(t *testing.T) { reconnect(t, name, newFixture(t)) })
	t.Run("ReconnectDeleted", func(t *testing.T) { reconnectDeleted(t, name, newFixture(t)) })
	t.Run("DestroyLeavesNothing", func(t *testing.T) { destroy(t, name, newFixture(t)) })
}

func start(t *testing.T, p sandboxagent.SandboxProvider, o sandboxagent.StartOptions) (*sandboxagent.Client, string) {
	t.Helper()
	c, err := sandboxagent.Start(t.Context(), p, o)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	raw, ok := strings.CutPrefix(c.SandboxID(), p.Name()+"/")
	if !ok || raw == "" {
		t.Fatalf("sandbox id %q", c.SandboxID())
	}
	return c, raw
}

// requireToken checks the server refuses a request without the token the
// provider reported: upstream starts remote servers with --no-token.
func requireToken(t *testing.T, p sandboxagent.SandboxProvider, c *sandboxagent.Client, raw string) {
	t.Helper()
	tp, ok := p.(sandboxagent.TokenProvider)
	if !ok {
		t.Fatal("provider has no Token")
	}
	tok, err := tp.Token(t.Context(), raw)
	if err != nil || len(tok) < 32 {
		t.Fatalf("Token: %q %v", tok, err)
	}
	hc := http.DefaultClient
	if hp, ok := p.(sandboxagent.HTTPClientProvider); ok {
		if hc, err = hp.HTTPClient(t.Context(), raw); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		token string
		want  int
	}{{"", http.StatusUnauthorized}, {"wrong", http.StatusUnauthorized}, {tok, http.StatusOK}} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, c.BaseURL()+"/v1/agents", nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Fatalf("GET /v1/agents with token %q: %d, want %d", tc.token, resp.StatusCode, tc.want)
		}
	}
}

func sleepRestore(t *testing.T, name string, f Fixture) {
	ctx := t.Context()
	p := f.NewProvider(t)
	if p.Name() != name {
		t.Fatalf("Name %q, want %q", p.Name(), name)
	}
	c, raw := start(t, p, sandboxagent.StartOptions{Options: quick()})
	t.Cleanup(func() { _ = p.Destroy(context.Background(), raw) })
	requireToken(t, p, c, raw)
	s := sessiontest.Remembered(t, c, "nap")
	// The connection, not the agent's session id: a restarted mock agent
	// numbers its sessions from 1 again, so the id may well repeat.
	connID := s.Record().LastConnectionID
	starts := f.ServerStarts(raw)
	f.Sleep(t, raw)

	pctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	var (
		res sandboxagent.PromptResponse
		err error
	)
	// The first prompt may fail fast with ErrConnectionLost (the stream
	// broke or went silent); it must not hang, and the second must succeed.
	for attempt := 1; ; attempt++ {
		res, err = s.Prompt(pctx, "are you awake?")
		if err == nil || attempt == 2 || !errors.Is(err, sandboxagent.ErrConnectionLost) {
			break
		}
	}
	if err != nil || res.StopReason != "end_turn" {
		t.Fatalf("prompt after the sleep: %+v %v", res, err)
	}
	if f.SleepLosesServer {
		if n := f.ServerStarts(raw); n <= starts {
			t.Fatalf("server starts %d → %d: EnsureServer did not start it again", starts, n)
		}
		if s.Record().LastConnectionID == connID {
			t.Fatal("the session is still bound to its connection from before the cold boot?")
		}
		prompt := lastPrompt(t, c, "nap")
		if len(prompt) != 2 || !strings.HasPrefix(prompt[0], sandboxagent.ReplayPrefix) ||
			!strings.Contains(prompt[0], "remember me") || prompt[1] != "are you awake?" {
			t.Fatalf("the restored session's prompt lacks its history: %q", prompt)
		}
	} else if n := f.ServerStarts(raw); n != starts {
		t.Fatalf("server started again (%d → %d) although it was only frozen", starts, n)
	}
	// And it keeps working.
	if res, err := s.Prompt(ctx, "still there?"); err != nil || res.StopReason != "end_turn" {
		t.Fatalf("prompt after recovery: %+v %v", res, err)
	}
}

func lastPrompt(t *testing.T, c *sandboxagent.Client, id string) []string {
	t.Helper()
	var last json.RawMessage
	cursor := ""
	for {
		page, err := c.GetEvents(t.Context(), sandboxagent.ListEventsRequest{SessionID: id, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Items {
			var m struct {
				Method string `json:"method"`
			}
			if json.Unmarshal(e.Payload, &m) == nil && m.Method == "session/prompt" {
				last = e.Payload
			}
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	var p struct {
		Params struct {
			Prompt []struct {
				Text string `json:"text"`
			} `json:"prompt"`
		} `json:"params"`
	}
	if err := json.Unmarshal(last, &p); err != nil {
		t.Fatalf("no session/prompt event: %v", err)
	}
	var out []string
	for _, b := range p.Params.Prompt {
		out = append(out, b.Text)
	}
	return out
}

// reconnect: a new provider instance (a new application process) finds the
// sandbox by id, recovers its token and talks to the running server,
// without starting a second one.
func reconnect(t *testing.T, name string, f Fixture) {
	p1 := f.NewProvider(t)
	c1, raw := start(t, p1, sandboxagent.StartOptions{})
	t.Cleanup(func() { _ = p1.Destroy(context.Background(), raw) })
	starts := f.ServerStarts(raw)
	p2 := f.NewProvider(t)
	c2, _ := start(t, p2, sandboxagent.StartOptions{SandboxID: c1.SandboxID()})
	if c2.SandboxID() != name+"/"+raw {
		t.Fatalf("sandbox id %q", c2.SandboxID())
	}
	requireToken(t, p2, c2, raw)
	if n := f.ServerStarts(raw); n != starts {
		t.Fatalf("reconnecting started the server again (%d → %d)", starts, n)
	}
	if _, err := c2.ListAgents(t.Context(), sandboxagent.AgentQuery{}); err != nil {
		t.Fatal(err)
	}
}

func reconnectDeleted(t *testing.T, name string, f Fixture) {
	p := f.NewProvider(t)
	c, raw := start(t, p, sandboxagent.StartOptions{})
	f.Delete(t, raw)
	_, err := sandboxagent.Start(t.Context(), f.NewProvider(t), sandboxagent.StartOptions{SandboxID: c.SandboxID()})
	var de *sandboxagent.SandboxDestroyedError
	if !errors.As(err, &de) || de.SandboxID != raw || de.Provider != name {
		t.Fatalf("Start with a deleted sandbox: %v", err)
	}
	if r, ok := p.(sandboxagent.SandboxReconnecter); ok {
		if err := r.Reconnect(t.Context(), raw); !errors.As(err, &de) {
			t.Fatalf("Reconnect: %v", err)
		}
	}
	if len(f.Leftovers(raw)) != 0 {
		t.Fatalf("processes left by the deleted sandbox: %v", f.Leftovers(raw))
	}
}

func destroy(t *testing.T, _ string, f Fixture) {
	p := f.NewProvider(t)
	c, raw := start(t, p, sandboxagent.StartOptions{})
	if _, err := c.CreateSession(t.Context(), sandboxagent.CreateSessionRequest{Agent: "mock"}); err != nil {
		t.Fatal(err)
	}
	if len(f.Leftovers(raw)) == 0 {
		t.Fatal("Leftovers sees no process in a running sandbox: the check below could not fail")
	}
	if err := c.DestroySandbox(t.Context()); err != nil {
		t.Fatal(err)
	}
	if left := f.Leftovers(raw); len(left) != 0 {
		t.Fatalf("processes left after Destroy: %v", left)
	}
	var de *sandboxagent.SandboxDestroyedError
	if r, ok := p.(sandboxagent.SandboxReconnecter); ok {
		if err := r.Reconnect(t.Context(), raw); !errors.As(err, &de) {
			t.Fatalf("Reconnect after Destroy: %v", err)
		}
	}
}
