package mockagent_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/internal/testutil/syncbuf"

	acp "github.com/coder/acp-go-sdk"
	"go.uber.org/goleak"

	"github.com/sandbox-agent-go/sandbox-agent/internal/mockagent"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitTimeout guards every wait on the agent so a broken test fails instead
// of hanging. Nothing waits for it to elapse on success.
const waitTimeout = 10 * time.Second

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitTimeout):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

var discardLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

// syncBuffer: see internal/testutil/syncbuf.
type syncBuffer = syncbuf.Buffer

// testClient is an acp.Client that records what the agent sends and answers
// permission, fs and terminal requests.
type testClient struct {
	// permission is the optionId to select, or "cancelled".
	permission string

	mu       sync.Mutex
	updates  []acp.SessionNotification
	calls    []string
	perms    []acp.RequestPermissionRequest
	writes   []acp.WriteTextFileRequest
	terms    map[string]*testTerminal
	created  []acp.CreateTerminalRequest
	nextTerm int

	chunkOnce sync.Once
	chunked   chan struct{} // closed at the first agent_message_chunk
}

func newTestClient() *testClient {
	return &testClient{permission: "allow", terms: map[string]*testTerminal{}, chunked: make(chan struct{})}
}

var _ acp.Client = (*testClient)(nil)

func (c *testClient) record(method string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, method)
}

func (c *testClient) SessionUpdate(ctx context.Context, n acp.SessionNotification) error {
	c.mu.Lock()
	c.updates = append(c.updates, n)
	c.mu.Unlock()
	if n.Update.AgentMessageChunk != nil {
		c.chunkOnce.Do(func() { close(c.chunked) })
	}
	return nil
}

// takeUpdates returns the updates received so far and forgets them.
func (c *testClient) takeUpdates() []acp.SessionNotification {
	c.mu.Lock()
	defer c.mu.Unlock()
	u := c.updates
	c.updates = nil
	return u
}

func (c *testClient) takeCalls() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.calls
	c.calls = nil
	return v
}

func (c *testClient) RequestPermission(ctx context.Context, p acp.RequestPermissionRequest) (acp.RequestPermissionResponse, error) {
	c.record(acp.ClientMethodSessionRequestPermission)
	c.mu.Lock()
	c.perms = append(c.perms, p)
	c.mu.Unlock()
	if c.permission == "cancelled" {
		return acp.RequestPermissionResponse{Outcome: acp.RequestPermissionOutcome{
			Cancelled: &acp.RequestPermissionOutcomeCancelled{Outcome: "cancelled"},
		}}, nil
	}
	return acp.RequestPermissionResponse{Outcome: acp.RequestPermissionOutcome{
		Selected: &acp.RequestPermissionOutcomeSelected{Outcome: "selected", OptionId: acp.PermissionOptionId(c.permission)},
	}}, nil
}

func (c *testClient) ReadTextFile(ctx context.Context, p acp.ReadTextFileRequest) (acp.ReadTextFileResponse, error) {
	c.record(acp.ClientMethodFsReadTextFile)
	b, err := os.ReadFile(p.Path)
	if err != nil {
		return acp.ReadTextFileResponse{}, acp.NewInternalError(map[string]any{"error": err.Error()})
	}
	return acp.ReadTextFileResponse{Content: string(b)}, nil
}

func (c *testClient) WriteTextFile(ctx context.Context, p acp.WriteTextFileRequest) (acp.WriteTextFileResponse, error) {
	c.record(acp.ClientMethodFsWriteTextFile)
	c.mu.Lock()
	c.writes = append(c.writes, p)
	c.mu.Unlock()
	if err := os.WriteFile(p.Path, []byte(p.Content), 0o644); err != nil {
		return acp.WriteTextFileResponse{}, acp.NewInternalError(map[string]any{"error": err.Error()})
	}
	return acp.WriteTextFileResponse{}, nil
}

type testTerminal struct {
	cmd  *exec.Cmd
	out  syncBuffer
	done chan struct{}
}

func (c *testClient) terminal(id string) (*testTerminal, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.terms[id]
	if !ok {
		return nil, acp.NewInvalidParams(map[string]any{"terminalId": id})
	}
	return t, nil
}

func (c *testClient) CreateTerminal(ctx context.Context, p acp.CreateTerminalRequest) (acp.CreateTerminalResponse, error) {
	c.record(acp.ClientMethodTerminalCreate)
	term := &testTerminal{done: make(chan struct{})}
	term.cmd = exec.Command(p.Command, p.Args...)
	if p.Cwd != nil {
		term.cmd.Dir = *p.Cwd
	}
	term.cmd.Stdout, term.cmd.Stderr = &term.out, &term.out
	if err := term.cmd.Start(); err != nil {
		return acp.CreateTerminalResponse{}, acp.NewInternalError(map[string]any{"error": err.Error()})
	}
	go func() {
		_ = term.cmd.Wait()
		close(term.done)
	}()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nextTerm++
	id := fmt.Sprintf("term-%d", c.nextTerm)
	c.terms[id] = term
	c.created = append(c.created, p)
	return acp.CreateTerminalResponse{TerminalId: id}, nil
}

