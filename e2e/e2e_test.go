// Package e2e drives real coding agents (Claude Code, Codex, OpenCode, pi)
// through the server's HTTP API, fully offline: every agent talks to the
// scripted fake LLM of internal/testutil/fakellm. The agents come from the
// cache that scripts/install-test-agents.sh fills with our own installer
// (SANDBOX_AGENT_E2E_AGENTS_DIR, default <repo>/.cache/agents). Without the
// cache the tests skip, unless CI=true, where they fail.
package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sandbox-agent-go/sandbox-agent/internal/agents"
	"github.com/sandbox-agent-go/sandbox-agent/internal/app"
	"github.com/sandbox-agent-go/sandbox-agent/internal/testutil/apptest"
	"github.com/sandbox-agent-go/sandbox-agent/internal/testutil/fakellm"
	"github.com/sandbox-agent-go/sandbox-agent/internal/testutil/proctest"
	"github.com/sandbox-agent-go/sandbox-agent/internal/testutil/wait"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// AgentsDirEnv names the agents cache directory.
const AgentsDirEnv = "SANDBOX_AGENT_E2E_AGENTS_DIR"

func agentsDir() string {
	if d := os.Getenv(AgentsDirEnv); d != "" {
		return d
	}
	abs, _ := filepath.Abs(filepath.Join("..", ".cache", "agents"))
	return abs
}

// requireAgent skips (or, with CI=true, fails) when agent is not cached.
func requireAgent(t *testing.T, agent string) string {
	t.Helper()
	dir := agentsDir()
	m := agents.NewManager(agents.Options{DataDir: dir, Env: []string{"PATH=" + os.Getenv("PATH")}})
	if !m.Installed(agent) {
		msg := fmt.Sprintf("%s is not installed in the agents cache %s: run scripts/install-test-agents.sh (needs the npm registry once; set %s to use another cache)", agent, dir, AgentsDirEnv)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip("skipping: " + msg)
	}
	return dir
}

// harness is one in-process server whose agents see env.
type harness struct {
	url  string
	home string
	cwd  string
	llm  *fakellm.Server
}

func startServer(t *testing.T, dataDir string, env []string, home string) string {
	t.Helper()
	srv := apptest.Start(t, apptest.Options{Home: home, Configure: func(c *app.Config) {
		c.Version = "e2e"
		c.Agents = agents.Options{DataDir: dataDir, Executable: c.Agents.Executable, RequirePreinstall: true, Env: env, RegistryURL: "off", NativeSource: "npm"}
	}})
	return srv.URL
}

// baseEnv is a minimal environment: no real keys leak into the agents.
func baseEnv(home string) []string {
	return []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "LANG=C.UTF-8", "TERM=dumb", "NO_COLOR=1"}
}

