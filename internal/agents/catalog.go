// Package agents knows the coding agents sandbox-agent can run: their ids,
// capability flags and fallback config options (the catalog), where their
// launchers live on disk, how to install them and how to launch them.
package agents

import "slices"

// IDs is every supported agent, in upstream's list order.
var IDs = []string{"claude", "codex", "opencode", "amp", "pi", "cursor", "mock"}

// Known reports whether id is a supported agent.
func Known(id string) bool { return slices.Contains(IDs, id) }

// Capabilities are upstream's capability flags, in upstream's field order.
type Capabilities struct {
	PlanMode         bool `json:"planMode"`
	Permissions      bool `json:"permissions"`
	Questions        bool `json:"questions"`
	ToolCalls        bool `json:"toolCalls"`
	ToolResults      bool `json:"toolResults"`
	TextMessages     bool `json:"textMessages"`
	Images           bool `json:"images"`
	FileAttachments  bool `json:"fileAttachments"`
	SessionLifecycle bool `json:"sessionLifecycle"`
	ErrorEvents      bool `json:"errorEvents"`
	Reasoning        bool `json:"reasoning"`
	Status           bool `json:"status"`
	CommandExecution bool `json:"commandExecution"`
	FileChanges      bool `json:"fileChanges"`
	McpTools         bool `json:"mcpTools"`
	StreamingDeltas  bool `json:"streamingDeltas"`
	ItemStarted      bool `json:"itemStarted"`
	SharedProcess    bool `json:"sharedProcess"`
}

// ConfigOption is one select option set of an agent (model, mode, ...).
type ConfigOption struct {
	Category     string        `json:"category"`
	CurrentValue string        `json:"currentValue"`
	ID           string        `json:"id"`
	Name         string        `json:"name"`
	Options      []OptionValue `json:"options"`
	Type         string        `json:"type"`
}

// OptionValue is one choice of a ConfigOption.
type OptionValue struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

func sel(category, id, name, current string, values ...string) ConfigOption {
	o := ConfigOption{Category: category, CurrentValue: current, ID: id, Name: name, Type: "select"}
	for i := 0; i+1 < len(values); i += 2 {
		o.Options = append(o.Options, OptionValue{Name: values[i], Value: values[i+1]})
	}
	return o
}

// Spec is the static description of one agent.
type Spec struct {
	ID           string
	Capabilities Capabilities
	// ConfigOptions are reported with ?config=true (also when not installed).
	ConfigOptions []ConfigOption
	// CredentialsAlways marks agents upstream always reports as having
	// credentials (they bring their own configuration).
	CredentialsAlways bool
}

var specs = map[string]Spec{
	"claude": {ID: "claude",
		Capabilities: Capabilities{Permissions: true, Questions: true, ToolCalls: true, ToolResults: true, TextMessages: true, McpTools: true, StreamingDeltas: true},
		ConfigOptions: []ConfigOption{
			sel("model", "model", "Model", "default", "Default", "default", "Sonnet", "sonnet", "Opus", "opus", "Haiku", "haiku"),
			sel("mode", "mode", "Mode", "default", "Default", "default", "Accept Edits", "acceptEdits", "Plan", "plan", "Don't Ask", "dontAsk", "Bypass Permissions", "bypassPermissions"),
		}},
	"codex": {ID: "codex",
		Capabilities: Capabilities{PlanMode: true, Permissions: true, ToolCalls: true, ToolResults: true, TextMessages: true, Images: true, FileAttachments: true, SessionLifecycle: true, ErrorEvents: true, Reasoning: true, Status: true, CommandExecution: true, FileChanges: true, McpTools: true, StreamingDeltas: true, ItemStarted: true},
		ConfigOptions: []ConfigOption{
			sel("model", "model", "Model", "gpt-5.3-codex", "GPT-5.3 Codex", "gpt-5.3-codex"),
			sel("mode", "mode", "Mode", "read-only", "Read Only", "read-only", "Auto", "auto", "Full Access", "full-access"),
			sel("thought_level", "thought_level", "Thought Level", "high", "Low", "low", "Medium", "medium", "High", "high", "Extra High", "xhigh"),
		}},
	"opencode": {ID: "opencode",
		Capabilities: Capabilities{ToolCalls: true, ToolResults: true, TextMessages: true, Images: true, FileAttachments: true, SessionLifecycle: true, ErrorEvents: true, McpTools: true, StreamingDeltas: true, ItemStarted: true},
		ConfigOptions: []ConfigOption{
			sel("model", "model", "Model", "opencode/gemini-3-pro", "Gemini 3 Pro", "opencode/gemini-3-pro"),
			sel("mode", "mode", "Mode", "build", "Build", "build", "Plan", "plan"),
		}},
	"amp": {ID: "amp",
		Capabilities: Capabilities{ToolCalls: true, ToolResults: true, TextMessages: true, ErrorEvents: true, McpTools: true},
		ConfigOptions: []ConfigOption{
			sel("model", "model", "Model", "amp-default", "Amp Default", "amp-default"),
			sel("mode", "mode", "Mode", "default", "Default", "default", "Bypass", "bypass"),
		}},
	"pi": {ID: "pi", CredentialsAlways: true,
		Capabilities: Capabilities{ToolCalls: true, ToolResults: true, TextMessages: true, Images: true, SessionLifecycle: true, ErrorEvents: true, StreamingDeltas: true, ItemStarted: true},
		ConfigOptions: []ConfigOption{
			sel("model", "model", "Model", "default", "Default", "default"),
		}},
	"cursor": {ID: "cursor", CredentialsAlways: true,
		Capabilities: Capabilities{PlanMode: true, Permissions: true, ToolCalls: true, ToolResults: true, TextMessages: true, Images: true, SessionLifecycle: true, ErrorEvents: true, StreamingDeltas: true, ItemStarted: true},
		ConfigOptions: []ConfigOption{
			sel("model", "model", "Model", "opus-4.6-thinking", "Opus 4.6 Thinking", "opus-4.6-thinking"),
		}},
	"mock": {ID: "mock", CredentialsAlways: true,
		Capabilities: Capabilities{PlanMode: true, Permissions: true, Questions: true, ToolCalls: true, ToolResults: true, TextMessages: true, Images: true, FileAttachments: true, SessionLifecycle: true, ErrorEvents: true, Reasoning: true, Status: true, CommandExecution: true, FileChanges: true, McpTools: true, StreamingDeltas: true, ItemStarted: true},
		ConfigOptions: []ConfigOption{
			sel("model", "model", "Model", "mock", "Mock", "mock", "Mock Fast", "mock-fast"),
			sel("mode", "mode", "Mode", "normal", "Normal", "normal", "Plan", "plan"),
			sel("thought_level", "thought_level", "Thought Level", "low", "Low", "low", "Medium", "medium", "High", "high"),
		}},
}

// Lookup returns the spec of a known agent.
func Lookup(id string) (Spec, bool) {
	s, ok := specs[id]
	return s, ok
}
