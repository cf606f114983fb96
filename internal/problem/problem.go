// Package problem builds the RFC 7807 problem+json errors that every /v1
// endpoint returns. Codes, titles and detail prefixes match upstream
// sandbox-agent v0.4.2 so its TypeScript SDK maps our errors the same way.
package problem

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
)

// Code is the stable suffix of the problem type URN.
type Code string

// The codes upstream uses (reference-api §2).
const (
	InvalidRequest       Code = "invalid_request"
	Conflict             Code = "conflict"
	UnsupportedAgent     Code = "unsupported_agent"
	AgentNotInstalled    Code = "agent_not_installed"
	InstallFailed        Code = "install_failed"
	AgentProcessExited   Code = "agent_process_exited"
	TokenInvalid         Code = "token_invalid"
	PermissionDenied     Code = "permission_denied"
	NotAcceptable        Code = "not_acceptable"
	UnsupportedMediaType Code = "unsupported_media_type"
	NotFound             Code = "not_found"
	SessionNotFound      Code = "session_not_found"
	SessionAlreadyExists Code = "session_already_exists"
	ModeNotSupported     Code = "mode_not_supported"
	StreamError          Code = "stream_error"
	Timeout              Code = "timeout"
	// Codes of this server beyond upstream's set.
	ServerShuttingDown Code = "server_shutting_down"
	CrossSiteRequest   Code = "cross_site_request"
	RequestTimeout     Code = "request_timeout"
	LimitExceeded      Code = "limit_exceeded"
	TooManyServers     Code = "too_many_servers"
)

// TypePrefix prefixes every problem type.
const TypePrefix = "urn:sandbox-agent:error:"

// ContentType is the media type of problem documents.
const ContentType = "application/problem+json"

// Problem is one problem+json document. It implements error so packages can
// return it through ordinary error paths and the HTTP layer can render it.
type Problem struct {
	Code   Code
	Title  string
	Status int
	Detail string
	// Extensions flattened into the document, as upstream does.
	Agent     string         // "agent" extension, omitted when empty
	SessionID string         // "sessionId" extension, omitted when empty
	Details   map[string]any // "details" extension, omitted when nil
	// Extra holds further top-level members (desktop errors use "code").
	Extra map[string]any
	// hasAgent distinguishes an empty agent id ("?agent=") from no agent.
	hasAgent bool
}

func (p *Problem) Error() string { return p.Detail }

// MarshalJSON renders the document with upstream's member order.
func (p *Problem) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 160)
	b = append(b, `{"type":`...)
	b = appendJSON(b, TypePrefix+string(p.Code))
	b = append(b, `,"title":`...)
	b = appendJSON(b, p.Title)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(p.Status), 10)
	b = append(b, `,"detail":`...)
	b = appendJSON(b, p.Detail)
	if p.Agent != "" || p.hasAgent {
		b = append(b, `,"agent":`...)
		b = appendJSON(b, p.Agent)
	}
	if p.SessionID != "" {
		b = append(b, `,"sessionId":`...)
		b = appendJSON(b, p.SessionID)
	}
	if p.Details != nil {
		b = append(b, `,"details":`...)
		b = appendJSON(b, p.Details)
	}
	for _, k := range slices.Sorted(maps.Keys(p.Extra)) {
		b = append(b, ',')
		b = appendJSON(b, k)
		b = append(b, ':')
		b = appendJSON(b, p.Extra[k])
	}
	return append(b, '}'), nil
}

func appendJSON(b []byte, v any) []byte {
	enc, err := json.Marshal(v)
	if err != nil {
		enc, _ = json.Marshal(fmt.Sprint(v))
	}
	return append(b, enc...)
}

