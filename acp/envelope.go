// Package acp holds the wire pieces of ACP (Agent Client Protocol) over
// HTTP that both the server and the SDK need: classifying raw JSON-RPC
// envelopes without re-encoding them, and the synthetic notifications the
// server adds to an agent's stream.
package acp

import (
	"bytes"
	"encoding/json"
	"errors"
)

// Kind classifies a JSON-RPC envelope.
type Kind int

const (
	// Request has a method and an id (a null id counts, as upstream).
	Request Kind = iota + 1
	// Notification has a method and no id.
	Notification
	// Response has an id and no method (result or error).
	Response
	// Other is any other object ({} included).
	Other
)

func (k Kind) String() string {
	switch k {
	case Request:
		return "request"
	case Notification:
		return "notification"
	case Response:
		return "response"
	}
	return "other"
}

// Envelope is the routing view of one JSON-RPC message. ID holds the raw
// bytes of the id exactly as sent, so 0, 1, "1" and UUID strings stay
// distinct and are echoed back untouched.
type Envelope struct {
	Kind   Kind
	ID     json.RawMessage
	Method string
}

// ErrNotObject is returned for valid JSON that is not an object.
var ErrNotObject = errors.New("request body must be a JSON-RPC object")

// Parse classifies raw (which must be one JSON value). It returns a
// *json.SyntaxError for malformed JSON and ErrNotObject for non-objects.
// It is on the proxy's hot path (every agent stdout line), so it validates
// the whole value and picks out the top-level "id" and "method" in a single
// pass, without decoding params or results. It accepts exactly what
// encoding/json.Valid accepts (a fuzz test holds it to that).
func Parse(raw []byte) (Envelope, error) {
	env, ok, isObj := scanEnvelope(raw)
	if !ok {
		if err := json.Unmarshal(raw, new(any)); err != nil {
			return Envelope{}, err
		}
		return Envelope{}, &json.SyntaxError{}
	}
	if !isObj {
		return Envelope{}, ErrNotObject
	}
	return env, nil
}

// IDKey is the map key for an id: its compact JSON form, so numbers and
// strings never collide ("1" vs 1) and whitespace does not matter.
func IDKey(id json.RawMessage) string {
	if len(id) == 0 {
		return ""
	}
	var b bytes.Buffer
	if json.Compact(&b, id) != nil {
		return string(id)
	}
	return b.String()
}

// Synthetic notifications the server adds to an agent's stream.
const (
	// MethodAgentExited is published once when the agent process ends:
	// params {"code": int|null, "success": bool, "signal"?: string}.
	MethodAgentExited = "_adapter/agent_exited"
	// MethodInvalidStdout wraps a stdout line that is not a JSON object:
	// params {"error": string, "raw": string}.
	MethodInvalidStdout = "_adapter/invalid_stdout"
	// MethodGap tells a resuming SSE reader that events were dropped from
	// the replay buffer before it came back: params {"afterEventId",
	// "nextEventId", "missedEvents"}. It carries no SSE id.
	MethodGap = "_adapter/gap"
)

// AgentExitedParams is the payload of MethodAgentExited.
type AgentExitedParams struct {
	Code    *int   `json:"code"`
	Success bool   `json:"success"`
	Signal  string `json:"signal,omitempty"`
}

// InvalidStdoutParams is the payload of MethodInvalidStdout.
type InvalidStdoutParams struct {
	Error string `json:"error"`
	Raw   string `json:"raw"`
}

// GapParams is the payload of MethodGap.
type GapParams struct {
	AfterEventID uint64 `json:"afterEventId"`
	NextEventID  uint64 `json:"nextEventId"`
	MissedEvents uint64 `json:"missedEvents"`
	// Reset: the Last-Event-ID was beyond the stream's last event (the
	// server id was deleted and recreated, or the server restarted), so
	// event ids started over; MissedEvents is then unknown (0) and the
	// stream continues with every retained event from NextEventID.
	Reset bool `json:"reset,omitempty"`
}

// Notify builds a compact notification envelope.
func Notify(method string, params any) []byte {
	b, err := json.Marshal(struct {
		JSONRPC string `json:"jsonrpc"`
		Method  string `json:"method"`
		Params  any    `json:"params"`
	}{"2.0", method, params})
	if err != nil {
		panic("acp: marshal synthetic notification: " + err.Error())
	}
	return b
}
