//go:build unix

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	sandboxagent "github.com/sandbox-agent-go/sandbox-agent"
	"github.com/sandbox-agent-go/sandbox-agent/internal/testutil/testbin"
)

var server string // the sandbox-agent binary

func TestMain(m *testing.M) { os.Exit(testbin.Main(m, &server)) }

// start runs the example in its own process group (kill -9 of the group is
// a machine crash: the example and the sandbox-agent it started die).
func start(t *testing.T, bin, dataDir string) (endpoint string, pgid int) {
	t.Helper()
	cmd := exec.Command(bin, "-listen", "127.0.0.1:0", "-data-dir", dataDir)
	cmd.Env = append(os.Environ(), "SANDBOX_AGENT_BIN="+server)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "READY "); ok {
				var r struct{ Endpoint string }
				_ = json.Unmarshal([]byte(rest), &r)
				ready <- r.Endpoint
			}
		}
		close(ready)
	}()
	select {
	case ep, ok := <-ready:
		if !ok {
			t.Fatal("the example exited before READY")
		}
		return ep, cmd.Process.Pid
	case <-time.After(30 * time.Second):
		t.Fatal("no READY in 30 s")
	}
	return "", 0
}

// call runs a workspace action as rivetkit's stateless call does.
func call(t *testing.T, endpoint, workspace, action string, out any, args ...any) {
	t.Helper()
	if args == nil {
		args = []any{}
	}
	body, _ := json.Marshal(map[string]any{"args": args})
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", endpoint+"/gateway/workspace/action/"+action+
		"?rvt-method=getOrCreate&rvt-key="+workspace, strings.NewReader(string(body)))
	req.Header.Set("x-rivet-encoding", "json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %d %s", action, resp.StatusCode, b)
	}
	var r struct{ Output json.RawMessage }
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if out != nil {
		if err := json.Unmarshal(r.Output, out); err != nil {
			t.Fatalf("%s output %s: %v", action, r.Output, err)
		}
	}
}

// Kill -9 the example (and its sandbox-agent) and start it again on the
// same data dir: the session and its history are back, replayed into the
// new server.
func TestKillAndRestartKeepsTheSession(t *testing.T) {
	dir := t.TempDir()
	bin, err := testbin.Build(dir, "./examples/multiplayer")
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	ep, pgid := start(t, bin, data)
	var res sandboxagent.PromptResponse
	call(t, ep, "ws-k", "prompt", &res, map[string]string{"userId": "ada", "text": "remember the number 42"})
	if res.StopReason != "end_turn" {
		t.Fatalf("prompt: %+v", res)
	}
	var before struct{ SandboxID string }
	call(t, ep, "ws-k", "getSessionInfo", &before)
	if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}

	ep, _ = start(t, bin, data)
	call(t, ep, "ws-k", "prompt", &res, map[string]string{"userId": "ada", "text": "what did I say?"})
	var info struct {
		WorkspaceID string `json:"workspaceId"`
		SandboxID   string `json:"sandboxId"`
	}
	call(t, ep, "ws-k", "getSessionInfo", &info)
	if info.WorkspaceID != "ws-k" || info.SandboxID == "" || info.SandboxID == before.SandboxID {
		t.Fatalf("info %+v (before: %s): want a new sandbox", info, before.SandboxID)
	}
	var prompts [][]string
	call(t, ep, "ws-k", "history", &prompts)
	if len(prompts) != 2 || prompts[0][0] != "remember the number 42" {
		t.Fatalf("history %q", prompts)
	}
	second := prompts[1]
	if len(second) != 2 || !strings.HasPrefix(second[0], sandboxagent.ReplayPrefix) ||
		!strings.Contains(second[0], "remember the number 42") || second[1] != "what did I say?" {
		t.Fatalf("the new server's first prompt lacks the replayed history: %q", second)
	}
}

// Two Chromium tabs on one workspace, the docs' browser code with the
// pinned rivetkit browser build served by the example: both see chat.user
// and the streamed reply; nothing leaves the origin.
func TestTwoBrowserTabs(t *testing.T) {
	compat, _ := filepath.Abs("../../multiplayer/compat")
	if _, err := os.Stat(filepath.Join(compat, "node_modules/playwright-core")); err != nil || !exists("/usr/bin/chromium") {
		if os.Getenv("CI") == "true" {
			t.Fatal("node_modules or /usr/bin/chromium missing; the README's test command installs them")
		}
		t.Skip("needs multiplayer/compat/node_modules and /usr/bin/chromium")
	}
	dir := t.TempDir()
	bin, err := testbin.Build(dir, "./examples/multiplayer")
	if err != nil {
		t.Fatal(err)
	}
	ep, _ := start(t, bin, filepath.Join(dir, "data"))
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "browser/browser.mjs", ep, ep+"/?workspace=ws-tabs")
	cmd.Dir = compat
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{`"chat-and-reply-alice","ok":true`, `"chat-and-reply-bob","ok":true`, `"no-foreign-requests","ok":true`} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("missing %s:\n%s", want, out)
		}
	}
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// The page's rivetkit-client.js is the pinned rivetkit browser build,
// bundled (multiplayer/compat/browser/serve.mjs --out): a fresh bundle from
// the npm package must be byte-identical, so the vendored file cannot drift
// from the version the conformance tests pin.
func TestBundleIsThePinnedRivetkit(t *testing.T) {
	compat, _ := filepath.Abs("../../multiplayer/compat")
	if _, err := os.Stat(filepath.Join(compat, "node_modules/rivetkit")); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("multiplayer/compat/node_modules missing")
		}
		t.Skip("needs multiplayer/compat/node_modules")
	}
	out := t.TempDir()
	cmd := exec.CommandContext(t.Context(), "node", "browser/serve.mjs", "--out", out)
	cmd.Dir = compat
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	fresh, err := os.ReadFile(filepath.Join(out, "rivetkit-client.js"))
	if err != nil {
		t.Fatal(err)
	}
	vendored, err := os.ReadFile("web/rivetkit-client.js")
	if err != nil {
		t.Fatal(err)
	}
	if string(fresh) != string(vendored) {
		t.Fatalf("web/rivetkit-client.js (%d bytes) differs from a fresh bundle (%d bytes): regenerate with `node browser/serve.mjs --out` in multiplayer/compat", len(vendored), len(fresh))
	}
}
