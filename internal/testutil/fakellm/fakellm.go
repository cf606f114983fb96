// Package fakellm is a scripted fake LLM for offline tests of real coding
// agents. One httptest server on 127.0.0.1 speaks three wire APIs:
//
//   - Anthropic Messages: POST /v1/messages (streaming and not) and
//     POST /v1/messages/count_tokens (Claude Code, OpenCode),
//   - OpenAI Responses: POST /v1/responses (streaming; Codex),
//   - OpenAI Chat Completions: POST /v1/chat/completions (streaming; pi).
//
// The reply is scripted by the last user message:
//
//   - WRITE_FILE <path> [content…]: call the write tool the request offers
//     (mcp__acp__Write, Write, write, write_file, …) or, failing that, the
//     shell tool with a printf redirect;
//   - RUN_CMD <command>: call the shell tool (mcp__acp__Bash, Bash, bash,
//     exec_command, shell, …);
//   - SLOW: stream 40 words, one every 250 ms (cancel tests; SetSlow);
//   - a tool result: reply "Tool finished: <result>";
//   - anything else: "Hello from the fake model!".
//
// Argument names follow the tool's JSON schema (file_path/filePath/path,
// content, command/cmd — an argv array when the schema says array — plus
// timeout and description when offered). Every request is recorded.
package fakellm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"time"
)

// DefaultText is the reply to a prompt without a keyword.
const DefaultText = "Hello from the fake model!"

// Request is one recorded call.
type Request struct {
	// API is "anthropic", "count_tokens", "responses", "chat" or "other".
	API    string
	Method string
	Path   string
	Model  string
	Stream bool
	// Tools are the names of the tools the request offered.
	Tools []string
	// LastUserText is the text of the last user message.
	LastUserText string
	// ToolResult is set when the last message was a tool result.
	ToolResult    string
	HasToolResult bool
	// Reply says what was scripted: "text", "slow" or "tool:<name>".
	Reply string
	Body  json.RawMessage
}

// Server is a running fake LLM.
type Server struct {
	// URL is the base URL (http://127.0.0.1:port), without /v1.
	URL  string
	srv  *httptest.Server
	mu   sync.Mutex
	reqs []Request
	seq  int
	// slowWords and slowDelay shape the SLOW reply (40 words, 250 ms).
	slowWords int
	slowDelay time.Duration
}

// SetSlow changes the SLOW reply: n words, one every d.
func (s *Server) SetSlow(n int, d time.Duration) {
	s.mu.Lock()
	s.slowWords, s.slowDelay = n, d
	s.mu.Unlock()
}

func (s *Server) slow() (int, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.slowWords, s.slowDelay
}

// New starts a fake LLM on 127.0.0.1. Close it when done.
func New() *Server {
	s := &Server{slowWords: 40, slowDelay: 250 * time.Millisecond}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
}

// Close stops the server (open streams are cut).
func (s *Server) Close() {
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// OpenAIBaseURL is URL + "/v1", the base OpenAI-style clients want.
func (s *Server) OpenAIBaseURL() string { return s.URL + "/v1" }

// Requests returns a copy of every recorded request, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reqs)
}

// Reset forgets the recorded requests.
func (s *Server) Reset() {
	s.mu.Lock()
	s.reqs = nil
	s.mu.Unlock()
}

// answer scripts the reply to a request whose wire format has been
// decoded into rec, then records the request with that reply.
func (s *Server) answer(rec Request, toolResult *string, tools []tool) plan {
	p, reply := s.script(rec.LastUserText, toolResult, tools)
	if toolResult != nil {
		rec.ToolResult, rec.HasToolResult = *toolResult, true
	}
	rec.Reply = reply
	s.record(rec)
	return p
}

func (s *Server) record(r Request) {
	s.mu.Lock()
	s.reqs = append(s.reqs, r)
	s.mu.Unlock()
}

func (s *Server) nextID(prefix string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	return fmt.Sprintf("%s_fake_%d", prefix, s.seq)
}

// tool is a tool offered by the request, with its parameter schema.
type tool struct {
	Name   string
	Schema map[string]any
}

