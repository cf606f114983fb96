package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/internal/agents"
	"github.com/sandbox-agent-go/sandbox-agent/internal/testutil/fakellm"
)

// agentSetup is the per-agent environment and config for the fake LLM,
// as in e2e/e2e_test.go.
type agentSetup struct {
	name string
	auth string // authenticate methodId, if the agent needs it
	prep func(llm *fakellm.Server, home string) ([]string, error)
}

func writeFileAll(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(content), 0o644)
}

var agentSetups = map[string]agentSetup{
	"claude": {name: "claude", prep: func(llm *fakellm.Server, home string) ([]string, error) {
		return llm.ClaudeEnv(), nil
	}},
	"codex": {name: "codex", auth: "openai-api-key", prep: func(llm *fakellm.Server, home string) ([]string, error) {
		codexHome := filepath.Join(home, ".codex")
		err := writeFileAll(filepath.Join(codexHome, "config.toml"), `model = "gpt-5.3-codex"
model_provider = "fake"
approval_policy = "untrusted"
sandbox_mode = "danger-full-access"
[model_providers.fake]
name = "Fake"
base_url = "`+llm.OpenAIBaseURL()+`"
env_key = "OPENAI_API_KEY"
wire_api = "responses"
`)
		return []string{"CODEX_HOME=" + codexHome, "OPENAI_API_KEY=sk-fake"}, err
	}},
	"opencode": {name: "opencode", prep: func(llm *fakellm.Server, home string) ([]string, error) {
		cfg := map[string]any{
			"model": "anthropic/claude-sonnet-4-5", "small_model": "anthropic/claude-haiku-4-5",
			"autoupdate": false, "share": "disabled",
			"permission": map[string]any{"edit": "ask", "bash": "ask"},
			"provider":   map[string]any{"anthropic": map[string]any{"options": map[string]any{"baseURL": llm.OpenAIBaseURL(), "apiKey": "sk-ant-fake"}}},
		}
		b, _ := json.Marshal(cfg)
		return []string{"ANTHROPIC_API_KEY=sk-ant-fake", "OPENCODE_DISABLE_MODELS_FETCH=1", "OPENCODE_DISABLE_AUTOUPDATE=1",
			"OPENCODE_DISABLE_SHARE=1", "OPENCODE_DISABLE_LSP_DOWNLOAD=1", "OPENCODE_DISABLE_DEFAULT_PLUGINS=1",
			"OPENCODE_CONFIG_CONTENT=" + string(b)}, nil
	}},
	"pi": {name: "pi", prep: func(llm *fakellm.Server, home string) ([]string, error) {
		if err := writeFileAll(filepath.Join(home, ".pi", "agent", "models.json"), `{"providers":{"fake":{"baseUrl":"`+llm.OpenAIBaseURL()+
			`","api":"openai-completions","apiKey":"sk-fake","compat":{"supportsDeveloperRole":false,"supportsReasoningEffort":false},"models":[{"id":"fake-model"}]}}}`); err != nil {
			return nil, err
		}
		return nil, writeFileAll(filepath.Join(home, ".pi", "agent", "settings.json"), `{"defaultProvider":"fake","defaultModel":"fake-model","quietStartup":true}`)
	}},
}

// agentTimes is one measured first turn.
type agentTimes struct {
	init, firstChunk, turn time.Duration
}

