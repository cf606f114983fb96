package fakellm

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func start(t *testing.T) *Server {
	t.Helper()
	s := New()
	t.Cleanup(s.Close)
	return s
}

func post(t *testing.T, ctx context.Context, url, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

type event struct {
	name string
	data map[string]any
	raw  string
}

func readSSE(t *testing.T, r io.Reader) []event {
	t.Helper()
	var out []event
	sc := bufio.NewScanner(r)
	var name string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			raw := strings.TrimPrefix(line, "data: ")
			var d map[string]any
			if raw != "[DONE]" {
				if err := json.Unmarshal([]byte(raw), &d); err != nil {
					t.Fatalf("bad data %q: %v", raw, err)
				}
			}
			out = append(out, event{name: name, data: d, raw: raw})
			name = ""
		}
	}
	return out
}

const anthropicTools = `"tools":[{"name":"mcp__acp__Write","input_schema":{"type":"object","properties":{"file_path":{"type":"string"},"content":{"type":"string"}}}},
 {"name":"mcp__acp__Bash","input_schema":{"type":"object","properties":{"command":{"type":"string"},"timeout":{"type":"number"},"description":{"type":"string"}}}}]`

func TestAnthropicStreamingText(t *testing.T) {
	s := start(t)
	resp := post(t, t.Context(), s.URL+"/v1/messages?beta=true",
		`{"model":"claude-x","stream":true,"messages":[{"role":"user","content":[{"type":"text","text":"<system-reminder>x</system-reminder>"},{"type":"text","text":"say hi"}]}]}`)
	if resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatal(resp.Header)
	}
	evs := readSSE(t, resp.Body)
	var names []string
	text := ""
	for _, e := range evs {
		names = append(names, e.name)
		if d, ok := e.data["delta"].(map[string]any); ok && d["type"] == "text_delta" {
			text += d["text"].(string)
		}
	}
	if text != DefaultText {
		t.Fatalf("text %q", text)
	}
	if names[0] != "message_start" || names[1] != "content_block_start" || names[len(names)-1] != "message_stop" {
		t.Fatal(names)
	}
	reqs := s.Requests()
	if len(reqs) != 1 || reqs[0].API != "anthropic" || reqs[0].Model != "claude-x" || !reqs[0].Stream || reqs[0].Reply != "text" ||
		!strings.Contains(reqs[0].LastUserText, "say hi") {
		t.Fatalf("%+v", reqs)
	}
}

func TestAnthropicToolUseAndResult(t *testing.T) {
	s := start(t)
	resp := post(t, t.Context(), s.URL+"/v1/messages",
		`{"model":"m","stream":true,`+anthropicTools+`,"messages":[{"role":"user","content":"WRITE_FILE /tmp/x.txt hello there"}]}`)
	evs := readSSE(t, resp.Body)
	var start map[string]any
	args := ""
	stop := ""
	for _, e := range evs {
		if e.name == "content_block_start" {
			start = e.data["content_block"].(map[string]any)
		}
		if d, ok := e.data["delta"].(map[string]any); ok {
			if d["type"] == "input_json_delta" {
				args += d["partial_json"].(string)
			}
			if sr, ok := d["stop_reason"].(string); ok {
				stop = sr
			}
		}
	}
	if start["type"] != "tool_use" || start["name"] != "mcp__acp__Write" || stop != "tool_use" {
		t.Fatal(start, stop)
	}
	if args != `{"content":"hello there","file_path":"/tmp/x.txt"}` {
		t.Fatal(args)
	}
	// The tool result comes back: the model says it finished.
	resp = post(t, t.Context(), s.URL+"/v1/messages",
		`{"model":"m",`+anthropicTools+`,"messages":[{"role":"user","content":"WRITE_FILE /tmp/x.txt"},{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"mcp__acp__Write","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":[{"type":"text","text":"ok wrote it"}]}]}]}`)
	var msg struct {
		Content []struct{ Type, Text string }
		Stop    string `json:"stop_reason"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&msg); err != nil {
		t.Fatal(err)
	}
	if msg.Content[0].Text != "Tool finished: ok wrote it" || msg.Stop != "end_turn" {
		t.Fatalf("%+v", msg)
	}
	// RUN_CMD uses the shell tool, with timeout and description.
	resp = post(t, t.Context(), s.URL+"/v1/messages",
		`{"model":"m",`+anthropicTools+`,"messages":[{"role":"user","content":"RUN_CMD echo hi"}]}`)
	var call struct {
		Content []struct {
			Type, Name string
			Input      map[string]any
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&call); err != nil {
		t.Fatal(err)
	}
	in := call.Content[0].Input
	if call.Content[0].Name != "mcp__acp__Bash" || in["command"] != "echo hi" || in["timeout"] != float64(60000) || in["description"] == nil {
		t.Fatalf("%+v", call)
	}
	r := s.Requests()
	if len(r) != 3 || !r[1].HasToolResult || r[1].ToolResult != "ok wrote it" || r[2].Reply != "tool:mcp__acp__Bash" || len(r[2].Tools) != 2 {
		t.Fatalf("%+v", r)
	}
}

func TestCountTokensAndUnknownRoute(t *testing.T) {
	s := start(t)
	resp := post(t, t.Context(), s.URL+"/v1/messages/count_tokens", `{"model":"m","messages":[{"role":"user","content":"hello hello hello"}]}`)
	var n struct {
		InputTokens int `json:"input_tokens"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&n); err != nil || n.InputTokens < 1 {
		t.Fatal(n, err)
	}
	resp = post(t, t.Context(), s.URL+"/v1/nope", `{}`)
	if resp.StatusCode != 404 {
		t.Fatal(resp.StatusCode)
	}
	r := s.Requests()
	if len(r) != 2 || r[0].API != "count_tokens" || r[1].API != "other" {
		t.Fatalf("%+v", r)
	}
	s.Reset()
	if len(s.Requests()) != 0 {
		t.Fatal("reset")
	}
}