// plan is the scripted answer.
type plan struct {
	Text     string   // text reply (when Tool == "")
	Words    []string // slow reply
	Tool     string
	ToolArgs map[string]any
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	rec := Request{Method: r.Method, Path: r.URL.Path, API: "other", Body: body}
	path := strings.TrimSuffix(r.URL.Path, "/")
	switch {
	case r.Method == http.MethodPost && strings.HasSuffix(path, "/messages/count_tokens"):
		rec.API = "count_tokens"
		s.record(rec)
		writeJSON(w, map[string]any{"input_tokens": max(1, len(body)/4)})
	case r.Method == http.MethodPost && strings.HasSuffix(path, "/messages"):
		rec.API = "anthropic"
		s.anthropic(w, r, body, rec)
	case r.Method == http.MethodPost && strings.HasSuffix(path, "/responses"):
		rec.API = "responses"
		s.responses(w, r, body, rec)
	case r.Method == http.MethodPost && strings.HasSuffix(path, "/chat/completions"):
		rec.API = "chat"
		s.chat(w, r, body, rec)
	case r.Method == http.MethodGet && strings.HasSuffix(path, "/models"):
		s.record(rec)
		writeJSON(w, map[string]any{"object": "list", "data": []any{
			map[string]any{"id": "fake-model", "object": "model", "owned_by": "fakellm"},
		}})
	default:
		s.record(rec)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"error":{"type":"not_found_error","message":"fakellm: no route for %s %s"}}`, r.Method, r.URL.Path)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(marshal(v))
}

// script decides the reply from the last user text / tool result.
func (s *Server) script(lastUser string, toolResult *string, tools []tool) (plan, string) {
	if toolResult != nil {
		res := strings.TrimSpace(*toolResult)
		if len(res) > 500 {
			res = res[:500]
		}
		return plan{Text: "Tool finished: " + res}, "text"
	}
	if kw, arg, ok := keyword(lastUser, "WRITE_FILE"); ok && kw {
		path, content, _ := strings.Cut(strings.TrimSpace(arg), " ")
		if content = strings.TrimSpace(content); content == "" {
			content = "written by the fake model"
		}
		if t, ok := pick(tools, "mcp__acp__Write", "Write", "write", "write_file", "create_file"); ok {
			return plan{Tool: t.Name, ToolArgs: writeArgs(t, path, content)}, "tool:" + t.Name
		}
		if t, ok := pick(tools, shellTools...); ok {
			cmd := fmt.Sprintf("printf '%%s' '%s' > '%s'", content, path)
			return plan{Tool: t.Name, ToolArgs: shellArgs(t, cmd)}, "tool:" + t.Name
		}
	}
	if kw, arg, ok := keyword(lastUser, "RUN_CMD"); ok && kw {
		if t, ok := pick(tools, shellTools...); ok {
			return plan{Tool: t.Name, ToolArgs: shellArgs(t, strings.TrimSpace(arg))}, "tool:" + t.Name
		}
	}
	if kw, _, ok := keyword(lastUser, "SLOW"); ok && kw {
		n, _ := s.slow()
		words := make([]string, n)
		for i := range words {
			words[i] = fmt.Sprintf("word%d ", i+1)
		}
		return plan{Words: words}, "slow"
	}
	return plan{Text: DefaultText}, "text"
}

var shellTools = []string{"mcp__acp__Bash", "Bash", "bash", "exec_command", "shell", "run_shell_command", "local_shell"}

// keyword finds kw at the start of a line (or of a word) in text and
// returns the rest of that line.
func keyword(text, kw string) (bool, string, bool) {
	for line := range strings.SplitSeq(text, "\n") {
		if i := strings.Index(line, kw); i >= 0 && (i == 0 || line[i-1] == ' ' || line[i-1] == '>' || line[i-1] == '\t') {
			rest := line[i+len(kw):]
			if rest == "" || rest[0] == ' ' || rest[0] == '\t' {
				return true, rest, true
			}
		}
	}
	return false, "", false
}

func pick(tools []tool, names ...string) (tool, bool) {
	for _, n := range names {
		for _, t := range tools {
			if t.Name == n {
				return t, true
			}
		}
	}
	return tool{}, false
}

func props(t tool) map[string]any {
	p, _ := t.Schema["properties"].(map[string]any)
	return p
}

func firstProp(t tool, names ...string) string {
	p := props(t)
	for _, n := range names {
		if _, ok := p[n]; ok {
			return n
		}
	}
	return names[0]
}

func writeArgs(t tool, path, content string) map[string]any {
	return map[string]any{firstProp(t, "file_path", "filePath", "path"): path, firstProp(t, "content", "contents", "text"): content}
}

func shellArgs(t tool, command string) map[string]any {
	name := firstProp(t, "command", "cmd")
	args := map[string]any{}
	p := props(t)
	if sch, _ := p[name].(map[string]any); sch != nil && sch["type"] == "array" {
		args[name] = []string{"bash", "-lc", command}
	} else {
		args[name] = command
	}
	if _, ok := p["timeout"]; ok {
		args["timeout"] = 60000
	}
	if _, ok := p["description"]; ok {
		args["description"] = "Run a command for the fake model"
	}
	return args
}

// words splits text into streaming deltas (a word and its space each).
func words(text string) []string {
	var out []string
	for len(text) > 0 {
		i := strings.IndexByte(text, ' ')
		if i < 0 {
			out = append(out, text)
			break
		}
		out = append(out, text[:i+1])
		text = text[i+1:]
	}
	return out
}

func (p plan) deltas() []string {
	if p.Words != nil {
		return p.Words
	}
	return words(p.Text)
}

// sse writes server-sent events and flushes each.
type sse struct {
	w http.ResponseWriter
	f http.Flusher
}

func startSSE(w http.ResponseWriter) *sse {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	f, _ := w.(http.Flusher)
	return &sse{w: w, f: f}
}

// marshal is json.Marshal without HTML escaping (shell commands keep '>').
func marshal(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

func (e *sse) event(name string, v any) {
	b := marshal(v)
	if name != "" {
		fmt.Fprintf(e.w, "event: %s\n", name)
	}
	fmt.Fprintf(e.w, "data: %s\n\n", b)
	if e.f != nil {
		e.f.Flush()
	}
}

func (e *sse) raw(s string) {
	fmt.Fprint(e.w, s)
	if e.f != nil {
		e.f.Flush()
	}
}

// pace waits between slow words; false when the client went away.
func (s *Server) pace(ctx context.Context, p plan) bool {
	if p.Words == nil {
		return ctx.Err() == nil
	}
	_, delay := s.slow()
	select {
	case <-ctx.Done():
		return false
	case <-time.After(delay):
		return true
	}
}

func badRequest(w http.ResponseWriter, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	fmt.Fprintf(w, `{"error":{"type":"invalid_request_error","message":%q}}`, "fakellm: "+err.Error())
}

// ClaudeEnv is the environment that points Claude Code (and its ACP
// adapter) at this server, offline, with a fake key.
func (s *Server) ClaudeEnv() []string {
	return []string{
		"ANTHROPIC_BASE_URL=" + s.URL, "ANTHROPIC_API_KEY=sk-ant-fake-key",
		"DISABLE_TELEMETRY=1", "DISABLE_ERROR_REPORTING=1", "DISABLE_AUTOUPDATER=1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
	}
}