func exitStatus(t *testTerminal) *acp.TerminalExitStatus {
	select {
	case <-t.done:
		return &acp.TerminalExitStatus{ExitCode: acp.Ptr(t.cmd.ProcessState.ExitCode())}
	default:
		return nil
	}
}

func (c *testClient) WaitForTerminalExit(ctx context.Context, p acp.WaitForTerminalExitRequest) (acp.WaitForTerminalExitResponse, error) {
	c.record(acp.ClientMethodTerminalWaitForExit)
	t, err := c.terminal(p.TerminalId)
	if err != nil {
		return acp.WaitForTerminalExitResponse{}, err
	}
	select {
	case <-t.done:
		return acp.WaitForTerminalExitResponse{ExitCode: acp.Ptr(t.cmd.ProcessState.ExitCode())}, nil
	case <-ctx.Done():
		return acp.WaitForTerminalExitResponse{}, ctx.Err()
	}
}

func (c *testClient) TerminalOutput(ctx context.Context, p acp.TerminalOutputRequest) (acp.TerminalOutputResponse, error) {
	c.record(acp.ClientMethodTerminalOutput)
	t, err := c.terminal(p.TerminalId)
	if err != nil {
		return acp.TerminalOutputResponse{}, err
	}
	return acp.TerminalOutputResponse{Output: t.out.String(), ExitStatus: exitStatus(t)}, nil
}

func (c *testClient) KillTerminal(ctx context.Context, p acp.KillTerminalRequest) (acp.KillTerminalResponse, error) {
	c.record(acp.ClientMethodTerminalKill)
	t, err := c.terminal(p.TerminalId)
	if err != nil {
		return acp.KillTerminalResponse{}, err
	}
	_ = t.cmd.Process.Kill()
	return acp.KillTerminalResponse{}, nil
}

func (c *testClient) ReleaseTerminal(ctx context.Context, p acp.ReleaseTerminalRequest) (acp.ReleaseTerminalResponse, error) {
	c.record(acp.ClientMethodTerminalRelease)
	t, err := c.terminal(p.TerminalId)
	if err != nil {
		return acp.ReleaseTerminalResponse{}, err
	}
	_ = t.cmd.Process.Kill()
	<-t.done
	c.mu.Lock()
	delete(c.terms, p.TerminalId)
	c.mu.Unlock()
	return acp.ReleaseTerminalResponse{}, nil
}

// harness runs the agent over pipes with an SDK client connection.
type harness struct {
	t      *testing.T
	conn   *acp.ClientSideConnection
	client *testClient
	errOut *syncBuffer
	cancel context.CancelFunc
	result chan error
	inW    *io.PipeWriter // client -> agent
	outW   *io.PipeWriter // agent -> client
	closed bool
	err    error
}

var allCaps = acp.ClientCapabilities{Fs: acp.FileSystemCapabilities{ReadTextFile: true, WriteTextFile: true}, Terminal: true}

// start runs the agent, initialises it with caps and returns the harness.
// The agent is stopped (stdin EOF) at the end of the test.
func start(t *testing.T, client *testClient, caps acp.ClientCapabilities) *harness {
	t.Helper()
	if client == nil {
		client = newTestClient()
	}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, client: client, errOut: &syncBuffer{}, cancel: cancel, result: make(chan error, 1), inW: inW, outW: outW}
	go func() { h.result <- mockagent.Run(ctx, inR, outW, h.errOut) }()
	h.conn = acp.NewClientSideConnection(client, inW, outR)
	h.conn.SetLogger(discardLogger)
	t.Cleanup(func() { h.stop() })

	resp, err := h.conn.Initialize(context.Background(), acp.InitializeRequest{
		ProtocolVersion:    acp.ProtocolVersionNumber,
		ClientCapabilities: caps,
		ClientInfo:         &acp.Implementation{Name: "mockagent-test", Version: "0"},
	})
	if err != nil {
		t.Fatalf("initialize: %v", err)
	}
	if resp.ProtocolVersion != acp.ProtocolVersionNumber {
		t.Fatalf("protocolVersion = %d", resp.ProtocolVersion)
	}
	return h
}

// stop closes the agent's stdin and returns Run's result.
func (h *harness) stop() error {
	h.t.Helper()
	if h.closed {
		return h.err
	}
	h.closed = true
	_ = h.inW.Close()
	h.err = recv(h.t, h.result, "Run to return")
	_ = h.outW.Close()
	recv(h.t, h.conn.Done(), "client connection to close")
	h.cancel()
	return h.err
}

