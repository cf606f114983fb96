package sandboxagent

import (
	"errors"
	"fmt"
	"strings"

	"github.com/sandbox-agent-go/sandbox-agent/acp/acphttp"
)

// RPCError is a JSON-RPC error answered by the agent (code, message, data).
type RPCError = acphttp.RPCError

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

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "(none)"
	}
	return strings.Join(l, ", ")
}