// newHarness starts a server for agent from dir (nil: the agents cache).
func newHarness(t *testing.T, agent string, dir func(*testing.T) string, setup func(h *harness) []string) *harness {
	t.Helper()
	if dir == nil {
		dir = func(t *testing.T) string { return requireAgent(t, agent) }
	}
	dataDir := dir(t)
	llm := fakellm.New()
	t.Cleanup(llm.Close)
	root := t.TempDir()
	h := &harness{home: filepath.Join(root, "home"), cwd: filepath.Join(root, "work"), llm: llm}
	for _, d := range []string{h.home, h.cwd} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	env := append(baseEnv(h.home), setup(h)...)
	h.url = startServer(t, dataDir, env, h.home)
	return h
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// agentPGID finds the process group of the agent started for home (the
// agent is our direct child, leader of its own group, with HOME=home).
func agentPGID(t *testing.T, home string) int {
	t.Helper()
	return agentPGID2(t, home, 0)
}

func waitGroupGone(t *testing.T, pgid int) {
	t.Helper()
	wait.Until(t, 5*time.Second, fmt.Sprintf("process group %d is empty after DELETE", pgid), func() bool {
		return len(proctest.GroupMembers(pgid)) == 0
	})
}

// agentCase describes what one agent does, per the verified recipes.
type agentCase struct {
	agent string
	// dataDir returns the data directory to run the agent from (nil: the
	// agents cache).
	dataDir func(*testing.T) string
	setup   func(h *harness) []string
	// auth is the authenticate methodId to send before session/new.
	auth string
	// asksPermission: writes go through session/request_permission.
	asksPermission bool
	// delegatesFS: writes arrive as fs/write_text_file.
	delegatesFS bool
	// terminal: commands arrive as terminal/*.
	terminal bool
	// load: session/load replays an earlier session.
	load bool
	// mode is a session mode to switch to ("" = none).
	mode string
	// model is a model config value or id to switch to, and the substring
	// the fake LLM must then see in the request's model.
	model, modelSeen string
}

func initialize(c *acpClient) map[string]any {
	return c.call("initialize", map[string]any{
		"protocolVersion":    1,
		"clientCapabilities": map[string]any{"fs": map[string]any{"readTextFile": true, "writeTextFile": true}, "terminal": true},
		"clientInfo":         map[string]any{"name": "sandbox-agent-e2e", "version": "1"},
	})
}

func runAgent(t *testing.T, tc agentCase) {
	h := newHarness(t, tc.agent, tc.dataDir, tc.setup)
	c := newClient(t, h.url, "e2e-"+tc.agent, tc.agent, h.cwd)
	start := time.Now()
	initRes := initialize(c)
	if v, _ := initRes["protocolVersion"].(float64); v != 1 {
		t.Fatalf("initialize: %v", initRes)
	}
	pgid := agentPGID(t, h.home)
	if tc.auth != "" {
		c.call("authenticate", map[string]any{"methodId": tc.auth})
	}
	sess := c.call("session/new", map[string]any{"cwd": h.cwd, "mcpServers": []any{}})
	sid, _ := sess["sessionId"].(string)
	if sid == "" {
		t.Fatalf("session/new: %v", sess)
	}

	t.Run("text", func(t *testing.T) {
		m := c.mark()
		stop, _ := c.prompt(sid, "Say hello")
		// The chunks travel on the SSE stream, the answer on the POST: the
		// last chunks may still be in flight when the answer arrives.
		if stop != "end_turn" || !c.waitText(m, "agent_message_chunk", fakellm.DefaultText, 10*time.Second) {
			t.Fatalf("stop %q text %q", stop, c.text(m, "agent_message_chunk"))
		}
		c.mu.Lock()
		firstChunk := c.firstChunk.Sub(c.firstPost)
		c.mu.Unlock()
		t.Logf("%s: first POST /v1/acp → first streamed chunk %s (first turn done %s)", tc.agent,
			firstChunk.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	})

	t.Run("write allowed", func(t *testing.T) {
		target := filepath.Join(h.cwd, "allowed.txt")
		perms, writes := c.requestCount("session/request_permission"), c.requestCount("fs/write_text_file")
		c.setDeny(false)
		stop, text := c.prompt(sid, "WRITE_FILE "+target+" allowed-content")
		if stop != "end_turn" {
			t.Fatalf("stop %q text %q", stop, text)
		}
		if b, err := os.ReadFile(target); err != nil || string(b) != "allowed-content" {
			t.Fatalf("file: %q %v (text %q)", b, err, text)
		}
		if tc.asksPermission && c.requestCount("session/request_permission") == perms {
			t.Error("no session/request_permission")
		}
		if tc.delegatesFS && c.requestCount("fs/write_text_file") == writes {
			t.Error("no fs/write_text_file delegation")
		}
	})

	if tc.asksPermission {
		t.Run("write denied", func(t *testing.T) {
			target := filepath.Join(h.cwd, "denied.txt")
			perms := c.requestCount("session/request_permission")
			m := c.mark()
			c.setDeny(true)
			defer c.setDeny(false)
			stop, _ := c.prompt(sid, "WRITE_FILE "+target+" denied-content")
			if stop != "end_turn" && stop != "cancelled" {
				t.Fatalf("stop %q", stop)
			}
			if c.requestCount("session/request_permission") == perms {
				t.Error("no permission asked")
			}
			// Once every tool call of the turn has settled the agent will
			// not write later; agents that report the rejected call (not
			// codex, whose only trace is the permission request) report it
			// failed.
			if !c.waitToolCallsSettled(m, 10*time.Second) {
				t.Fatalf("tool calls still running after the denial: %v", c.toolStatuses(m))
			}
			if st := c.toolStatuses(m); len(st) != 0 && !slices.Contains(slices.Collect(maps.Values(st)), "failed") {
				t.Fatalf("no tool call failed after the denial: %v", st)
			}
			if _, err := os.Stat(target); !os.IsNotExist(err) {
				t.Fatalf("denied write happened: %v", err)
			}
		})
	}

	t.Run("command", func(t *testing.T) {
		terms := c.requestCount("terminal/create")
		stop, text := c.prompt(sid, "RUN_CMD echo hi-from-"+tc.agent)
		if stop != "end_turn" {
			t.Fatalf("stop %q", stop)
		}
		var seen string
		for _, r := range h.llm.Requests() {
			if r.HasToolResult && strings.Contains(r.ToolResult, "hi-from-"+tc.agent) {
				seen = r.ToolResult
			}
		}
		if seen == "" {
			t.Fatalf("the command output never reached the model (text %q)", text)
		}
		if tc.terminal && c.requestCount("terminal/create") == terms {
			t.Error("no terminal/create")
		}
	})

	if tc.mode != "" {
		t.Run("set_mode", func(t *testing.T) {
			c.call("session/set_mode", map[string]any{"sessionId": sid, "modeId": tc.mode})
		})
	}
	if tc.model != "" {
		t.Run("model", func(t *testing.T) {
			if _, err := c.tryCall("session/set_config_option", map[string]any{"sessionId": sid, "configId": "model", "value": tc.model}, time.Minute); err != nil {
				c.call("session/set_model", map[string]any{"sessionId": sid, "modelId": tc.model})
			}
			h.llm.Reset()
			if stop, _ := c.prompt(sid, "Say hello again"); stop != "end_turn" {
				t.Fatal(stop)
			}
			var models []string
			for _, r := range h.llm.Requests() {
				if r.API != "count_tokens" && r.API != "other" {
					models = append(models, r.Model)
				}
			}
			if !strings.Contains(strings.Join(models, ","), tc.modelSeen) {
				t.Fatalf("model change not seen by the LLM: %v", models)
			}
		})
	}

	t.Run("cancel", func(t *testing.T) {
		h.llm.SetSlow(40, 250*time.Millisecond)
		m := c.mark()
		type result struct {
			stop string
			err  error
		}
		done := make(chan result, 1)
		go func() {
			res, err := c.tryCall("session/prompt", map[string]any{"sessionId": sid, "prompt": []any{map[string]any{"type": "text", "text": "SLOW"}}}, time.Minute)
			stop, _ := res["stopReason"].(string)
			done <- result{stop, err}
		}()
		if !c.waitText(m, "agent_message_chunk", "word2", 30*time.Second) {
			t.Fatalf("no slow stream: %q", c.text(m, "agent_message_chunk"))
		}
		c.notify("session/cancel", map[string]any{"sessionId": sid})
		select {
		case r := <-done:
			if r.err != nil || r.stop != "cancelled" {
				t.Fatalf("stop %q err %v", r.stop, r.err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("prompt not cancelled within 20s")
		}
		if strings.Contains(c.text(m, "agent_message_chunk"), "word40") {
			t.Fatal("the stream ran to its end")
		}
	})

	if tc.load {
		t.Run("session/load", func(t *testing.T) {
			c2 := newClient(t, h.url, "e2e-"+tc.agent+"-load", tc.agent, h.cwd)
			res := initialize(c2)
			caps, _ := res["agentCapabilities"].(map[string]any)
			if caps["loadSession"] != true {
				t.Fatalf("no loadSession capability: %v", res)
			}
			if tc.auth != "" {
				c2.call("authenticate", map[string]any{"methodId": tc.auth})
			}
			m := c2.mark()
			c2.call("session/load", map[string]any{"sessionId": sid, "cwd": h.cwd, "mcpServers": []any{}})
			if !c2.waitText(m, "user_message_chunk", "Say hello", 10*time.Second) {
				t.Fatalf("history not replayed: kinds %v", c2.kinds(m))
			}
			// The POST answers when the agent's reply arrives; replayed
			// notifications travel on the SSE stream and may still be in flight.
			if !c2.waitText(m, "agent_message_chunk", fakellm.DefaultText, 10*time.Second) {
				t.Fatalf("agent history not replayed: %v", c2.kinds(m))
			}
			pg := agentPGID2(t, h.home, pgid)
			c2.delete()
			waitGroupGone(t, pg)
		})
	}

	t.Run("delete leaves no process", func(t *testing.T) {
		if len(proctest.GroupMembers(pgid)) == 0 {
			t.Fatal("agent already gone before DELETE")
		}
		c.delete()
		waitGroupGone(t, pgid)
	})
}

// agentPGID2 finds a second agent process for home, other than not.
// agentPGID2 waits for a child of this test process (other than not; 0
// for none) whose environment has HOME=home, i.e. the agent the server
// spawned for that harness, and returns its pid (which is its pgid).
func agentPGID2(t *testing.T, home string, not int) int {
	t.Helper()
	var found int
	wait.Until(t, 5*time.Second, "an agent process with HOME="+home+" runs", func() bool {
		for _, pid := range proctest.Children(os.Getpid()) {
			if pid == not {
				continue
			}
			b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
			if err != nil {
				continue
			}
			if strings.Contains("\x00"+string(b), "\x00HOME="+home+"\x00") {
				found = pid
				return true
			}
		}
		return false
	})
	return found
}

func claudeEnv(h *harness) []string { return h.llm.ClaudeEnv() }

func TestClaude(t *testing.T) {
	t.Parallel()
	// claude-agent-acp ≥0.49 runs Write and Bash inside Claude Code (with
	// a permission request each) instead of delegating fs/* and terminal/*
	// to the client as claude-code-acp 0.16 did (TestClaudeDelegatesToClient
	// covers that path).
	runAgent(t, agentCase{agent: "claude", setup: claudeEnv,
		asksPermission: true, load: true,
		mode: "acceptEdits", model: "haiku", modelSeen: "haiku"})
}

// TestClaudeDelegatesToClient runs Claude Code through the older adapter,
// claude-code-acp 0.16.2 (installed from e2e/testdata by
// scripts/install-test-agents.sh), which hands file writes and shell
// commands to the client as fs/write_text_file and terminal/*: the
// delegation paths of the protocol, end to end through the server.
func TestClaudeDelegatesToClient(t *testing.T) {
	t.Parallel()
	runAgent(t, agentCase{agent: "claude", dataDir: legacyClaudeDir, setup: claudeEnv,
		asksPermission: true, delegatesFS: true, terminal: true, load: true, mode: "acceptEdits"})
}

// legacyClaudeDir links the cached Claude install into a fresh data
// directory whose launcher starts claude-code-acp 0.16.2 instead (any
// executable at agent_processes/claude-acp is the agent).
func legacyClaudeDir(t *testing.T) string {
	t.Helper()
	cache := requireAgent(t, "claude")
	bin := filepath.Join(cache, "claude-code-acp", "node_modules", ".bin", "claude-code-acp")
	if _, err := os.Stat(bin); err != nil {
		msg := fmt.Sprintf("the legacy Claude adapter is not in the agents cache (%v): run scripts/install-test-agents.sh", err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip("skipping: " + msg)
	}
	dir := t.TempDir()
	if err := agents.LinkAgent(cache, dir, "claude"); err != nil {
		t.Fatal(err)
	}
	launcher := agents.NewManager(agents.Options{DataDir: dir, Env: []string{}}).LauncherPath("claude")
	if err := os.Remove(launcher); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(launcher, []byte("#!/bin/sh\nexec '"+bin+"' \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestCodex(t *testing.T) {
	t.Parallel()
	runAgent(t, agentCase{agent: "codex", auth: "openai-api-key",
		setup: func(h *harness) []string {
			codexHome := filepath.Join(h.home, ".codex")
			writeFile(t, filepath.Join(codexHome, "config.toml"), `model = "gpt-5.3-codex"
model_provider = "fake"
approval_policy = "untrusted"
sandbox_mode = "danger-full-access"
[model_providers.fake]
name = "Fake"
base_url = "`+h.llm.OpenAIBaseURL()+`"
env_key = "OPENAI_API_KEY"
wire_api = "responses"
`)
			return []string{"CODEX_HOME=" + codexHome, "OPENAI_API_KEY=sk-fake"}
		},
		asksPermission: true, load: true, mode: "full-access"})
}

func TestOpenCode(t *testing.T) {
	t.Parallel()
	runAgent(t, agentCase{agent: "opencode",
		setup: func(h *harness) []string {
			cfg := map[string]any{
				"model": "anthropic/claude-sonnet-4-5", "small_model": "anthropic/claude-haiku-4-5",
				"autoupdate": false, "share": "disabled",
				"permission": map[string]any{"edit": "ask", "bash": "ask"},
				"provider":   map[string]any{"anthropic": map[string]any{"options": map[string]any{"baseURL": h.llm.OpenAIBaseURL(), "apiKey": "sk-ant-fake"}}},
			}
			b, _ := json.Marshal(cfg)
			return []string{"ANTHROPIC_API_KEY=sk-ant-fake", "OPENCODE_DISABLE_MODELS_FETCH=1", "OPENCODE_DISABLE_AUTOUPDATE=1",
				"OPENCODE_DISABLE_SHARE=1", "OPENCODE_DISABLE_LSP_DOWNLOAD=1", "OPENCODE_DISABLE_DEFAULT_PLUGINS=1",
				"OPENCODE_CONFIG_CONTENT=" + string(b)}
		},
		asksPermission: true, delegatesFS: true, load: true, mode: "plan"})
}

func TestPi(t *testing.T) {
	t.Parallel()
	runAgent(t, agentCase{agent: "pi",
		setup: func(h *harness) []string {
			writeFile(t, filepath.Join(h.home, ".pi", "agent", "models.json"), `{"providers":{"fake":{"baseUrl":"`+h.llm.OpenAIBaseURL()+
				`","api":"openai-completions","apiKey":"sk-fake","compat":{"supportsDeveloperRole":false,"supportsReasoningEffort":false},"models":[{"id":"fake-model"}]}}}`)
			writeFile(t, filepath.Join(h.home, ".pi", "agent", "settings.json"), `{"defaultProvider":"fake","defaultModel":"fake-model","quietStartup":true}`)
			return nil
		}})
}

// TestAgentsReportedInstalled checks /v1/agents for the cached agents.
func TestAgentsReportedInstalled(t *testing.T) {
	dir := requireAgent(t, "claude")
	home := t.TempDir()
	url := startServer(t, dir, append(baseEnv(home), "ANTHROPIC_API_KEY=sk-ant-fake"), home)
	resp, err := http.Get(url + "/v1/agents?config=true")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var list struct {
		Agents []agents.Info `json:"agents"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatal(err)
	}
	for _, a := range list.Agents {
		if a.ID == "claude" {
			if !a.Installed || !a.CredentialsAvailable || a.Version == "" || a.Version == "unknown" || !strings.HasPrefix(a.Path, dir) {
				t.Fatalf("%+v", a)
			}
			return
		}
	}
	t.Fatal("no claude")
}
