package sandboxagent_test

import (
	"encoding/json"
	"fmt"

	sandboxagent "github.com/sandbox-agent-go/sandbox-agent"
)

// A turn's events as a listener sees them: the typed accessors pick out
// the updates, and Reply gathers the agent's text. In an application the
// events come from session.OnEvent(reply.Add) while Prompt runs.
func ExampleReply() {
	payloads := []string{
		`{"jsonrpc":"2.0","method":"session/update","params":{"sessionId":"s1","update":{"sessionUpdate":"agent_thought_chunk","content":{"type":"text","text":"thinking"}}}}`,
		`{"jsonrpc":"2.0","method":"session/update","params":{"sessionId":"s1","update":{"sessionUpdate":"tool_call","toolCallId":"t1","title":"Read README.md","kind":"read","status":"pending"}}}`,
		`{"jsonrpc":"2.0","method":"session/update","params":{"sessionId":"s1","update":{"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":"Hello, "}}}}`,
		`{"jsonrpc":"2.0","method":"session/update","params":{"sessionId":"s1","update":{"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":"world."}}}}`,
		`{"jsonrpc":"2.0","id":3,"result":{"stopReason":"end_turn"}}`,
	}
	var reply sandboxagent.Reply
	for _, p := range payloads {
		ev := sandboxagent.SessionEvent{Sender: sandboxagent.SessionEventSenderAgent, Payload: json.RawMessage(p)}
		if tc, ok := ev.ToolCall(); ok {
			fmt.Println("tool call:", tc.Title)
		}
		reply.Add(ev)
	}
	fmt.Println("reply:", reply.Text())
	// Output:
	// tool call: Read README.md
	// reply: Hello, world.
}
