package mockagent_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	acp "github.com/coder/acp-go-sdk"
	"github.com/google/go-cmp/cmp"

	"github.com/sandbox-agent-go/sandbox-agent/internal/mockagent"
)

func TestInitialize(t *testing.T) {
	h := startRaw(t)
	h.send(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":1,"clientCapabilities":{"fs":{"readTextFile":true},"terminal":true}}}`)
	got := h.next()
	want := map[string]any{
		"jsonrpc": "2.0",
		"id":      float64(0),
		"result": map[string]any{
			"protocolVersion": float64(1),
			"agentCapabilities": map[string]any{
				"loadSession":         true,
				"promptCapabilities":  map[string]any{"embeddedContext": true},
				"auth":                map[string]any{},
				"mcpCapabilities":     map[string]any{},
				"sessionCapabilities": map[string]any{},
			},
			"agentInfo":   map[string]any{"name": "sandbox-agent-mock", "version": "builtin"},
			"authMethods": []any{},
		},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("initialize response (-want +got):\n%s", d)
	}

	h.send(`{"jsonrpc":"2.0","id":"a","method":"authenticate","params":{"methodId":"x"}}`)
	if d := cmp.Diff(map[string]any{"jsonrpc": "2.0", "id": "a", "result": map[string]any{}}, h.next()); d != "" {
		t.Errorf("authenticate response (-want +got):\n%s", d)
	}

	h.send(`{"jsonrpc":"2.0","id":2,"method":"no/such_method","params":{}}`)
	resp := h.next()
	if code := resp["error"].(map[string]any)["code"]; code != float64(-32601) {
		t.Errorf("unknown method: error code %v, want -32601 (%v)", code, resp)
	}
}

// configJSON is the configOptions of a fresh session.
const configJSON = `[
 {"id":"model","name":"Model","category":"model","type":"select","currentValue":"mock",
  "options":[{"name":"Mock","value":"mock"},{"name":"Mock Fast","value":"mock-fast"}]},
 {"id":"mode","name":"Mode","category":"mode","type":"select","currentValue":"normal",
  "options":[{"name":"Normal","value":"normal"},{"name":"Plan","value":"plan"}]},
 {"id":"thought_level","name":"Thought Level","category":"thought_level","type":"select","currentValue":"low",
  "options":[{"name":"Low","value":"low"},{"name":"Medium","value":"medium"},{"name":"High","value":"high"}]}
]`

// asJSON round-trips v through JSON for comparison with cmp.
func asJSON(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// configWith returns configJSON decoded, with the current values changed.
func configWith(t *testing.T, current map[string]string) any {
	t.Helper()
	var opts []map[string]any
	if err := json.Unmarshal([]byte(configJSON), &opts); err != nil {
		t.Fatal(err)
	}
	for _, o := range opts {
		if v, ok := current[o["id"].(string)]; ok {
			o["currentValue"] = v
		}
	}
	return asJSON(t, opts)
}

func TestNewSession(t *testing.T) {
	h := start(t, nil, acp.ClientCapabilities{})
	s1 := h.newSession("")
	s2 := h.newSession("")
	if s1.SessionId != "mock-session-1" || s2.SessionId != "mock-session-2" {
		t.Errorf("session ids %q, %q", s1.SessionId, s2.SessionId)
	}
	wantModes := map[string]any{
		"currentModeId":  "normal",
		"availableModes": []any{map[string]any{"id": "normal", "name": "Normal"}, map[string]any{"id": "plan", "name": "Plan"}},
	}
	if d := cmp.Diff(wantModes, asJSON(t, s1.Modes)); d != "" {
		t.Errorf("modes (-want +got):\n%s", d)
	}
	if d := cmp.Diff(configWith(t, nil), asJSON(t, s1.ConfigOptions)); d != "" {
		t.Errorf("configOptions (-want +got):\n%s", d)
	}
}

func TestDefaultTurn(t *testing.T) {
	h := start(t, nil, allCaps)
	sid := h.newSession("").SessionId
	resp := h.mustPrompt(sid, "hello mock world")
	if resp.StopReason != acp.StopReasonEndTurn {
		t.Errorf("stopReason = %q", resp.StopReason)
	}
	updates := h.client.takeUpdates()
	want := []string{
		"agent_thought_chunk", "plan",
		"tool_call:pending", "tool_call_update:in_progress", "tool_call_update:completed",
		"agent_message_chunk*",
	}
	if d := cmp.Diff(want, kinds(updates)); d != "" {
		t.Errorf("update kinds (-want +got):\n%s", d)
	}
	for _, u := range updates {
		if u.SessionId != sid {
			t.Errorf("update for session %q", u.SessionId)
		}
		if p := u.Update.Plan; p != nil && (len(p.Entries) < 2 || len(p.Entries) > 3) {
			t.Errorf("plan has %d entries", len(p.Entries))
		}
	}
	text, n := agentText(updates)
	if text != "Mock reply: hello mock world" || n < 3 {
		t.Errorf("reply %q in %d chunks, want %q in >= 3", text, n, "Mock reply: hello mock world")
	}
	if calls := h.client.takeCalls(); len(calls) != 0 {
		t.Errorf("default turn called the client: %v", calls)
	}

	// The prompt text is the concatenation of the text blocks; other blocks
	// are ignored.
	_, err := h.conn.Prompt(context.Background(), acp.PromptRequest{SessionId: sid, Prompt: []acp.ContentBlock{
		acp.TextBlock("a"), acp.ResourceLinkBlock("x", "file:///x"), acp.TextBlock("b"),
	}})
	if err != nil {
		t.Fatal(err)
	}
	if text, _ := agentText(h.client.takeUpdates()); text != "Mock reply: ab" {
		t.Errorf("reply %q", text)
	}
}

func TestPermission(t *testing.T) {
	tests := []struct {
		choice    string
		wantReply string
		wantKinds []string
	}{
		{"allow", "permission granted: allow", []string{"tool_call:pending", "tool_call_update:in_progress", "tool_call_update:completed", "agent_message_chunk*"}},
		{"allow_always", "permission granted: allow_always", []string{"tool_call:pending", "tool_call_update:in_progress", "tool_call_update:completed", "agent_message_chunk*"}},
		{"reject", "permission denied", []string{"tool_call:pending", "tool_call_update:failed", "agent_message_chunk*"}},
		{"cancelled", "permission denied", []string{"tool_call:pending", "tool_call_update:failed", "agent_message_chunk*"}},
	}
	for _, tt := range tests {
		t.Run(tt.choice, func(t *testing.T) {
			c := newTestClient()
			c.permission = tt.choice
			h := start(t, c, allCaps)
			sid := h.newSession("").SessionId
			resp := h.mustPrompt(sid, "please do it PERMISSION now")
			if resp.StopReason != acp.StopReasonEndTurn {
				t.Errorf("stopReason = %q", resp.StopReason)
			}
			updates := c.takeUpdates()
			if d := cmp.Diff(tt.wantKinds, kinds(updates)); d != "" {
				t.Errorf("update kinds (-want +got):\n%s", d)
			}
			if text, _ := agentText(updates); text != tt.wantReply {
				t.Errorf("reply %q, want %q", text, tt.wantReply)
			}
			if len(c.perms) != 1 {
				t.Fatalf("%d permission requests", len(c.perms))
			}
			p := c.perms[0]
			wantOpts := []acp.PermissionOption{
				{OptionId: "allow", Kind: acp.PermissionOptionKindAllowOnce, Name: "Allow"},
				{OptionId: "allow_always", Kind: acp.PermissionOptionKindAllowAlways, Name: "Always Allow"},
				{OptionId: "reject", Kind: acp.PermissionOptionKindRejectOnce, Name: "Reject"},
			}
			if d := cmp.Diff(wantOpts, p.Options); d != "" {
				t.Errorf("options (-want +got):\n%s", d)
			}
			if p.SessionId != sid || p.ToolCall.ToolCallId != updates[0].Update.ToolCall.ToolCallId {
				t.Errorf("permission for %q/%q, tool call %q", p.SessionId, p.ToolCall.ToolCallId, updates[0].Update.ToolCall.ToolCallId)
			}
		})
	}
}

func TestWriteFile(t *testing.T) {
	tests := []struct {
		name      string
		caps      acp.ClientCapabilities
		arg       string // after the path
		want      string
		wantCalls []string
		wantVia   string
	}{
		{"client fs", allCaps, "", "hello from mock\n", []string{acp.ClientMethodFsWriteTextFile}, "via fs/write_text_file"},
		{"client fs with text", allCaps, " some  text here", "some  text here\n", []string{acp.ClientMethodFsWriteTextFile}, "via fs/write_text_file"},
		{"no fs capability", acp.ClientCapabilities{}, " local text", "local text\n", nil, "directly (client did not advertise fs.writeTextFile)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := start(t, nil, tt.caps)
			dir := t.TempDir()
			sid := h.newSession(dir).SessionId
			path := filepath.Join(dir, "sub", "out.txt")
			if tt.caps.Fs.WriteTextFile {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			resp := h.mustPrompt(sid, "WRITE_FILE sub/out.txt"+tt.arg+"\nnext line is ignored")
			if resp.StopReason != acp.StopReasonEndTurn {
				t.Errorf("stopReason = %q", resp.StopReason)
			}
			got, err := os.ReadFile(path)
			if err != nil || string(got) != tt.want {
				t.Errorf("file = %q, %v; want %q", got, err, tt.want)
			}
			if d := cmp.Diff(tt.wantCalls, h.client.takeCalls()); d != "" {
				t.Errorf("client calls (-want +got):\n%s", d)
			}
			updates := h.client.takeUpdates()
			wantKinds := []string{"tool_call:pending", "tool_call_update:in_progress", "tool_call_update:completed", "agent_message_chunk*"}
			if d := cmp.Diff(wantKinds, kinds(updates)); d != "" {
				t.Errorf("update kinds (-want +got):\n%s", d)
			}
			wantReply := fmt.Sprintf("wrote %d bytes to %s %s", len(tt.want), path, tt.wantVia)
			if text, _ := agentText(updates); text != wantReply {
				t.Errorf("reply %q, want %q", text, wantReply)
			}
		})
	}
}

func TestReadFile(t *testing.T) {
	tests := []struct {
		name      string
		caps      acp.ClientCapabilities
		wantCalls []string
		wantVia   string
	}{
		{"client fs", allCaps, []string{acp.ClientMethodFsReadTextFile}, "via fs/read_text_file"},
		{"no fs capability", acp.ClientCapabilities{}, nil, "directly (client did not advertise fs.readTextFile)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := start(t, nil, tt.caps)
			dir := t.TempDir()
			path := filepath.Join(dir, "in.txt")
			if err := os.WriteFile(path, []byte("line one\nline two\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			sid := h.newSession(dir).SessionId
			h.mustPrompt(sid, "READ_FILE "+path)
			if d := cmp.Diff(tt.wantCalls, h.client.takeCalls()); d != "" {
				t.Errorf("client calls (-want +got):\n%s", d)
			}
			want := fmt.Sprintf("read %s %s:\nline one\nline two\n", path, tt.wantVia)
			if text, _ := agentText(h.client.takeUpdates()); text != want {
				t.Errorf("reply %q, want %q", text, want)
			}

			// A missing file fails the tool call; the turn still ends normally.
			missing := filepath.Join(dir, "missing.txt")
			if resp := h.mustPrompt(sid, "READ_FILE missing.txt"); resp.StopReason != acp.StopReasonEndTurn {
				t.Errorf("stopReason = %q", resp.StopReason)
			}
			updates := h.client.takeUpdates()
			if d := cmp.Diff([]string{"tool_call:pending", "tool_call_update:in_progress", "tool_call_update:failed", "agent_message_chunk*"}, kinds(updates)); d != "" {
				t.Errorf("update kinds (-want +got):\n%s", d)
			}
			if text, _ := agentText(updates); !strings.HasPrefix(text, "READ_FILE "+missing+" failed: ") {
				t.Errorf("reply %q", text)
			}
		})
	}
}

func TestRun(t *testing.T) {
	tests := []struct {
		name      string
		caps      acp.ClientCapabilities
		wantCalls []string
		wantVia   string
	}{
		{"terminal", allCaps, []string{
			acp.ClientMethodTerminalCreate, acp.ClientMethodTerminalWaitForExit,
			acp.ClientMethodTerminalOutput, acp.ClientMethodTerminalRelease,
		}, "via terminal"},
		{"no terminal capability", acp.ClientCapabilities{}, nil, "locally (client did not advertise terminal)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := start(t, nil, tt.caps)
			dir := t.TempDir()
			sid := h.newSession(dir).SessionId
			const line = `echo "hi from $(basename "$PWD")"; exit 3`
			resp := h.mustPrompt(sid, "RUN "+line)
			if resp.StopReason != acp.StopReasonEndTurn {
				t.Errorf("stopReason = %q", resp.StopReason)
			}
			if d := cmp.Diff(tt.wantCalls, h.client.takeCalls()); d != "" {
				t.Errorf("client calls (-want +got):\n%s", d)
			}
			if tt.caps.Terminal {
				want := []acp.CreateTerminalRequest{{
					SessionId: sid, Command: "sh", Args: []string{"-c", line},
					Cwd: acp.Ptr(dir), OutputByteLimit: acp.Ptr(1 << 20),
				}}
				if d := cmp.Diff(want, h.client.created); d != "" {
					t.Errorf("terminal/create (-want +got):\n%s", d)
				}
			}
			updates := h.client.takeUpdates()
			if d := cmp.Diff([]string{"tool_call:pending", "tool_call_update:in_progress", "tool_call_update:failed", "agent_message_chunk*"}, kinds(updates)); d != "" {
				t.Errorf("update kinds (-want +got):\n%s", d)
			}
			want := fmt.Sprintf("ran %q %s: exit code 3\nhi from %s\n", line, tt.wantVia, filepath.Base(dir))
			if text, _ := agentText(updates); text != want {
				t.Errorf("reply %q, want %q", text, want)
			}

			h.mustPrompt(sid, "RUN true")
			if text, _ := agentText(h.client.takeUpdates()); !strings.Contains(text, ": exit code 0\n") {
				t.Errorf("reply %q", text)
			}
		})
	}
}

func TestSlowCancel(t *testing.T) {
	h := start(t, nil, allCaps)
	sid := h.newSession("").SessionId
	done := make(chan acp.PromptResponse, 1)
	go func() {
		resp, err := h.prompt(sid, "SLOW")
		if err != nil {
			t.Errorf("prompt: %v", err)
		}
		done <- resp
	}()
	recv(t, h.client.chunked, "the first chunk")
	if err := h.conn.Cancel(context.Background(), acp.CancelNotification{SessionId: sid}); err != nil {
		t.Fatal(err)
	}
	resp := recv(t, done, "the prompt to end")
	if resp.StopReason != acp.StopReasonCancelled {
		t.Errorf("stopReason = %q, want cancelled", resp.StopReason)
	}
	text, n := agentText(h.client.takeUpdates())
	if n < 1 || n >= 100 || !strings.HasPrefix(text, "slow 1/100\n") {
		t.Errorf("%d chunks: %q", n, text)
	}

	// The session still works after a cancelled turn.
	if resp := h.mustPrompt(sid, "again"); resp.StopReason != acp.StopReasonEndTurn {
		t.Errorf("stopReason after cancel = %q", resp.StopReason)
	}
}

// A prompt in flight when stdin closes is answered "cancelled" before Run
// returns.
func TestEOFCancelsPrompt(t *testing.T) {
	h := start(t, nil, allCaps)
	sid := h.newSession("").SessionId
	done := make(chan acp.PromptResponse, 1)
	go func() {
		resp, err := h.prompt(sid, "SLOW")
		if err != nil {
			t.Errorf("prompt: %v", err)
		}
		done <- resp
	}()
	recv(t, h.client.chunked, "the first chunk")
	if err := h.inW.Close(); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, h.result, "Run to return"); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	h.result <- nil // for stop
	if resp := recv(t, done, "the prompt to end"); resp.StopReason != acp.StopReasonCancelled {
		t.Errorf("stopReason = %q, want cancelled", resp.StopReason)
	}
}

// When ctx ends, the prompt in flight is answered "cancelled" and Run returns
// ctx.Err().
func TestContextCancel(t *testing.T) {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	result := make(chan error, 1)
	go func() { result <- mockagent.Run(ctx, inR, outW, io.Discard) }()
	c := newTestClient()
	conn := acp.NewClientSideConnection(c, inW, outR)
	conn.SetLogger(discardLogger)
	bg := context.Background()
	if _, err := conn.Initialize(bg, acp.InitializeRequest{ProtocolVersion: acp.ProtocolVersionNumber}); err != nil {
		t.Fatal(err)
	}
	s, err := conn.NewSession(bg, acp.NewSessionRequest{Cwd: t.TempDir(), McpServers: []acp.McpServer{}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan acp.PromptResponse, 1)
	go func() {
		resp, err := conn.Prompt(bg, acp.PromptRequest{SessionId: s.SessionId, Prompt: []acp.ContentBlock{acp.TextBlock("SLOW")}})
		if err != nil {
			t.Errorf("prompt: %v", err)
		}
		done <- resp
	}()
	recv(t, c.chunked, "the first chunk")
	cancel()
	if err := recv(t, result, "Run to return"); !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	if resp := recv(t, done, "the prompt to end"); resp.StopReason != acp.StopReasonCancelled {
		t.Errorf("stopReason = %q, want cancelled", resp.StopReason)
	}
	// Run interrupted its read of in by closing it.
	if _, err := inW.Write([]byte("{}\n")); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("write to the agent after Run returned: %v, want io.ErrClosedPipe", err)
	}
	_ = outW.Close()
	recv(t, conn.Done(), "client connection to close")
}

func TestError(t *testing.T) {
	h := start(t, nil, allCaps)
	sid := h.newSession("").SessionId
	_, err := h.prompt(sid, "fail with ERROR please")
	var re *acp.RequestError
	if !errors.As(err, &re) {
		t.Fatalf("prompt error = %v", err)
	}
	if re.Code != -32603 || re.Message != "mock agent error" {
		t.Errorf("error = %d %q", re.Code, re.Message)
	}
	if d := cmp.Diff(map[string]any{"keyword": "ERROR"}, asJSON(t, re.Data)); d != "" {
		t.Errorf("error data (-want +got):\n%s", d)
	}
}

func TestExit(t *testing.T) {
	h := startRaw(t)
	h.send(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":1}}`)
	h.next()
	h.send(`{"jsonrpc":"2.0","id":2,"method":"session/new","params":{"cwd":"/","mcpServers":[]}}`)
	h.next()
	h.send(`{"jsonrpc":"2.0","id":3,"method":"session/prompt","params":{"sessionId":"mock-session-1","prompt":[{"type":"text","text":"EXIT"}]}}`)
	chunk := h.next()
	if chunk["method"] != "session/update" {
		t.Fatalf("got %v, want a session/update", chunk)
	}
	err := recv(t, h.result, "Run to return")
	h.result <- err // for the cleanup
	var ee *mockagent.ExitError
	if !errors.As(err, &ee) || ee.Code != 3 {
		t.Fatalf("Run = %v, want ExitError{3}", err)
	}
	if !strings.Contains(h.errOut.String(), "mock agent exiting as requested") {
		t.Errorf("stderr = %q", h.errOut.String())
	}
	// Nothing else was written: the prompt is never answered.
	_ = h.outW.Close()
	for line := range h.lines {
		t.Errorf("unexpected output after the chunk: %s", line)
	}
}

func TestFlood(t *testing.T) {
	// Through the SDK client (whose notification queue holds 1024 messages).
	h := start(t, nil, allCaps)
	sid := h.newSession("").SessionId
	if resp := h.mustPrompt(sid, "FLOOD 1000"); resp.StopReason != acp.StopReasonEndTurn {
		t.Errorf("stopReason = %q", resp.StopReason)
	}
	updates := h.client.takeUpdates()
	if len(updates) != 1000 {
		t.Fatalf("%d updates, want 1000", len(updates))
	}
	for i, u := range updates {
		c := u.Update.AgentMessageChunk
		if want := fmt.Sprintf("flood %d", i+1); u.SessionId != sid || c == nil || c.Content.Text == nil || c.Content.Text.Text != want {
			t.Fatalf("update %d = %+v, want chunk %q", i, u, want)
		}
	}
}

func TestFloodRaw(t *testing.T) {
	const n = 100_000
	h := startRaw(t)
	h.send(`{"jsonrpc":"2.0","id":1,"method":"session/new","params":{"cwd":"/","mcpServers":[]}}`)
	h.next()
	h.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":2,"method":"session/prompt","params":{"sessionId":"mock-session-1","prompt":[{"type":"text","text":"FLOOD %d"}]}}`, n))
	count := 0
	for {
		line := h.nextLine()
		if !bytes.HasPrefix(line, []byte(`{"jsonrpc":"2.0","id":2,`)) && count < n-1 {
			count++ // decoding every chunk would dominate the test's time
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("invalid JSON %q: %v", line, err)
		}
		if m["id"] == float64(2) {
			if d := cmp.Diff(map[string]any{"stopReason": "end_turn"}, m["result"]); d != "" {
				t.Errorf("response (-want +got):\n%s", d)
			}
			break
		}
		count++
		if count == n {
			want := map[string]any{
				"jsonrpc": "2.0", "method": "session/update",
				"params": map[string]any{"sessionId": "mock-session-1", "update": map[string]any{
					"sessionUpdate": "agent_message_chunk",
					"content":       map[string]any{"type": "text", "text": fmt.Sprintf("flood %d", n)},
				}},
			}
			if d := cmp.Diff(want, m); d != "" {
				t.Errorf("last chunk (-want +got):\n%s", d)
			}
		}
	}
	if count != n {
		t.Errorf("%d notifications, want %d", count, n)
	}
}

func TestSetMode(t *testing.T) {
	h := start(t, nil, allCaps)
	sid := h.newSession("").SessionId
	ctx := context.Background()

	if _, err := h.conn.SetSessionMode(ctx, acp.SetSessionModeRequest{SessionId: sid, ModeId: "plan"}); err != nil {
		t.Fatal(err)
	}
	updates := h.client.takeUpdates()
	if d := cmp.Diff([]string{"current_mode_update", "config_option_update"}, kinds(updates)); d != "" {
		t.Fatalf("update kinds (-want +got):\n%s", d)
	}
	if got := updates[0].Update.CurrentModeUpdate.CurrentModeId; got != "plan" {
		t.Errorf("currentModeId = %q", got)
	}
	if d := cmp.Diff(configWith(t, map[string]string{"mode": "plan"}), asJSON(t, updates[1].Update.ConfigOptionUpdate.ConfigOptions)); d != "" {
		t.Errorf("configOptions (-want +got):\n%s", d)
	}

	_, err := h.conn.SetSessionMode(ctx, acp.SetSessionModeRequest{SessionId: sid, ModeId: "bogus"})
	if code := requestCode(t, err); code != -32602 {
		t.Errorf("unknown mode: code %d", code)
	}
	_, err = h.conn.SetSessionMode(ctx, acp.SetSessionModeRequest{SessionId: "nope", ModeId: "plan"})
	if code := requestCode(t, err); code != -32002 {
		t.Errorf("unknown session: code %d", code)
	}
	if u := h.client.takeUpdates(); len(u) != 0 {
		t.Errorf("failed calls sent updates: %v", kinds(u))
	}
}

func setConfig(sid acp.SessionId, id, value string) acp.SetSessionConfigOptionRequest {
	return acp.SetSessionConfigOptionRequest{ValueId: &acp.SetSessionConfigOptionValueId{
		SessionId: sid, ConfigId: acp.SessionConfigId(id), Value: acp.SessionConfigValueId(value),
	}}
}

func TestSetConfigOption(t *testing.T) {
	h := start(t, nil, allCaps)
	sid := h.newSession("").SessionId
	ctx := context.Background()

	tests := []struct {
		id, value string
		current   map[string]string
		wantKinds []string
	}{
		{"thought_level", "high", map[string]string{"thought_level": "high"}, []string{"config_option_update"}},
		{"model", "mock-fast", map[string]string{"thought_level": "high", "model": "mock-fast"}, []string{"config_option_update"}},
		{"mode", "plan", map[string]string{"thought_level": "high", "model": "mock-fast", "mode": "plan"}, []string{"config_option_update", "current_mode_update"}},
	}
	for _, tt := range tests {
		resp, err := h.conn.SetSessionConfigOption(ctx, setConfig(sid, tt.id, tt.value))
		if err != nil {
			t.Fatalf("%s=%s: %v", tt.id, tt.value, err)
		}
		want := configWith(t, tt.current)
		if d := cmp.Diff(want, asJSON(t, resp.ConfigOptions)); d != "" {
			t.Errorf("%s=%s: configOptions (-want +got):\n%s", tt.id, tt.value, d)
		}
		updates := h.client.takeUpdates()
		if d := cmp.Diff(tt.wantKinds, kinds(updates)); d != "" {
			t.Errorf("%s=%s: update kinds (-want +got):\n%s", tt.id, tt.value, d)
			continue
		}
		if d := cmp.Diff(want, asJSON(t, updates[0].Update.ConfigOptionUpdate.ConfigOptions)); d != "" {
			t.Errorf("%s=%s: notified configOptions (-want +got):\n%s", tt.id, tt.value, d)
		}
		if tt.id == "mode" && updates[1].Update.CurrentModeUpdate.CurrentModeId != "plan" {
			t.Errorf("currentModeId = %q", updates[1].Update.CurrentModeUpdate.CurrentModeId)
		}
	}

	errTests := []struct {
		name string
		req  acp.SetSessionConfigOptionRequest
		code int
	}{
		{"unknown id", setConfig(sid, "colour", "red"), -32602},
		{"unknown value", setConfig(sid, "model", "gpt"), -32602},
		{"mode value for model", setConfig(sid, "model", "plan"), -32602},
		{"boolean", acp.SetSessionConfigOptionRequest{Boolean: &acp.SetSessionConfigOptionBoolean{SessionId: sid, ConfigId: "model", Type: "boolean", Value: true}}, -32602},
		{"unknown session", setConfig("nope", "model", "mock"), -32002},
	}
	for _, tt := range errTests {
		_, err := h.conn.SetSessionConfigOption(ctx, tt.req)
		if code := requestCode(t, err); code != tt.code {
			t.Errorf("%s: code %d, want %d", tt.name, code, tt.code)
		}
	}
	if u := h.client.takeUpdates(); len(u) != 0 {
		t.Errorf("failed calls sent updates: %v", kinds(u))
	}

	// session/set_model (unstable) changes the model option.
	if _, err := h.conn.UnstableSetSessionModel(ctx, acp.UnstableSetSessionModelRequest{SessionId: sid, ModelId: "mock"}); err != nil {
		t.Fatal(err)
	}
	updates := h.client.takeUpdates()
	if d := cmp.Diff([]string{"config_option_update"}, kinds(updates)); d != "" {
		t.Fatalf("set_model update kinds (-want +got):\n%s", d)
	}
	want := configWith(t, map[string]string{"thought_level": "high", "model": "mock", "mode": "plan"})
	if d := cmp.Diff(want, asJSON(t, updates[0].Update.ConfigOptionUpdate.ConfigOptions)); d != "" {
		t.Errorf("set_model configOptions (-want +got):\n%s", d)
	}
	_, err := h.conn.UnstableSetSessionModel(ctx, acp.UnstableSetSessionModelRequest{SessionId: sid, ModelId: "gpt"})
	if code := requestCode(t, err); code != -32602 {
		t.Errorf("unknown model: code %d", code)
	}
}

func TestLoadSession(t *testing.T) {
	h := start(t, nil, acp.ClientCapabilities{})
	ctx := context.Background()
	dir := t.TempDir()
	sid := h.newSession(dir).SessionId
	h.newSession(dir) // another session, not replayed
	h.mustPrompt(sid, "first")
	h.mustPrompt(sid, "second")
	if _, err := h.prompt(sid, "ERROR"); err == nil {
		t.Fatal("ERROR prompt succeeded")
	}
	if _, err := h.conn.SetSessionMode(ctx, acp.SetSessionModeRequest{SessionId: sid, ModeId: "plan"}); err != nil {
		t.Fatal(err)
	}
	h.client.takeUpdates()

	resp, err := h.conn.LoadSession(ctx, acp.LoadSessionRequest{SessionId: sid, Cwd: dir, McpServers: []acp.McpServer{}})
	if err != nil {
		t.Fatal(err)
	}
	type msg struct{ Kind, Text string }
	var got []msg
	for _, u := range h.client.takeUpdates() {
		if u.SessionId != sid {
			t.Errorf("replay for session %q", u.SessionId)
		}
		var text string
		switch {
		case u.Update.UserMessageChunk != nil:
			text = u.Update.UserMessageChunk.Content.Text.Text
		case u.Update.AgentMessageChunk != nil:
			text = u.Update.AgentMessageChunk.Content.Text.Text
		}
		got = append(got, msg{kind(u.Update), text})
	}
	want := []msg{
		{"user_message_chunk", "first"},
		{"agent_message_chunk", "Mock reply: first"},
		{"user_message_chunk", "second"},
		{"agent_message_chunk", "Mock reply: second"},
		{"user_message_chunk", "ERROR"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("replay (-want +got):\n%s", d)
	}
	if resp.Modes == nil || resp.Modes.CurrentModeId != "plan" {
		t.Errorf("modes = %+v", resp.Modes)
	}
	if d := cmp.Diff(configWith(t, map[string]string{"mode": "plan"}), asJSON(t, resp.ConfigOptions)); d != "" {
		t.Errorf("configOptions (-want +got):\n%s", d)
	}

	list, err := h.conn.ListSessions(ctx, acp.ListSessionsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	wantList := []acp.SessionInfo{
		{SessionId: "mock-session-1", Cwd: dir, Title: acp.Ptr("first")},
		{SessionId: "mock-session-2", Cwd: dir},
	}
	if d := cmp.Diff(wantList, list.Sessions); d != "" {
		t.Errorf("session/list (-want +got):\n%s", d)
	}
}

func TestUnknownSession(t *testing.T) {
	h := start(t, nil, allCaps)
	ctx := context.Background()
	_, err := h.conn.LoadSession(ctx, acp.LoadSessionRequest{SessionId: "mock-session-9", Cwd: "/", McpServers: []acp.McpServer{}})
	if code := requestCode(t, err); code != -32002 {
		t.Errorf("session/load: code %d", code)
	}
	_, err = h.prompt("mock-session-9", "hello")
	if code := requestCode(t, err); code != -32002 {
		t.Errorf("session/prompt: code %d", code)
	}
	// Cancelling an unknown session is ignored.
	if err := h.conn.Cancel(ctx, acp.CancelNotification{SessionId: "mock-session-9"}); err != nil {
		t.Error(err)
	}
	if u := h.client.takeUpdates(); len(u) != 0 {
		t.Errorf("updates for unknown session: %v", kinds(u))
	}
}

func TestResumeAndClose(t *testing.T) {
	h := start(t, nil, allCaps)
	ctx := context.Background()
	sid := h.newSession("").SessionId
	resp, err := h.conn.ResumeSession(ctx, acp.ResumeSessionRequest{SessionId: sid, Cwd: "/"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Modes == nil || resp.Modes.CurrentModeId != "normal" || len(resp.ConfigOptions) != 3 {
		t.Errorf("session/resume = %+v", resp)
	}
	if _, err := h.conn.CloseSession(ctx, acp.CloseSessionRequest{SessionId: sid}); err != nil {
		t.Fatal(err)
	}
	_, err = h.prompt(sid, "hello")
	if code := requestCode(t, err); code != -32002 {
		t.Errorf("prompt after session/close: code %d", code)
	}
	_, err = h.conn.ResumeSession(ctx, acp.ResumeSessionRequest{SessionId: sid, Cwd: "/"})
	if code := requestCode(t, err); code != -32002 {
		t.Errorf("session/resume after session/close: code %d", code)
	}
}

// Only the first keyword of the prompt acts.
func TestFirstKeywordWins(t *testing.T) {
	h := start(t, nil, allCaps)
	sid := h.newSession("").SessionId
	resp := h.mustPrompt(sid, "say hi\nFLOOD 3 then ERROR and EXIT")
	if resp.StopReason != acp.StopReasonEndTurn {
		t.Errorf("stopReason = %q", resp.StopReason)
	}
	if text, n := agentText(h.client.takeUpdates()); text != "flood 1flood 2flood 3" || n != 3 {
		t.Errorf("reply %q in %d chunks", text, n)
	}
	// Lower case and embedded words are not keywords.
	h.mustPrompt(sid, "error exit SLOWLY xERROR")
	if text, _ := agentText(h.client.takeUpdates()); text != "Mock reply: error exit SLOWLY xERROR" {
		t.Errorf("reply %q", text)
	}
}

// Concurrent sessions on one connection are independent.
func TestConcurrentSessions(t *testing.T) {
	h := start(t, nil, allCaps)
	const n = 8
	errs := make(chan error, n)
	for i := range n {
		sid := h.newSession("").SessionId
		go func() {
			resp, err := h.prompt(sid, fmt.Sprintf("hello %d", i))
			if err == nil && resp.StopReason != acp.StopReasonEndTurn {
				err = fmt.Errorf("stopReason %q", resp.StopReason)
			}
			errs <- err
		}()
	}
	for range n {
		if err := recv(t, errs, "a prompt"); err != nil {
			t.Error(err)
		}
	}
	per := map[acp.SessionId]string{}
	for _, u := range h.client.takeUpdates() {
		if c := u.Update.AgentMessageChunk; c != nil {
			per[u.SessionId] += c.Content.Text.Text
		}
	}
	for i := range n {
		sid := acp.SessionId(fmt.Sprintf("mock-session-%d", i+1))
		if want := fmt.Sprintf("Mock reply: hello %d", i); per[sid] != want {
			t.Errorf("%s: %q, want %q", sid, per[sid], want)
		}
	}
}

// BenchmarkFlood measures the raw FLOOD throughput (chunks per second).
func BenchmarkFlood(b *testing.B) {
	const n = 100_000
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	result := make(chan error, 1)
	go func() { result <- mockagent.Run(context.Background(), inR, outW, io.Discard) }()
	sc := bufio.NewScanner(outR)
	sc.Buffer(make([]byte, 64*1024), 16<<20)
	send := func(s string) {
		if _, err := io.WriteString(inW, s+"\n"); err != nil {
			b.Fatal(err)
		}
	}
	// waitFor reads lines until the response with the given id.
	waitFor := func(id int) int {
		prefix := []byte(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,`, id))
		lines := 0
		for sc.Scan() {
			if bytes.HasPrefix(sc.Bytes(), prefix) {
				return lines
			}
			lines++
		}
		b.Fatalf("output ended: %v", sc.Err())
		return 0
	}
	send(`{"jsonrpc":"2.0","id":0,"method":"session/new","params":{"cwd":"/","mcpServers":[]}}`)
	waitFor(0)
	id := 0
	for b.Loop() {
		id++
		send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"session/prompt","params":{"sessionId":"mock-session-1","prompt":[{"type":"text","text":"FLOOD %d"}]}}`, id, n))
		if got := waitFor(id); got != n {
			b.Fatalf("%d lines, want %d", got, n)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "chunks/s")
	_ = inW.Close()
	if err := <-result; err != nil {
		b.Error(err)
	}
	_ = outW.Close()
}

// A script piped into the agent: every request read before EOF is answered
// once before Run returns. (The requests run concurrently, so a prompt may
// run before session/new has created its session.)
func TestScriptedInput(t *testing.T) {
	script := strings.Join([]string{
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":1}}`,
		`{"jsonrpc":"2.0","id":2,"method":"session/new","params":{"cwd":"/","mcpServers":[]}}`,
		`{"jsonrpc":"2.0","id":3,"method":"session/prompt","params":{"sessionId":"mock-session-1","prompt":[{"type":"text","text":"SLOW"}]}}`,
		`{"jsonrpc":"2.0","id":4,"method":"session/set_mode","params":{"sessionId":"mock-session-1","modeId":"plan"}}`,
		`{"jsonrpc":"2.0","method":"session/cancel","params":{"sessionId":"mock-session-1"}}`,
		`{"jsonrpc":"2.0","id":5,"method":"session/prompt","params":{"sessionId":"mock-session-1","prompt":[{"type":"text","text":"hi"}]}}`,
	}, "\n") // the last line has no newline
	var out syncBuffer
	if err := mockagent.Run(context.Background(), strings.NewReader(script), &out, io.Discard); err != nil {
		t.Fatalf("Run = %v", err)
	}
	answers := map[float64]map[string]any{}
	for line := range strings.Lines(out.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("invalid line %q: %v", line, err)
		}
		id, ok := m["id"].(float64)
		if !ok {
			continue
		}
		if _, dup := answers[id]; dup {
			t.Errorf("two answers for id %v", id)
		}
		answers[id] = m
		if e, ok := m["error"].(map[string]any); ok && (id < 3 || e["code"] != float64(-32002)) {
			t.Errorf("request %v: %v", id, m)
		}
		if r, ok := m["result"].(map[string]any); ok && (id == 3 || id == 5) {
			if sr := r["stopReason"]; sr != "cancelled" && sr != "end_turn" {
				t.Errorf("prompt %v: %v", id, m)
			}
		}
	}
	for id := range 5 {
		if _, ok := answers[float64(id+1)]; !ok {
			t.Errorf("request %d not answered", id+1)
		}
	}
}

// With OS pipes, as in the agent process: EXIT writes its chunk, answers
// nothing more, and Run's read of stdin is interrupted.
func TestExitOSPipes(t *testing.T) {
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer inW.Close()
	defer outR.Close()
	var errOut syncBuffer
	result := make(chan error, 1)
	go func() { result <- mockagent.Run(context.Background(), inR, outW, &errOut) }()
	out := bufio.NewReader(outR)
	readLine := func() map[string]any {
		t.Helper()
		line, err := out.ReadBytes('\n')
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("invalid line %q: %v", line, err)
		}
		return m
	}
	for i, l := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":1}}`,
		`{"jsonrpc":"2.0","id":2,"method":"session/new","params":{"cwd":"/","mcpServers":[]}}`,
		`{"jsonrpc":"2.0","id":3,"method":"session/prompt","params":{"sessionId":"mock-session-1","prompt":[{"type":"text","text":"EXIT"}]}}`,
	} {
		if _, err := io.WriteString(inW, l+"\n"); err != nil {
			t.Fatal(err)
		}
		if m := readLine(); i < 2 && m["id"] != float64(i+1) {
			t.Fatalf("got %v, want the answer to %d", m, i+1)
		} else if i == 2 && m["method"] != "session/update" {
			t.Fatalf("got %v, want the EXIT chunk", m)
		}
	}
	err = recv(t, result, "Run to return")
	var ee *mockagent.ExitError
	if !errors.As(err, &ee) || ee.Code != 3 {
		t.Fatalf("Run = %v, want ExitError{3}", err)
	}
	_ = outW.Close()
	if rest, err := io.ReadAll(out); err != nil || len(rest) != 0 {
		t.Errorf("output after the EXIT chunk: %q, %v", rest, err)
	}
	if got := errOut.String(); got != "mock agent exiting as requested\n" {
		t.Errorf("stderr = %q", got)
	}
}
