// Package compat runs the official sandbox-agent TypeScript SDK (pinned in
// package.json) against a freshly built and started Go server. Each *.mjs
// script (lib.mjs aside) asserts and exits non-zero on failure.
package compat

import (
	"context"
	"fmt"
	"github.com/sandbox-agent-go/sandbox-agent/internal/serverprobe"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/internal/agents"
	"github.com/sandbox-agent-go/sandbox-agent/internal/testutil/fakellm"
	"github.com/sandbox-agent-go/sandbox-agent/internal/testutil/testbin"
)

func requireNode(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat("node_modules/sandbox-agent/package.json")
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("compat needs node and `npm ci` in compat/ (the README test command does this): %v", err)
		}
		t.Skipf("skipping: %v (run `npm ci` in compat/)", err)
	}
	return node
}

func freePort(t *testing.T) int {
	t.Helper()
	p, err := serverprobe.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// startServer builds cmd/sandbox-agent and runs it with a token.
func startServer(t *testing.T) (url, token string) {
	t.Helper()
	dir := t.TempDir()
	bin, err := testbin.Build(dir)
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	token = "compat-token"
	home := filepath.Join(dir, "home")
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	srv := exec.Command(bin, "server", "--port", fmt.Sprint(port), "--token", token, "--log-level", "debug")
	// Real agents (claude.mjs) come from the pinned cache that
	// scripts/install-test-agents.sh fills, talking to a fake LLM.
	data := filepath.Join(dir, "data")
	llm := fakellm.New()
	t.Cleanup(llm.Close)
	cache := os.Getenv("SANDBOX_AGENT_E2E_AGENTS_DIR")
	if cache == "" {
		cache, _ = filepath.Abs("../.cache/agents")
	}
	if err := agents.LinkAgent(cache, data, "claude"); err != nil {
		t.Logf("claude.mjs will skip: %v", err)
	}
	srv.Env = append(append(os.Environ(), "HOME="+home, "SANDBOX_AGENT_DATA_DIR="+data), llm.ClaudeEnv()...)
	srv.Stdout, srv.Stderr = logf, logf
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = srv.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- srv.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("server did not exit cleanly on SIGINT: %v", err)
			}
		case <-time.After(10 * time.Second):
			_ = srv.Process.Kill()
			<-done
			t.Error("server did not stop within 10s of SIGINT")
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("server log:\n%s", b)
		}
	})
	url = fmt.Sprintf("http://127.0.0.1:%d", port)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/v1/health", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return url, token
			}
		}
		select {
		case <-ctx.Done():
			t.Fatal("server did not become healthy")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func TestOfficialSDK(t *testing.T) {
	node := requireNode(t)
	url, token := startServer(t)
	scripts, _ := filepath.Glob("*.mjs")
	for _, s := range scripts {
		if s == "lib.mjs" {
			continue
		}
		t.Run(strings.TrimSuffix(s, ".mjs"), func(t *testing.T) {
			// Node 20 only has a global WebSocket behind this flag (the SDK's
			// terminal needs it); later versions accept and ignore it.
			cmd := exec.CommandContext(t.Context(), node, "--experimental-websocket", s)
			cmd.Env = append(os.Environ(), "SANDBOX_AGENT_URL="+url, "SANDBOX_AGENT_TOKEN="+token)
			out, err := cmd.CombinedOutput()
			t.Logf("%s", out)
			if err != nil {
				t.Fatalf("%s failed: %v", s, err)
			}
		})
	}
}
