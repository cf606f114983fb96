package sandboxagent

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"

	acpsdk "github.com/coder/acp-go-sdk"
)

// Typed views of session/update notifications.
//
// SessionEvent.Payload stays the raw envelope, forwarded and persisted
// verbatim: nothing here runs on the event path. Each accessor decodes the
// payload when it is called and keeps nothing, so a listener that needs
// several variants should call Update once and switch on the non-nil field.

// updateKinds are the sessionUpdate discriminators acp-go-sdk v0.13.0
// models. The SDK's union decoder falls back to guessing a variant from the
// fields present, so an unknown kind (a newer protocol, an extension) would
// come back as the wrong type; Update refuses those and RawUpdate serves them.
var updateKinds = map[string]bool{
	"user_message_chunk":        true,
	"agent_message_chunk":       true,
	"agent_thought_chunk":       true,
	"tool_call":                 true,
	"tool_call_update":          true,
	"plan":                      true,
	"available_commands_update": true,
	"current_mode_update":       true,
	"config_option_update":      true,
	"session_info_update":       true,
	"usage_update":              true,
}

// updateKey is pre-checked as bytes so that listeners calling an
// accessor on every event skip responses, requests and _adapter/*
// notifications without a JSON decode.
var updateKey = []byte(`"sessionUpdate"`)

// RawUpdate returns the discriminator ("agent_message_chunk", …) and the
// raw JSON of params.update when the event is a session/update
// notification, including kinds acp-go-sdk does not model. ok is false for
// every other envelope (requests, responses, other notifications).
func (e SessionEvent) RawUpdate() (kind string, update json.RawMessage, ok bool) {
	if !bytes.Contains(e.Payload, updateKey) {
		return "", nil, false
	}
	var env struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
		Params struct {
			Update json.RawMessage `json:"update"`
		} `json:"params"`
	}
	if json.Unmarshal(e.Payload, &env) != nil || env.Method != "session/update" || len(env.ID) != 0 || len(env.Params.Update) == 0 {
		return "", nil, false
	}
	var disc struct {
		Kind string `json:"sessionUpdate"`
	}
	if json.Unmarshal(env.Params.Update, &disc) != nil || disc.Kind == "" {
		return "", nil, false
	}
	return disc.Kind, env.Params.Update, true
}

// Update decodes the event as a session/update notification into
// acp-go-sdk's union, exactly one field of which is set. ok is false for
// other envelopes, for malformed updates and for update kinds the SDK
// does not model (use RawUpdate for those).
func (e SessionEvent) Update() (acpsdk.SessionUpdate, bool) {
	kind, raw, ok := e.RawUpdate()
	if !ok || !updateKinds[kind] {
		return acpsdk.SessionUpdate{}, false
	}
	var u acpsdk.SessionUpdate
	if u.UnmarshalJSON(raw) != nil {
		return acpsdk.SessionUpdate{}, false
	}
	return u, true
}

// variant returns one field of the decoded update.
func variant[T any](e SessionEvent, field func(acpsdk.SessionUpdate) *T) (*T, bool) {
	u, ok := e.Update()
	if !ok {
		return nil, false
	}
	v := field(u)
	return v, v != nil
}

// UserMessageChunk returns the event's user_message_chunk update.
func (e SessionEvent) UserMessageChunk() (*acpsdk.SessionUpdateUserMessageChunk, bool) {
	return variant(e, func(u acpsdk.SessionUpdate) *acpsdk.SessionUpdateUserMessageChunk { return u.UserMessageChunk })
}

// AgentMessageChunk returns the event's agent_message_chunk update.
func (e SessionEvent) AgentMessageChunk() (*acpsdk.SessionUpdateAgentMessageChunk, bool) {
	return variant(e, func(u acpsdk.SessionUpdate) *acpsdk.SessionUpdateAgentMessageChunk { return u.AgentMessageChunk })
}

// AgentThoughtChunk returns the event's agent_thought_chunk update.
func (e SessionEvent) AgentThoughtChunk() (*acpsdk.SessionUpdateAgentThoughtChunk, bool) {
	return variant(e, func(u acpsdk.SessionUpdate) *acpsdk.SessionUpdateAgentThoughtChunk { return u.AgentThoughtChunk })
}