func TestSlowStreamStopsWhenClientCancels(t *testing.T) {
	s := start(t)
	s.SetSlow(40, 20*time.Millisecond)
	ctx, cancel := context.WithCancel(t.Context())
	resp := post(t, ctx, s.URL+"/v1/messages", `{"model":"m","stream":true,"messages":[{"role":"user","content":"SLOW"}]}`)
	br := bufio.NewReader(resp.Body)
	deltas := 0
	for deltas < 3 {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(line, "text_delta") {
			deltas++
		}
	}
	cancel()
	if s.Requests()[0].Reply != "slow" {
		t.Fatal(s.Requests())
	}
	// The full SLOW stream (uncancelled) has SlowWords deltas.
	s.SetSlow(40, time.Millisecond)
	resp = post(t, t.Context(), s.URL+"/v1/messages", `{"model":"m","stream":true,"messages":[{"role":"user","content":"SLOW"}]}`)
	n := 0
	for _, e := range readSSE(t, resp.Body) {
		if d, ok := e.data["delta"].(map[string]any); ok && d["type"] == "text_delta" {
			n++
		}
	}
	if n != 40 {
		t.Fatal(n)
	}
}

func TestResponsesStreamingTextAndFunctionCall(t *testing.T) {
	s := start(t)
	resp := post(t, t.Context(), s.OpenAIBaseURL()+"/responses",
		`{"model":"gpt-5.3-codex","stream":true,"input":[{"type":"message","role":"user","content":[{"type":"input_text","text":"hi"}]}]}`)
	evs := readSSE(t, resp.Body)
	text := ""
	for _, e := range evs {
		if e.name == "response.output_text.delta" {
			text += e.data["delta"].(string)
		}
	}
	if text != DefaultText || evs[0].name != "response.created" || evs[len(evs)-1].name != "response.completed" {
		t.Fatal(text, evs[0].name, evs[len(evs)-1].name)
	}
	if u := evs[len(evs)-1].data["response"].(map[string]any)["usage"].(map[string]any); u["total_tokens"] == nil {
		t.Fatal(u)
	}

	tools := `"tools":[{"type":"function","name":"exec_command","parameters":{"type":"object","properties":{"cmd":{"type":"string"},"workdir":{"type":"string"}}}},{"type":"custom","name":"apply_patch"}]`
	resp = post(t, t.Context(), s.OpenAIBaseURL()+"/responses",
		`{"model":"m","stream":true,`+tools+`,"input":[{"type":"message","role":"user","content":[{"type":"input_text","text":"RUN_CMD echo hi-from-codex"}]}]}`)
	var item map[string]any
	for _, e := range readSSE(t, resp.Body) {
		if e.name == "response.output_item.done" {
			item = e.data["item"].(map[string]any)
		}
	}
	if item["type"] != "function_call" || item["name"] != "exec_command" || item["arguments"] != `{"cmd":"echo hi-from-codex"}` || item["call_id"] == "" {
		t.Fatal(item)
	}
	// WRITE_FILE without a write tool falls back to the shell.
	resp = post(t, t.Context(), s.OpenAIBaseURL()+"/responses",
		`{"model":"m",`+tools+`,"input":[{"role":"user","content":"WRITE_FILE /tmp/o.txt abc"}]}`)
	var out struct{ Output []map[string]any }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if out.Output[0]["name"] != "exec_command" || !strings.Contains(out.Output[0]["arguments"].(string), `> '/tmp/o.txt'`) {
		t.Fatal(out)
	}
	resp = post(t, t.Context(), s.OpenAIBaseURL()+"/responses",
		`{"model":"m","input":[{"role":"user","content":"RUN_CMD x"},{"type":"function_call","call_id":"c1","name":"exec_command","arguments":"{}"},{"type":"function_call_output","call_id":"c1","output":"hi-from-codex\n"}]}`)
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if c := out.Output[0]["content"].([]any)[0].(map[string]any); c["text"] != "Tool finished: hi-from-codex" {
		t.Fatal(c)
	}
	r := s.Requests()
	if len(r) != 4 || r[1].Reply != "tool:exec_command" || !r[3].HasToolResult || r[0].API != "responses" {
		t.Fatalf("%+v", r)
	}
}

