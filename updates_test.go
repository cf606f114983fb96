package sandboxagent

import (
	"encoding/json"
	"testing"

	acpsdk "github.com/coder/acp-go-sdk"
)

// updateEvent wraps u, marshalled by acp-go-sdk, in a session/update envelope.
func updateEvent(t *testing.T, u acpsdk.SessionUpdate) SessionEvent {
	t.Helper()
	params, err := json.Marshal(acpsdk.SessionNotification{SessionId: "agent-1", Update: u})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "method": "session/update", "params": json.RawMessage(params)})
	return SessionEvent{Sender: SessionEventSenderAgent, Payload: raw}
}

func TestSessionEventUpdate(t *testing.T) {
	title := "t"
	cases := []struct {
		name string
		u    acpsdk.SessionUpdate
		kind string
		got  func(SessionEvent) bool
	}{
		{"user chunk", acpsdk.UpdateUserMessageText("hi"), "user_message_chunk", func(e SessionEvent) bool { v, ok := e.UserMessageChunk(); return ok && v.Content.Text.Text == "hi" }},
		{"agent chunk", acpsdk.UpdateAgentMessageText("yo"), "agent_message_chunk", func(e SessionEvent) bool { v, ok := e.AgentMessageChunk(); return ok && v.Content.Text.Text == "yo" }},
		{"thought", acpsdk.UpdateAgentThoughtText("hmm"), "agent_thought_chunk", func(e SessionEvent) bool { v, ok := e.AgentThoughtChunk(); return ok && v.Content.Text.Text == "hmm" }},
		{"tool call", acpsdk.StartToolCall("tc1", "read", acpsdk.WithStartKind(acpsdk.ToolKindRead)), "tool_call", func(e SessionEvent) bool {
			v, ok := e.ToolCall()
			return ok && v.ToolCallId == "tc1" && v.Title == "read"
		}},
		{"tool call update", acpsdk.UpdateToolCall("tc1", acpsdk.WithUpdateStatus(acpsdk.ToolCallStatusCompleted)), "tool_call_update", func(e SessionEvent) bool {
			v, ok := e.ToolCallUpdate()
			return ok && v.ToolCallId == "tc1" && v.Status != nil && *v.Status == acpsdk.ToolCallStatusCompleted
		}},
		{"plan", acpsdk.UpdatePlan(acpsdk.PlanEntry{Content: "step", Priority: acpsdk.PlanEntryPriorityHigh, Status: acpsdk.PlanEntryStatusPending}), "plan", func(e SessionEvent) bool {
			v, ok := e.Plan()
			return ok && len(v.Entries) == 1 && v.Entries[0].Content == "step"
		}},
		{"commands", acpsdk.SessionUpdate{AvailableCommandsUpdate: &acpsdk.SessionAvailableCommandsUpdate{AvailableCommands: []acpsdk.AvailableCommand{{Name: "web", Description: "search"}}}}, "available_commands_update", func(e SessionEvent) bool {
			v, ok := e.AvailableCommandsUpdate()
			return ok && len(v.AvailableCommands) == 1 && v.AvailableCommands[0].Name == "web"
		}},
		{"mode", acpsdk.SessionUpdate{CurrentModeUpdate: &acpsdk.SessionCurrentModeUpdate{CurrentModeId: "plan"}}, "current_mode_update", func(e SessionEvent) bool { v, ok := e.CurrentModeUpdate(); return ok && v.CurrentModeId == "plan" }},
		{"config", acpsdk.SessionUpdate{ConfigOptionUpdate: &acpsdk.SessionConfigOptionUpdate{ConfigOptions: []acpsdk.SessionConfigOption{acpsdk.NewSessionConfigOptionBoolean(true)}}}, "config_option_update", func(e SessionEvent) bool {
			v, ok := e.ConfigOptionUpdate()
			return ok && len(v.ConfigOptions) == 1 && v.ConfigOptions[0].Boolean != nil && v.ConfigOptions[0].Boolean.CurrentValue
		}},
		{"info", acpsdk.SessionUpdate{SessionInfoUpdate: &acpsdk.SessionSessionInfoUpdate{Title: &title}}, "session_info_update", func(e SessionEvent) bool {
			v, ok := e.SessionInfoUpdate()
			return ok && v.Title != nil && *v.Title == "t"
		}},
		{"usage", acpsdk.SessionUpdate{UsageUpdate: &acpsdk.SessionUsageUpdate{Used: 10, Size: 100}}, "usage_update", func(e SessionEvent) bool { v, ok := e.UsageUpdate(); return ok && v.Used == 10 && v.Size == 100 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ev := updateEvent(t, tc.u)
			if kind, _, ok := ev.RawUpdate(); !ok || kind != tc.kind {
				t.Fatalf("RawUpdate kind %q ok %v, want %q", kind, ok, tc.kind)
			}
			if _, ok := ev.Update(); !ok {
				t.Fatal("Update not ok")
			}
			if !tc.got(ev) {
				t.Fatalf("variant accessor failed on %s", ev.Payload)
			}
			// Every other variant accessor says no.
			others := 0
			for _, ok := range []bool{ok1(ev.UserMessageChunk()), ok1(ev.AgentMessageChunk()), ok1(ev.AgentThoughtChunk()), ok1(ev.ToolCall()), ok1(ev.ToolCallUpdate()), ok1(ev.Plan()), ok1(ev.AvailableCommandsUpdate()), ok1(ev.CurrentModeUpdate()), ok1(ev.ConfigOptionUpdate()), ok1(ev.SessionInfoUpdate()), ok1(ev.UsageUpdate())} {
				if ok {
					others++
				}
			}
			if others != 1 {
				t.Fatalf("%d accessors matched, want 1", others)
			}
		})
	}
}