// Write renders p as the response.
func Write(w http.ResponseWriter, p *Problem) {
	body, _ := p.MarshalJSON()
	h := w.Header()
	h.Set("Content-Type", ContentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(p.Status)
	_, _ = w.Write(body)
}

// WriteError renders err: a *Problem (anywhere in the chain) as itself, any
// other error as a 500 stream_error so nothing is ever answered without a body.
func WriteError(w http.ResponseWriter, err error) {
	var p *Problem
	if errors.As(err, &p) {
		Write(w, p)
		return
	}
	Write(w, Stream(err.Error()))
}

// New builds a problem with an explicit status and title.
func New(code Code, status int, title, detail string) *Problem {
	return &Problem{Code: code, Status: status, Title: title, Detail: detail}
}

// Invalid is a 400 invalid_request: "invalid request: <msg>".
func Invalid(msg string) *Problem {
	return New(InvalidRequest, http.StatusBadRequest, "Invalid Request", "invalid request: "+msg)
}

// Invalidf formats an Invalid problem.
func Invalidf(format string, args ...any) *Problem { return Invalid(fmt.Sprintf(format, args...)) }

// EndpointNotFound is the 404 fallback for unknown paths.
func EndpointNotFound() *Problem {
	return New(InvalidRequest, http.StatusNotFound, "Not Found", "endpoint not found")
}

// PayloadTooLarge is upstream's 413 for inputs over a configured limit.
func PayloadTooLarge(msg string) *Problem {
	return New(InvalidRequest, http.StatusRequestEntityTooLarge, "Payload Too Large", "invalid request: "+msg)
}

// ConflictMsg is a 409 conflict.
func ConflictMsg(msg string) *Problem {
	p := New(Conflict, http.StatusConflict, "Conflict", "conflict: "+msg)
	p.Details = map[string]any{"message": msg}
	return p
}

// Unsupported is a 400 unsupported_agent.
func Unsupported(agent string) *Problem {
	p := New(UnsupportedAgent, http.StatusBadRequest, "Unsupported Agent", "unsupported agent: "+agent)
	p.Agent, p.hasAgent = agent, true
	return p
}

// NotInstalled is a 404 agent_not_installed.
func NotInstalled(agent string) *Problem {
	p := New(AgentNotInstalled, http.StatusNotFound, "Agent Not Installed", "agent not installed: "+agent)
	p.Agent, p.hasAgent = agent, true
	return p
}

// Install is a 500 install_failed; stderr says which step failed and why.
func Install(agent, stderr string) *Problem {
	p := New(InstallFailed, http.StatusInternalServerError, "Install Failed", "install failed: "+agent)
	p.Agent, p.hasAgent = agent, true
	p.Details = map[string]any{"stderr": stderr}
	return p
}

// Exited is a 500 agent_process_exited. exitCode may be nil when unknown.
func Exited(agent string, exitCode *int, stderr string) *Problem {
	p := New(AgentProcessExited, http.StatusInternalServerError, "Agent Process Exited", "agent process exited: "+agent)
	p.Agent, p.hasAgent = agent, true
	d := map[string]any{}
	if exitCode != nil {
		d["exitCode"] = *exitCode
	}
	if stderr != "" {
		d["stderr"] = stderr
	}
	if len(d) > 0 {
		p.Details = d
	}
	return p
}

// Unauthorized is the 401 token_invalid answer for missing or wrong tokens.
func Unauthorized() *Problem {
	p := New(TokenInvalid, http.StatusUnauthorized, "Token Invalid", "token invalid")
	p.Details = map[string]any{"message": "missing or invalid bearer token"}
	return p
}

// Forbidden is a 403 permission_denied (the Host allow-list uses it).
func Forbidden(msg string) *Problem {
	p := New(PermissionDenied, http.StatusForbidden, "Permission Denied", "permission denied")
	p.Details = map[string]any{"message": msg}
	return p
}

// NotAcceptableMsg is a 406 not_acceptable.
func NotAcceptableMsg(msg string) *Problem {
	p := New(NotAcceptable, http.StatusNotAcceptable, "Not Acceptable", "not acceptable: "+msg)
	p.Details = map[string]any{"message": msg}
	return p
}

// UnsupportedMedia is a 415 unsupported_media_type.
func UnsupportedMedia(msg string) *Problem {
	p := New(UnsupportedMediaType, http.StatusUnsupportedMediaType, "Unsupported Media Type", "unsupported media type: "+msg)
	p.Details = map[string]any{"message": msg}
	return p
}

// Resource is a 404 not_found for a typed resource ("process", ...).
func Resource(resource, id string) *Problem {
	p := New(NotFound, http.StatusNotFound, "Not Found", "not found: "+resource+" "+id)
	p.Details = map[string]any{"id": id, "resource": resource}
	return p
}

// Session is a 404 session_not_found (upstream also uses it for ACP servers
// and missing MCP/skills entries).
func Session(id string) *Problem {
	p := New(SessionNotFound, http.StatusNotFound, "Session Not Found", "session not found: "+id)
	p.SessionID = id
	return p
}

// Stream is a 502 stream_error.
func Stream(msg string) *Problem {
	p := New(StreamError, http.StatusBadGateway, "Stream Error", "stream error: "+msg)
	p.Details = map[string]any{"message": msg}
	return p
}

// ShuttingDown is the 503 a request still pending when the server shuts
// down gets: the client may retry against the next server.
func ShuttingDown() *Problem {
	return New(ServerShuttingDown, http.StatusServiceUnavailable, "Server Shutting Down", "the server is shutting down; retry against a new server")
}

// OverLimit is a limit_exceeded problem (413 for sizes and counts, 400 for
// shapes such as path depth) naming the limit that was hit — its flag name,
// so the operator knows what to raise — and its configured value.
func OverLimit(status int, limit string, max int64, msg string) *Problem {
	p := New(LimitExceeded, status, http.StatusText(status), "limit exceeded: "+limit+" ("+strconv.FormatInt(max, 10)+"): "+msg)
	p.Details = map[string]any{"limit": limit, "max": max, "message": msg}
	return p
}

// TimeoutMsg is a 504 timeout.
func TimeoutMsg(msg string) *Problem {
	p := New(Timeout, http.StatusGatewayTimeout, "Timeout", "timeout")
	p.Details = map[string]any{"message": msg}
	return p
}

// ACP proxy (issue 9): what became of a message the agent's stdin did not
// take in time, and the cap on live servers.
const (
	// AgentInputQueued: the message is in the server's ordered stdin queue
	// and will reach the agent, after everything accepted before it.
	AgentInputQueued Code = "agent_input_queued"
	// AgentInputFull: the stdin queue is full; the message was not written
	// and never will be.
	AgentInputFull Code = "agent_input_full"
)

// InputQueued is the 504 for a message accepted into the agent's stdin
// queue but not yet written when the request timed out.
func InputQueued(msg string) *Problem {
	p := New(AgentInputQueued, http.StatusGatewayTimeout, "Agent Input Queued", msg)
	p.Details = map[string]any{"message": msg}
	return p
}

// InputFull is the 503 for a message refused because the agent's stdin
// queue is full: nothing of it was written.
func InputFull(msg string) *Problem {
	p := New(AgentInputFull, http.StatusServiceUnavailable, "Agent Input Full", msg)
	p.Details = map[string]any{"message": msg}
	return p
}

// TooMany is the 503 too_many_servers for a new ACP server past the cap.
func TooMany(limit int) *Problem {
	msg := fmt.Sprintf("too many ACP servers: %d are running (the limit); delete one or raise --max-acp-servers", limit)
	p := New(TooManyServers, http.StatusServiceUnavailable, "Too Many Servers", msg)
	p.Details = map[string]any{"limit": limit}
	return p
}