func TestChatCompletionsStreamingTextAndToolCalls(t *testing.T) {
	s := start(t)
	resp := post(t, t.Context(), s.OpenAIBaseURL()+"/chat/completions",
		`{"model":"fake-model","stream":true,"messages":[{"role":"system","content":"sys"},{"role":"user","content":[{"type":"text","text":"hello"}]}]}`)
	evs := readSSE(t, resp.Body)
	text, finish := "", ""
	for _, e := range evs {
		if e.raw == "[DONE]" {
			continue
		}
		ch := e.data["choices"].([]any)[0].(map[string]any)
		if c, ok := ch["delta"].(map[string]any)["content"].(string); ok {
			text += c
		}
		if f, ok := ch["finish_reason"].(string); ok {
			finish = f
		}
	}
	if text != DefaultText || finish != "stop" || evs[len(evs)-1].raw != "[DONE]" {
		t.Fatal(text, finish)
	}

	tools := `"tools":[{"type":"function","function":{"name":"write","parameters":{"type":"object","properties":{"path":{"type":"string"},"content":{"type":"string"}}}}},{"type":"function","function":{"name":"bash","parameters":{"type":"object","properties":{"command":{"type":"string"}}}}}]`
	resp = post(t, t.Context(), s.OpenAIBaseURL()+"/chat/completions",
		`{"model":"fake-model","stream":true,`+tools+`,"messages":[{"role":"user","content":"WRITE_FILE /w/a.txt"}]}`)
	name, args := "", ""
	for _, e := range readSSE(t, resp.Body) {
		if e.raw == "[DONE]" {
			continue
		}
		ch := e.data["choices"].([]any)[0].(map[string]any)
		if tc, ok := ch["delta"].(map[string]any)["tool_calls"].([]any); ok {
			fn := tc[0].(map[string]any)["function"].(map[string]any)
			if n, ok := fn["name"].(string); ok {
				name = n
			}
			args += fn["arguments"].(string)
		}
		if f, ok := ch["finish_reason"].(string); ok {
			finish = f
		}
	}
	if name != "write" || args != `{"content":"written by the fake model","path":"/w/a.txt"}` || finish != "tool_calls" {
		t.Fatal(name, args, finish)
	}
	resp = post(t, t.Context(), s.OpenAIBaseURL()+"/chat/completions",
		`{"model":"fake-model",`+tools+`,"messages":[{"role":"user","content":"RUN_CMD ls"},{"role":"assistant","tool_calls":[]},{"role":"tool","tool_call_id":"c","content":"file1"}]}`)
	var out struct {
		Choices []struct {
			Message struct{ Content string }
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if out.Choices[0].Message.Content != "Tool finished: file1" {
		t.Fatal(out)
	}
}

func TestKeyword(t *testing.T) {
	for _, c := range []struct {
		text, kw string
		ok       bool
		rest     string
	}{
		{"WRITE_FILE /a b", "WRITE_FILE", true, " /a b"},
		{"please\nRUN_CMD echo 1\nthanks", "RUN_CMD", true, " echo 1"},
		{"xWRITE_FILE /a", "WRITE_FILE", false, ""},
		{"SLOWLY", "SLOW", false, ""},
		{"go SLOW", "SLOW", true, ""},
	} {
		ok, rest, _ := keyword(c.text, c.kw)
		if ok != c.ok || rest != c.rest {
			t.Errorf("keyword(%q,%q) = %v %q", c.text, c.kw, ok, rest)
		}
	}
}

func TestAnthropicToolResultFollowedByPrompt(t *testing.T) {
	s := start(t)
	resp := post(t, t.Context(), s.URL+"/v1/messages",
		`{"model":"m","messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":"rejected"},{"type":"text","text":"say hi"}]},{"role":"system","content":"x"}]}`)
	var msg struct{ Content []struct{ Text string } }
	if err := json.NewDecoder(resp.Body).Decode(&msg); err != nil {
		t.Fatal(err)
	}
	if msg.Content[0].Text != DefaultText {
		t.Fatal(msg)
	}
	if r := s.Requests()[0]; r.HasToolResult || r.LastUserText != "say hi" {
		t.Fatalf("%+v", r)
	}
}