func (h *harness) newSession(cwd string) acp.NewSessionResponse {
	h.t.Helper()
	if cwd == "" {
		cwd = h.t.TempDir()
	}
	resp, err := h.conn.NewSession(context.Background(), acp.NewSessionRequest{Cwd: cwd, McpServers: []acp.McpServer{}})
	if err != nil {
		h.t.Fatalf("session/new: %v", err)
	}
	return resp
}

func (h *harness) prompt(sid acp.SessionId, text string) (acp.PromptResponse, error) {
	return h.conn.Prompt(context.Background(), acp.PromptRequest{SessionId: sid, Prompt: []acp.ContentBlock{acp.TextBlock(text)}})
}

func (h *harness) mustPrompt(sid acp.SessionId, text string) acp.PromptResponse {
	h.t.Helper()
	resp, err := h.prompt(sid, text)
	if err != nil {
		h.t.Fatalf("prompt %q: %v", text, err)
	}
	return resp
}

// kind names a session update.
func kind(u acp.SessionUpdate) string {
	switch {
	case u.UserMessageChunk != nil:
		return "user_message_chunk"
	case u.AgentMessageChunk != nil:
		return "agent_message_chunk"
	case u.AgentThoughtChunk != nil:
		return "agent_thought_chunk"
	case u.ToolCall != nil:
		return "tool_call"
	case u.ToolCallUpdate != nil:
		return "tool_call_update"
	case u.Plan != nil:
		return "plan"
	case u.CurrentModeUpdate != nil:
		return "current_mode_update"
	case u.ConfigOptionUpdate != nil:
		return "config_option_update"
	}
	return "other"
}

// kinds names updates, adding the status to tool call updates and collapsing
// runs of agent_message_chunk into one "agent_message_chunk*".
func kinds(ns []acp.SessionNotification) []string {
	var out []string
	for _, n := range ns {
		k := kind(n.Update)
		switch {
		case n.Update.ToolCall != nil:
			k += ":" + string(n.Update.ToolCall.Status)
		case n.Update.ToolCallUpdate != nil && n.Update.ToolCallUpdate.Status != nil:
			k += ":" + string(*n.Update.ToolCallUpdate.Status)
		case k == "agent_message_chunk":
			k += "*"
			if len(out) > 0 && out[len(out)-1] == k {
				continue
			}
		}
		out = append(out, k)
	}
	return out
}

// agentText concatenates the agent_message_chunk texts and counts the chunks.
func agentText(ns []acp.SessionNotification) (string, int) {
	var b strings.Builder
	n := 0
	for _, u := range ns {
		if c := u.Update.AgentMessageChunk; c != nil && c.Content.Text != nil {
			b.WriteString(c.Content.Text.Text)
			n++
		}
	}
	return b.String(), n
}

func requestCode(t *testing.T, err error) int {
	t.Helper()
	var re *acp.RequestError
	if !errors.As(err, &re) {
		t.Fatalf("error %v (%T) is not a *acp.RequestError", err, err)
	}
	return re.Code
}

// rawHarness runs the agent and talks raw NDJSON to it.
type rawHarness struct {
	t      *testing.T
	inW    *io.PipeWriter
	outW   *io.PipeWriter
	lines  chan []byte
	errOut *syncBuffer
	result chan error
	cancel context.CancelFunc
}

func startRaw(t *testing.T) *rawHarness {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	h := &rawHarness{t: t, inW: inW, outW: outW, lines: make(chan []byte, 1024), errOut: &syncBuffer{}, result: make(chan error, 1), cancel: cancel}
	go func() { h.result <- mockagent.Run(ctx, inR, outW, h.errOut) }()
	go func() {
		defer close(h.lines)
		sc := bufio.NewScanner(outR)
		sc.Buffer(make([]byte, 64*1024), 16<<20)
		for sc.Scan() {
			h.lines <- bytes.Clone(sc.Bytes())
		}
	}()
	t.Cleanup(func() {
		_ = inW.Close()
		select {
		case <-h.result:
		case <-time.After(waitTimeout):
			t.Error("Run did not return")
		}
		_ = outW.Close()
		for range h.lines {
			// drain until the reader ends
		}
		cancel()
	})
	return h
}

func (h *rawHarness) send(line string) {
	h.t.Helper()
	if _, err := io.WriteString(h.inW, line+"\n"); err != nil {
		h.t.Fatalf("write: %v", err)
	}
}

// nextLine returns the next line the agent wrote.
func (h *rawHarness) nextLine() []byte {
	h.t.Helper()
	select {
	case line, ok := <-h.lines:
		if !ok {
			h.t.Fatal("agent output closed")
		}
		return line
	case <-time.After(waitTimeout):
		h.t.Fatal("timed out waiting for output")
		return nil
	}
}

// next returns the next message the agent wrote, decoded.
func (h *rawHarness) next() map[string]any {
	h.t.Helper()
	line := h.nextLine()
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		h.t.Fatalf("invalid JSON line %q: %v", line, err)
	}
	return m
}
