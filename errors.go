package sandboxagent

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/sandbox-agent-go/sandbox-agent/acp/acphttp"
)

// RPCError is a JSON-RPC error answered by the agent (code, message, data).
type RPCError = acphttp.RPCError

// ACPHTTPError is a non-2xx answer of the server's ACP endpoint (a POST of
// a request or notification, or the GET of the event stream). It is an
// alias rather than folded into *Error because the ACP connection treats
// such an answer as the end of the connection: the error a call returns
// wraps ErrConnectionLost and, as its cause, this one, so errors.Is tells
// "the connection is gone" and errors.As tells why. The answers of the
// other endpoints (/v1/health, /v1/fs, …) are *Error.
type ACPHTTPError = acphttp.HTTPError

// Errors for errors.Is.
var (
	// ErrConnectionLost is wrapped by a call that failed because the ACP
	// connection died (server killed or restarted, agent exited, network
	// error). The client re-enters the health gate, reconnects and
	// restores the session on its next use.
	ErrConnectionLost = acphttp.ErrConnectionLost
	// ErrClosed is returned after Client.Close.
	ErrClosed = errors.New("sandboxagent: client closed")
	// ErrSessionNotFound: no record with that id in the store.
	ErrSessionNotFound = errors.New("sandboxagent: session not found")
	// ErrNoAgentSessionID: the agent answered session/new without a
	// sessionId (upstream loops forever on this).
	ErrNoAgentSessionID = errors.New("sandboxagent: agent answered session/new without a sessionId")
	// ErrPermissionNotFound: no pending permission request with that id.
	ErrPermissionNotFound = errors.New("sandboxagent: permission request not found")
	// ErrAgentExited: the agent process exited while a session was being
	// created.
	ErrAgentExited = errors.New("sandboxagent: agent process exited while creating session")
)

// UnsupportedSessionCategoryError reports that the session has no config option of that category.
type UnsupportedSessionCategoryError struct {
	SessionID           string
	Category            string
	AvailableCategories []string
}

func (e *UnsupportedSessionCategoryError) Error() string {
	return fmt.Sprintf("sandboxagent: session '%s' does not support category '%s'. Available categories: %s",
		e.SessionID, e.Category, listOrNone(e.AvailableCategories))
}

// UnsupportedSessionValueError reports a value the config option does not allow.
type UnsupportedSessionValueError struct {
	SessionID      string
	Category       string
	ConfigID       string
	RequestedValue string
	AllowedValues  []string
}

func (e *UnsupportedSessionValueError) Error() string {
	return fmt.Sprintf("sandboxagent: session '%s' does not support value '%s' for category '%s' (configId='%s'). Allowed values: %s",
		e.SessionID, e.RequestedValue, e.Category, e.ConfigID, listOrNone(e.AllowedValues))
}

// UnsupportedSessionConfigOptionError reports an unknown config option id.
type UnsupportedSessionConfigOptionError struct {
	SessionID          string
	ConfigID           string
	AvailableConfigIDs []string
}

func (e *UnsupportedSessionConfigOptionError) Error() string {
	return fmt.Sprintf("sandboxagent: session '%s' does not have config option '%s'. Available config options: %s",
		e.SessionID, e.ConfigID, listOrNone(e.AvailableConfigIDs))
}

// UnsupportedPermissionReplyError reports that the agent offered no option
// for the reply. The agent's request is answered with an error.
type UnsupportedPermissionReplyError struct {
	PermissionID     string
	RequestedReply   PermissionReply
	AvailableReplies []PermissionReply
}

func (e *UnsupportedPermissionReplyError) Error() string {
	av := make([]string, len(e.AvailableReplies))
	for i, r := range e.AvailableReplies {
		av[i] = string(r)
	}
	return fmt.Sprintf("sandboxagent: permission '%s' does not support reply '%s'. Available replies: %s",
		e.PermissionID, e.RequestedReply, listOrNone(av))
}

// SandboxDestroyedError reports that a provider found the sandbox gone
// (Reconnect, EnsureServer or URL).
type SandboxDestroyedError struct {
	SandboxID string // raw id
	Provider  string
	Cause     error
}

func (e *SandboxDestroyedError) Error() string {
	return fmt.Sprintf("sandboxagent: sandbox '%s/%s' no longer exists and cannot be reconnected", e.Provider, e.SandboxID)
}

func (e *SandboxDestroyedError) Unwrap() error { return e.Cause }

// Error is a non-2xx answer of the HTTP API. Problem holds the decoded
// problem+json document when the body was JSON.
type Error struct {
	Status  int
	Problem *Problem
	// Body is the raw response body (bounded).
	Body []byte
}

// Problem is an RFC 7807 problem document as the server sends it; fields
// the server adds (agent, sessionId, details, …) are kept in Extra.
type Problem struct {
	Type   string         `json:"type,omitempty"`
	Title  string         `json:"title,omitempty"`
	Status int            `json:"status,omitempty"`
	Detail string         `json:"detail,omitempty"`
	Extra  map[string]any `json:"-"`
}

func (e *Error) Error() string {
	if e.Problem != nil {
		switch {
		case e.Problem.Detail != "":
			return fmt.Sprintf("sandboxagent: %d %s: %s", e.Status, e.Problem.Title, e.Problem.Detail)
		case e.Problem.Title != "":
			return fmt.Sprintf("sandboxagent: %d %s", e.Status, e.Problem.Title)
		}
	}
	if t := strings.TrimSpace(string(e.Body)); t != "" && len(t) < 300 {
		return fmt.Sprintf("sandboxagent: request failed with status %d: %s", e.Status, t)
	}
	return fmt.Sprintf("sandboxagent: request failed with status %d", e.Status)
}

func newError(status int, body []byte) *Error {
	e := &Error{Status: status, Body: body}
	var p Problem
	if json.Unmarshal(body, &p) == nil {
		_ = json.Unmarshal(body, &p.Extra)
		for _, k := range []string{"type", "title", "status", "detail"} {
			delete(p.Extra, k)
		}
		e.Problem = &p
	}
	return e
}

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "(none)"
	}
	return strings.Join(l, ", ")
}