// realAgents: for each real agent, fresh server (fresh HOME with the agent
// linked from the agents cache) per sample, alternating ours and upstream:
// first POST /v1/acp/{id}?agent=… (initialize) → session/new →
// session/prompt, timed to the first agent_message_chunk on SSE.
func realAgents(ctx context.Context, cfg *config, res *results, targets []*target, tmp, agentBin string) error {
	cache, err := filepath.Abs(cfg.agentsCache)
	if err != nil {
		return err
	}
	llm := fakellm.New()
	defer llm.Close()
	for a := range strings.SplitSeq(cfg.agentList, ",") {
		a = strings.TrimSpace(a)
		setup, ok := agentSetups[a]
		if !ok {
			return fmt.Errorf("-agents: unknown agent %q", a)
		}
		key := "agent." + a
		row := a + ": first POST /v1/acp (initialize) → session/new → prompt → first agent_message_chunk on SSE"
		turnRow := a + ": first POST /v1/acp → prompt response (first turn done)"
		initRow := a + ": first POST /v1/acp (spawn + initialize)"
		mgr := agents.NewManager(agents.Options{DataDir: cache, Env: []string{"PATH=" + os.Getenv("PATH")}})
		if _, err := os.Stat(mgr.LauncherPath(a)); err != nil {
			for _, t := range targets {
				res.missing(t.name, key, row, "ms", lowerBetter, "not installed in "+cfg.agentsCache+": run scripts/install-test-agents.sh")
			}
			continue
		}
		failed := map[string]bool{}
		for i := range cfg.agentStarts {
			for _, t := range targets {
				if failed[t.name] {
					continue
				}
				if err := ctx.Err(); err != nil {
					return err
				}
				in, _, err := startServerWith(ctx, t, tmp, agentBin, func(home string) ([]string, error) {
					if err := agents.LinkAgent(cache, filepath.Join(home, ".local", "share", "sandbox-agent"), a); err != nil {
						return nil, err
					}
					return setup.prep(llm, home)
				})
				if err != nil {
					return err
				}
				tm, err := firstTurn(ctx, in, a, setup.auth)
				left := in.stop()
				if err != nil {
					failed[t.name] = true
					why := err.Error()
					if b, rerr := os.ReadFile(in.logPath); rerr == nil {
						if l := lastLines(b, 3); l != "" {
							why += " — server log: " + l
						}
					}
					res.missing(t.name, key, row, "ms", lowerBetter, trunc([]byte(why)))
					res.note("%s, %s sample %d: %s", t.name, a, i+1, why)
					continue
				}
				res.add(t.name, key+".init", initRow, "ms", lowerBetter, ms(tm.init))
				res.add(t.name, key, row, "ms", lowerBetter, ms(tm.firstChunk))
				res.add(t.name, key+".turn", turnRow, "ms", lowerBetter, ms(tm.turn))
				if left > 0 {
					res.note("%s, %s: %d processes outlived the server", t.name, a, left)
				}
				logf("  %s %s: init %s, first chunk %s, turn %s", t.name, a, tm.init.Round(time.Millisecond), tm.firstChunk.Round(time.Millisecond), tm.turn.Round(time.Millisecond))
			}
		}
	}
	return nil
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// firstTurn drives one ACP server through its first prompt.
func firstTurn(ctx context.Context, in *instance, agent, auth string) (agentTimes, error) {
	var tm agentTimes
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	c := &http.Client{}
	id := "bench-" + agent
	u := in.base + "/v1/acp/" + id
	next := 0
	call := func(method string, params any, create bool) ([]byte, error) {
		next++
		body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": next, "method": method, "params": params})
		uu := u
		if create {
			uu += "?agent=" + agent
		}
		st, resp, err := do(ctx, c, http.MethodPost, uu, body, "Content-Type", "application/json", "Accept", "application/json")
		if err != nil {
			return nil, fmt.Errorf("%s: %w", method, err)
		}
		if st != 200 || bytes.Contains(resp, []byte(`"error":{`)) {
			return nil, fmt.Errorf("%s: HTTP %d %s", method, st, trunc(resp))
		}
		return resp, nil
	}
	cwd := filepath.Join(in.home, "work")
	if err := os.MkdirAll(cwd, 0o755); err != nil {
		return tm, err
	}
	t0 := time.Now()
	if _, err := call("initialize", map[string]any{
		"protocolVersion":    1,
		"clientCapabilities": map[string]any{"fs": map[string]any{"readTextFile": true, "writeTextFile": true}, "terminal": true},
		"clientInfo":         map[string]any{"name": "sandbox-agent-bench", "version": "1"},
	}, true); err != nil {
		return tm, err
	}
	tm.init = time.Since(t0)
	chunk := make(chan time.Time, 1)
	sseErr := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		req.Header.Set("Accept", "text/event-stream")
		resp, err := c.Do(req)
		if err != nil {
			sseErr <- err
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			sseErr <- fmt.Errorf("SSE: HTTP %d", resp.StatusCode)
			return
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			if bytes.HasPrefix(sc.Bytes(), []byte("data:")) && bytes.Contains(sc.Bytes(), []byte(`"agent_message_chunk"`)) {
				chunk <- time.Now()
				return
			}
		}
		sseErr <- fmt.Errorf("SSE ended before a chunk: %v", sc.Err())
	}()
	if auth != "" {
		if _, err := call("authenticate", map[string]any{"methodId": auth}, false); err != nil {
			return tm, err
		}
	}
	resp, err := call("session/new", map[string]any{"cwd": cwd, "mcpServers": []any{}}, false)
	if err != nil {
		return tm, err
	}
	var sess struct {
		Result struct {
			SessionID string `json:"sessionId"`
		} `json:"result"`
	}
	if json.Unmarshal(resp, &sess) != nil || sess.Result.SessionID == "" {
		return tm, fmt.Errorf("session/new: %s", trunc(resp))
	}
	turn := make(chan error, 1)
	go func() {
		_, err := call("session/prompt", map[string]any{"sessionId": sess.Result.SessionID, "prompt": []any{map[string]any{"type": "text", "text": "Say hello"}}}, false)
		turn <- err
	}()
	select {
	case at := <-chunk:
		tm.firstChunk = at.Sub(t0)
	case err := <-sseErr:
		return tm, err
	case err := <-turn:
		if err != nil {
			return tm, err
		}
		select {
		case at := <-chunk:
			tm.firstChunk = at.Sub(t0)
		case <-time.After(5 * time.Second):
			return tm, fmt.Errorf("prompt ended without an agent_message_chunk on SSE")
		}
		tm.turn = time.Since(t0)
		return tm, nil
	case <-ctx.Done():
		return tm, fmt.Errorf("no agent_message_chunk within 3 min")
	}
	if err := <-turn; err != nil {
		return tm, err
	}
	tm.turn = time.Since(t0)
	return tm, nil
}
