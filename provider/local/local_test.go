package local_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sandboxagent "github.com/sandbox-agent-go/sandbox-agent"
	"github.com/sandbox-agent-go/sandbox-agent/internal/testutil/sessiontest"
	"github.com/sandbox-agent-go/sandbox-agent/internal/testutil/testbin"
	"github.com/sandbox-agent-go/sandbox-agent/provider/local"
)

var bin string

func TestMain(m *testing.M) { os.Exit(testbin.Main(m, &bin)) }

func newProvider(t *testing.T) *local.Provider {
	home := t.TempDir()
	p := local.New(local.Options{BinaryPath: bin, Env: []string{"HOME=" + home, "SANDBOX_AGENT_DATA_DIR=" + filepath.Join(home, "data")}})
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func TestStartPromptDestroy(t *testing.T) {
	ctx := t.Context()
	p := newProvider(t)
	t0 := time.Now()
	c, err := sandboxagent.Start(ctx, p, sandboxagent.StartOptions{Options: sandboxagent.Options{Logger: slog.New(slog.DiscardHandler)}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(c.SandboxID(), "local/127.0.0.1:") {
		t.Fatalf("sandbox id %q", c.SandboxID())
	}
	s, err := c.CreateSession(ctx, sandboxagent.CreateSessionRequest{Agent: "mock", Cwd: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	first := make(chan time.Duration, 1)
	s.OnEvent(func(ev sandboxagent.SessionEvent) {
		if _, ok := ev.AgentMessageChunk(); ok {
			select {
			case first <- time.Since(t0):
			default:
			}
		}
	})
	if _, err := s.Prompt(ctx, "hi"); err != nil {
		t.Fatal(err)
	}
	t.Logf("Start → first streamed chunk: %s", <-first)
	// Without the token the server refuses, as a typed *Error.
	anon, err := sandboxagent.Connect(ctx, sandboxagent.Options{BaseURL: c.BaseURL(), Health: sandboxagent.HealthOptions{Disabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = anon.GetHealth(ctx)
	var apiErr *sandboxagent.Error
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnauthorized {
		t.Fatalf("anonymous health: %v", err)
	}
	_ = anon.Close(ctx)
	// With a wrong token the health gate stops at once instead of waiting
	// out its timeout.
	if wrong, err := sandboxagent.Connect(ctx, sandboxagent.Options{BaseURL: c.BaseURL(), Token: "wrong"}); !errors.Is(err, sandboxagent.ErrUnauthorized) {
		if wrong != nil {
			_ = wrong.Close(ctx)
		}
		t.Fatalf("wrong token: %v", err)
	}
	if err := c.DestroySandbox(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := (&http0{}).get(c.BaseURL()); err == nil {
		t.Fatal("server still answering after destroy")
	}
}

func TestEnsureServerRecoversKilledServer(t *testing.T) {
	ctx := t.Context()
	p := newProvider(t)
	c, err := sandboxagent.Start(ctx, p, sandboxagent.StartOptions{Options: sandboxagent.Options{Logger: slog.New(slog.DiscardHandler)}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	s := sessiontest.Remembered(t, c, "k")
	errc := sessiontest.SlowPromptInFlight(ctx, s)
	rawID := strings.TrimPrefix(c.SandboxID(), "local/")
	killed := time.Now()
	if err := p.Kill(ctx, rawID); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, sandboxagent.ErrConnectionLost) {
		t.Fatalf("in-flight prompt: %v", err)
	}
	res, err := s.Prompt(ctx, "are you back?")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("killed server → resumed session answered: %s", time.Since(killed))
	if res.StopReason != "end_turn" {
		t.Fatalf("stop reason %q", res.StopReason)
	}
}

type http0 struct{}

func (http0) get(u string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u+"/v1/health", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