// ToolCall returns the event's tool_call update (a new tool call).
func (e SessionEvent) ToolCall() (*acpsdk.SessionUpdateToolCall, bool) {
	return variant(e, func(u acpsdk.SessionUpdate) *acpsdk.SessionUpdateToolCall { return u.ToolCall })
}

// ToolCallUpdate returns the event's tool_call_update update.
func (e SessionEvent) ToolCallUpdate() (*acpsdk.SessionToolCallUpdate, bool) {
	return variant(e, func(u acpsdk.SessionUpdate) *acpsdk.SessionToolCallUpdate { return u.ToolCallUpdate })
}

// Plan returns the event's plan update.
func (e SessionEvent) Plan() (*acpsdk.SessionUpdatePlan, bool) {
	return variant(e, func(u acpsdk.SessionUpdate) *acpsdk.SessionUpdatePlan { return u.Plan })
}

// AvailableCommandsUpdate returns the event's available_commands_update update.
func (e SessionEvent) AvailableCommandsUpdate() (*acpsdk.SessionAvailableCommandsUpdate, bool) {
	return variant(e, func(u acpsdk.SessionUpdate) *acpsdk.SessionAvailableCommandsUpdate { return u.AvailableCommandsUpdate })
}

// CurrentModeUpdate returns the event's current_mode_update update.
func (e SessionEvent) CurrentModeUpdate() (*acpsdk.SessionCurrentModeUpdate, bool) {
	return variant(e, func(u acpsdk.SessionUpdate) *acpsdk.SessionCurrentModeUpdate { return u.CurrentModeUpdate })
}

// ConfigOptionUpdate returns the event's config_option_update update.
func (e SessionEvent) ConfigOptionUpdate() (*acpsdk.SessionConfigOptionUpdate, bool) {
	return variant(e, func(u acpsdk.SessionUpdate) *acpsdk.SessionConfigOptionUpdate { return u.ConfigOptionUpdate })
}

// SessionInfoUpdate returns the event's session_info_update update.
func (e SessionEvent) SessionInfoUpdate() (*acpsdk.SessionSessionInfoUpdate, bool) {
	return variant(e, func(u acpsdk.SessionUpdate) *acpsdk.SessionSessionInfoUpdate { return u.SessionInfoUpdate })
}

// UsageUpdate returns the event's usage_update update (unstable in ACP).
func (e SessionEvent) UsageUpdate() (*acpsdk.SessionUsageUpdate, bool) {
	return variant(e, func(u acpsdk.SessionUpdate) *acpsdk.SessionUsageUpdate { return u.UsageUpdate })
}

// AgentText returns the text of an agent_message_chunk whose content is a
// text block. ok is false for every other event, including message chunks
// carrying images, audio or resources.
func (e SessionEvent) AgentText() (string, bool) {
	c, ok := e.AgentMessageChunk()
	if !ok || c.Content.Text == nil {
		return "", false
	}
	return c.Content.Text.Text, true
}

// ReplyText concatenates the text of the agent_message_chunk events in
// events, in order: the agent's reply when events are one turn's (from a
// Reply collector, or the GetEvents items after the turn's session/prompt).
func ReplyText(events []SessionEvent) string {
	var b strings.Builder
	for _, ev := range events {
		if t, ok := ev.AgentText(); ok {
			b.WriteString(t)
		}
	}
	return b.String()
}

// Reply collects the agent's reply text from a live event stream. Pass its
// Add to Session.OnEvent before prompting; envelopes reach listeners
// before the call they answer returns, so once Prompt returns, Text holds
// the whole turn's reply. The zero value is ready to use and safe for
// concurrent use.
type Reply struct {
	mu sync.Mutex
	b  strings.Builder
}

// Add appends the text of ev when it is an agent text chunk, and ignores
// every other event.
func (r *Reply) Add(ev SessionEvent) {
	t, ok := ev.AgentText()
	if !ok {
		return
	}
	r.mu.Lock()
	r.b.WriteString(t)
	r.mu.Unlock()
}

// Text returns the reply text collected so far.
func (r *Reply) Text() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.b.String()
}

// Reset forgets the collected text, for reuse across turns.
func (r *Reply) Reset() {
	r.mu.Lock()
	r.b.Reset()
	r.mu.Unlock()
}