func ok1[T any](_ T, ok bool) bool { return ok }

func TestSessionEventNotUpdate(t *testing.T) {
	cases := map[string]string{
		"response":         `{"jsonrpc":"2.0","id":3,"result":{"stopReason":"end_turn"}}`,
		"request":          `{"jsonrpc":"2.0","id":1,"method":"session/prompt","params":{"sessionId":"s","prompt":[{"type":"text","text":"sessionUpdate"}]}}`,
		"permission":       `{"jsonrpc":"2.0","id":"p","method":"session/request_permission","params":{"sessionId":"s","toolCall":{"toolCallId":"x","sessionUpdate":"tool_call"}}}`,
		"adapter":          `{"jsonrpc":"2.0","method":"_adapter/agent_exited","params":{"code":1}}`,
		"invalid json":     `{"jsonrpc":"2.0","method":"session/update","params":{"update":{"sessionUpdate":`,
		"no discriminator": `{"jsonrpc":"2.0","method":"session/update","params":{"sessionId":"s","update":{"content":{"type":"text","text":"x"}}}}`,
	}
	for name, payload := range cases {
		t.Run(name, func(t *testing.T) {
			ev := SessionEvent{Payload: json.RawMessage(payload)}
			if _, _, ok := ev.RawUpdate(); ok {
				t.Fatal("RawUpdate ok")
			}
			if _, ok := ev.Update(); ok {
				t.Fatal("Update ok")
			}
			if _, ok := ev.AgentText(); ok {
				t.Fatal("AgentText ok")
			}
		})
	}
}

func TestSessionEventUnknownKind(t *testing.T) {
	ev := SessionEvent{Payload: json.RawMessage(`{"jsonrpc":"2.0","method":"session/update","params":{"sessionId":"s","update":{"sessionUpdate":"future_thing","content":{"type":"text","text":"x"}}}}`)}
	kind, raw, ok := ev.RawUpdate()
	if !ok || kind != "future_thing" || len(raw) == 0 {
		t.Fatalf("RawUpdate %q %s %v", kind, raw, ok)
	}
	// The SDK would guess user_message_chunk from the fields; Update refuses.
	if _, ok := ev.Update(); ok {
		t.Fatal("Update accepted an unknown kind")
	}
}

func TestReplyText(t *testing.T) {
	img := acpsdk.UpdateAgentMessage(acpsdk.ImageBlock("aGk=", "image/png"))
	events := []SessionEvent{
		{Payload: json.RawMessage(`{"jsonrpc":"2.0","id":1,"method":"session/prompt","params":{"sessionId":"s","prompt":[]}}`)},
		updateEvent(t, acpsdk.UpdateUserMessageText("question")),
		updateEvent(t, acpsdk.UpdateAgentThoughtText("thinking")),
		updateEvent(t, acpsdk.UpdateAgentMessageText("Hello, ")),
		updateEvent(t, img),
		updateEvent(t, acpsdk.UpdateAgentMessageText("world")),
		{Payload: json.RawMessage(`{"jsonrpc":"2.0","id":1,"result":{"stopReason":"end_turn"}}`)},
	}
	if got := ReplyText(events); got != "Hello, world" {
		t.Fatalf("ReplyText %q", got)
	}
	var r Reply
	for _, ev := range events {
		r.Add(ev)
	}
	if r.Text() != "Hello, world" {
		t.Fatalf("Reply %q", r.Text())
	}
	r.Reset()
	if r.Text() != "" {
		t.Fatalf("after Reset %q", r.Text())
	}
}
