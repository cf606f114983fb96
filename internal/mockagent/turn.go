package mockagent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	acp "github.com/coder/acp-go-sdk"
)

const (
	defaultWriteText = "hello from mock"
	// outputLimit bounds command output and file contents put in a reply.
	outputLimit = 1 << 20
	slowChunks  = 100
	slowDelay   = 100 * time.Millisecond
	floodMax    = 1_000_000
	floodBatch  = 32 * 1024
	// detachedTimeout bounds clean-up calls (terminal/kill, terminal/release)
	// made after a turn was cancelled.
	detachedTimeout = 2 * time.Second
)

var permissionOptions = []acp.PermissionOption{
	{OptionId: "allow", Kind: acp.PermissionOptionKindAllowOnce, Name: "Allow"},
	{OptionId: "allow_always", Kind: acp.PermissionOptionKindAllowAlways, Name: "Always Allow"},
	{OptionId: "reject", Kind: acp.PermissionOptionKindRejectOnce, Name: "Reject"},
}

// turn is one session/prompt in progress.
type turn struct {
	a     *agent
	s     *session
	ctx   context.Context
	caps  acp.ClientCapabilities
	reply strings.Builder // agent text sent so far, for the history
	// summary replaces reply in the history when set (FLOOD).
	summary string
}

func (a *agent) Prompt(ctx context.Context, p acp.PromptRequest) (acp.PromptResponse, error) {
	if err := a.enter(); err != nil {
		return acp.PromptResponse{}, err
	}
	defer a.leave()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(a.stopCtx, cancel)()

	a.mu.Lock()
	s, err := a.lookup(p.SessionId)
	if err != nil {
		a.mu.Unlock()
		return acp.PromptResponse{}, err
	}
	if s.turnCancel != nil {
		s.turnCancel() // a new prompt supersedes the one in flight
	}
	s.turnSeq++
	turnID := s.turnSeq
	s.turnID, s.turnCancel = turnID, cancel
	text := promptText(p.Prompt)
	s.history = append(s.history, message{user: true, text: text})
	caps := a.caps
	a.mu.Unlock()

	t := &turn{a: a, s: s, ctx: ctx, caps: caps}
	err = t.run(text)

	a.mu.Lock()
	if s.turnID == turnID {
		s.turnCancel = nil
	}
	agentText := t.reply.String()
	if t.summary != "" {
		agentText = t.summary
	}
	if agentText != "" {
		s.history = append(s.history, message{text: agentText})
	}
	a.mu.Unlock()

	switch {
	case ctx.Err() != nil:
		return acp.PromptResponse{StopReason: acp.StopReasonCancelled}, nil
	case err != nil:
		return acp.PromptResponse{}, err
	}
	return acp.PromptResponse{StopReason: acp.StopReasonEndTurn}, nil
}

// run plays the turn for the prompt text; a nil error ends it with end_turn.
func (t *turn) run(text string) error {
	kw, rest := findKeyword(text)
	switch kw {
	case KeywordPermission:
		return t.permission()
	case KeywordWriteFile:
		return t.writeFile(rest)
	case KeywordReadFile:
		return t.readFile(rest)
	case KeywordRun:
		return t.runCommand(rest)
	case KeywordSlow:
		return t.slow()
	case KeywordError:
		return &acp.RequestError{Code: codeInternalError, Message: "mock agent error", Data: map[string]any{"keyword": KeywordError}}
	case KeywordExit:
		return t.exit()
	case KeywordFlood:
		return t.flood(rest)
	}
	return t.defaultTurn(text)
}

func (t *turn) update(u acp.SessionUpdate) error {
	return t.a.conn.SessionUpdate(t.ctx, acp.SessionNotification{SessionId: t.s.id, Update: u})
}

// say streams text as agent_message_chunk updates.
func (t *turn) say(text string) error {
	for _, c := range splitChunks(text) {
		if err := t.update(acp.UpdateAgentMessageText(c)); err != nil {
			return err
		}
		t.reply.WriteString(c)
	}
	return nil
}

func (t *turn) nextToolCallID() acp.ToolCallId {
	t.a.mu.Lock()
	defer t.a.mu.Unlock()
	t.s.nextToolCall++
	return acp.ToolCallId(fmt.Sprintf("mock-call-%d", t.s.nextToolCall))
}

func (t *turn) cwd() string {
	t.a.mu.Lock()
	defer t.a.mu.Unlock()
	return t.s.cwd
}

// resolve makes a prompt path absolute against the session's cwd.
func (t *turn) resolve(path string) string {
	if filepath.IsAbs(path) {
		return filepath.Clean(path)
	}
	return filepath.Join(t.cwd(), path)
}

// status sends a tool_call_update with a status and options.
func (t *turn) status(id acp.ToolCallId, st acp.ToolCallStatus, opts ...acp.ToolCallUpdateOpt) error {
	return t.update(acp.UpdateToolCall(id, append([]acp.ToolCallUpdateOpt{acp.WithUpdateStatus(st)}, opts...)...))
}

func textContent(text string) []acp.ToolCallContent {
	return []acp.ToolCallContent{acp.ToolContent(acp.TextBlock(text))}
}

// fail ends a tool call as failed and says msg.
func (t *turn) fail(id acp.ToolCallId, msg string) error {
	if err := t.status(id, acp.ToolCallStatusFailed, acp.WithUpdateContent(textContent(msg))); err != nil {
		return err
	}
	return t.say(msg)
}

// defaultTurn: thought, plan, a tool call and the echoed reply.
func (t *turn) defaultTurn(text string) error {
	if err := t.update(acp.UpdateAgentThoughtText("Planning a deterministic mock reply.")); err != nil {
		return err
	}
	if err := t.update(acp.UpdatePlan(
		acp.PlanEntry{Content: "Read the prompt", Priority: acp.PlanEntryPriorityHigh, Status: acp.PlanEntryStatusCompleted},
		acp.PlanEntry{Content: "Run the mock tool", Priority: acp.PlanEntryPriorityMedium, Status: acp.PlanEntryStatusInProgress},
		acp.PlanEntry{Content: "Write the reply", Priority: acp.PlanEntryPriorityLow, Status: acp.PlanEntryStatusPending},
	)); err != nil {
		return err
	}
	id := t.nextToolCallID()
	if err := t.update(acp.StartToolCall(id, "Mock tool",
		acp.WithStartKind(acp.ToolKindThink),
		acp.WithStartStatus(acp.ToolCallStatusPending),
		acp.WithStartRawInput(map[string]any{"prompt": truncate(text, 200)}),
	)); err != nil {
		return err
	}
	if err := t.status(id, acp.ToolCallStatusInProgress); err != nil {
		return err
	}
	if err := t.status(id, acp.ToolCallStatusCompleted,
		acp.WithUpdateContent(textContent("mock tool output")),
		acp.WithUpdateRawOutput(map[string]any{"ok": true}),
	); err != nil {
		return err
	}
	return t.say("Mock reply: " + text)
}

// permission asks the client for permission for a tool call.
func (t *turn) permission() error {
	id := t.nextToolCallID()
	title := "Mock privileged action"
	input := map[string]any{"action": "mock privileged action"}
	if err := t.update(acp.StartToolCall(id, title,
		acp.WithStartKind(acp.ToolKindExecute),
		acp.WithStartStatus(acp.ToolCallStatusPending),
		acp.WithStartRawInput(input),
	)); err != nil {
		return err
	}
	resp, err := t.a.conn.RequestPermission(t.ctx, acp.RequestPermissionRequest{
		SessionId: t.s.id,
		ToolCall: acp.ToolCallUpdate{
			ToolCallId: id,
			Title:      acp.Ptr(title),
			Kind:       acp.Ptr(acp.ToolKindExecute),
			Status:     acp.Ptr(acp.ToolCallStatusPending),
			RawInput:   input,
		},
		Options: permissionOptions,
	})
	if t.ctx.Err() != nil {
		return t.ctx.Err()
	}
	if err != nil {
		fmt.Fprintf(t.a.log, "mock agent: session/request_permission failed: %v\n", err)
	}
	if sel := resp.Outcome.Selected; err == nil && sel != nil {
		for _, o := range permissionOptions {
			if o.OptionId != sel.OptionId {
				continue
			}
			if o.Kind == acp.PermissionOptionKindAllowOnce || o.Kind == acp.PermissionOptionKindAllowAlways {
				if err := t.status(id, acp.ToolCallStatusInProgress); err != nil {
					return err
				}
				if err := t.status(id, acp.ToolCallStatusCompleted,
					acp.WithUpdateRawOutput(map[string]any{"optionId": string(o.OptionId)})); err != nil {
					return err
				}
				return t.say("permission granted: " + string(o.OptionId))
			}
		}
	}
	return t.fail(id, "permission denied")
}

// writeFile writes a file through fs/write_text_file, or directly when the
// client did not advertise fs.writeTextFile.
func (t *turn) writeFile(rest string) error {
	path, text := cutField(rest)
	if path == "" {
		return t.say("WRITE_FILE needs a path: WRITE_FILE <path> [text...]")
	}
	if text == "" {
		text = defaultWriteText
	}
	content := text + "\n"
	abs := t.resolve(path)
	id := t.nextToolCallID()
	if err := t.update(acp.StartEditToolCall(id, "Write "+abs, abs, content,
		acp.WithStartContent([]acp.ToolCallContent{acp.ToolDiffContent(abs, content)}))); err != nil {
		return err
	}
	if err := t.status(id, acp.ToolCallStatusInProgress); err != nil {
		return err
	}
	var via string
	var err error
	if t.caps.Fs.WriteTextFile {
		via = "via fs/write_text_file"
		_, err = t.a.conn.WriteTextFile(t.ctx, acp.WriteTextFileRequest{SessionId: t.s.id, Path: abs, Content: content})
	} else {
		via = "directly (client did not advertise fs.writeTextFile)"
		if err = os.MkdirAll(filepath.Dir(abs), 0o755); err == nil {
			err = os.WriteFile(abs, []byte(content), 0o644)
		}
	}
	if t.ctx.Err() != nil {
		return t.ctx.Err()
	}
	if err != nil {
		return t.fail(id, fmt.Sprintf("WRITE_FILE %s failed: %v", abs, err))
	}
	if err := t.status(id, acp.ToolCallStatusCompleted,
		acp.WithUpdateRawOutput(map[string]any{"path": abs, "bytes": len(content)})); err != nil {
		return err
	}
	return t.say(fmt.Sprintf("wrote %d bytes to %s %s", len(content), abs, via))
}

// readFile reads a file through fs/read_text_file, or directly when the
// client did not advertise fs.readTextFile.
func (t *turn) readFile(rest string) error {
	path, _ := cutField(rest)
	if path == "" {
		return t.say("READ_FILE needs a path: READ_FILE <path>")
	}
	abs := t.resolve(path)
	id := t.nextToolCallID()
	if err := t.update(acp.StartReadToolCall(id, "Read "+abs, abs)); err != nil {
		return err
	}
	if err := t.status(id, acp.ToolCallStatusInProgress); err != nil {
		return err
	}
	var via, content string
	var err error
	if t.caps.Fs.ReadTextFile {
		via = "via fs/read_text_file"
		var resp acp.ReadTextFileResponse
		resp, err = t.a.conn.ReadTextFile(t.ctx, acp.ReadTextFileRequest{SessionId: t.s.id, Path: abs})
		content = resp.Content
	} else {
		via = "directly (client did not advertise fs.readTextFile)"
		content, err = readLimited(abs)
	}
	if t.ctx.Err() != nil {
		return t.ctx.Err()
	}
	if err != nil {
		return t.fail(id, fmt.Sprintf("READ_FILE %s failed: %v", abs, err))
	}
	content = truncateBytes(content, outputLimit)
	if err := t.status(id, acp.ToolCallStatusCompleted, acp.WithUpdateContent(textContent(content))); err != nil {
		return err
	}
	return t.say(fmt.Sprintf("read %s %s:\n%s", abs, via, content))
}

func readLimited(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, outputLimit))
	return string(b), err
}

func truncateBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// runCommand runs "sh -c <line>" through terminal/*, or locally when the
// client did not advertise terminal.
func (t *turn) runCommand(line string) error {
	if line == "" {
		return t.say("RUN needs a command: RUN <command line>")
	}
	id := t.nextToolCallID()
	if err := t.update(acp.StartToolCall(id, "Run "+line,
		acp.WithStartKind(acp.ToolKindExecute),
		acp.WithStartStatus(acp.ToolCallStatusPending),
		acp.WithStartRawInput(map[string]any{"command": line}),
	)); err != nil {
		return err
	}
	var res cmdResult
	var err error
	if t.caps.Terminal {
		res, err = t.runInTerminal(id, line)
	} else {
		if err := t.status(id, acp.ToolCallStatusInProgress); err != nil {
			return err
		}
		res, err = t.runLocally(line)
	}
	if t.ctx.Err() != nil {
		return t.ctx.Err()
	}
	if err != nil {
		return t.fail(id, fmt.Sprintf("RUN failed: %v", err))
	}
	st := acp.ToolCallStatusCompleted
	if !res.ok() {
		st = acp.ToolCallStatusFailed
	}
	if err := t.status(id, st,
		acp.WithUpdateContent(textContent(res.output)),
		acp.WithUpdateRawOutput(map[string]any{"exitCode": res.exitCode, "signal": res.signal, "output": res.output, "truncated": res.truncated}),
	); err != nil {
		return err
	}
	return t.say(fmt.Sprintf("ran %q %s: %s\n%s", line, res.via, res.describe(), res.output))
}

type cmdResult struct {
	via       string
	exitCode  *int
	signal    *string
	output    string
	truncated bool
}

func (r cmdResult) ok() bool { return r.exitCode != nil && *r.exitCode == 0 && r.signal == nil }

func (r cmdResult) describe() string {
	switch {
	case r.signal != nil:
		return "signal " + *r.signal
	case r.exitCode != nil:
		return "exit code " + strconv.Itoa(*r.exitCode)
	}
	return "exit status unknown"
}

func (t *turn) runInTerminal(id acp.ToolCallId, line string) (cmdResult, error) {
	res := cmdResult{via: "via terminal"}
	cwd := t.cwd()
	req := acp.CreateTerminalRequest{
		SessionId:       t.s.id,
		Command:         "sh",
		Args:            []string{"-c", line},
		OutputByteLimit: acp.Ptr(outputLimit),
	}
	if cwd != "" {
		req.Cwd = acp.Ptr(cwd)
	}
	created, err := t.a.conn.CreateTerminal(t.ctx, req)
	if err != nil {
		return res, fmt.Errorf("terminal/create: %w", err)
	}
	term := created.TerminalId
	released := false
	defer func() {
		if released {
			return
		}
		// Cancelled or failed half-way: stop the command and free the
		// terminal even though the turn's context may have ended.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(t.ctx), detachedTimeout)
		defer cancel()
		if t.ctx.Err() != nil {
			_, _ = t.a.conn.KillTerminal(ctx, acp.KillTerminalRequest{SessionId: t.s.id, TerminalId: term})
		}
		_, _ = t.a.conn.ReleaseTerminal(ctx, acp.ReleaseTerminalRequest{SessionId: t.s.id, TerminalId: term})
	}()
	if err := t.status(id, acp.ToolCallStatusInProgress,
		acp.WithUpdateContent([]acp.ToolCallContent{acp.ToolTerminalRef(term)})); err != nil {
		return res, err
	}
	exit, err := t.a.conn.WaitForTerminalExit(t.ctx, acp.WaitForTerminalExitRequest{SessionId: t.s.id, TerminalId: term})
	if err != nil {
		return res, fmt.Errorf("terminal/wait_for_exit: %w", err)
	}
	res.exitCode, res.signal = exit.ExitCode, exit.Signal
	out, err := t.a.conn.TerminalOutput(t.ctx, acp.TerminalOutputRequest{SessionId: t.s.id, TerminalId: term})
	if err != nil {
		return res, fmt.Errorf("terminal/output: %w", err)
	}
	res.output, res.truncated = out.Output, out.Truncated
	if res.exitCode == nil && res.signal == nil && out.ExitStatus != nil {
		res.exitCode, res.signal = out.ExitStatus.ExitCode, out.ExitStatus.Signal
	}
	released = true
	if _, err := t.a.conn.ReleaseTerminal(t.ctx, acp.ReleaseTerminalRequest{SessionId: t.s.id, TerminalId: term}); err != nil {
		return res, fmt.Errorf("terminal/release: %w", err)
	}
	return res, nil
}

func (t *turn) runLocally(line string) (cmdResult, error) {
	res := cmdResult{via: "locally (client did not advertise terminal)"}
	cmd := exec.CommandContext(t.ctx, "sh", "-c", line)
	if cwd := t.cwd(); cwd != "" {
		if fi, err := os.Stat(cwd); err == nil && fi.IsDir() {
			cmd.Dir = cwd
		}
	}
	buf := &limitedBuffer{limit: outputLimit}
	cmd.Stdout, cmd.Stderr = buf, buf
	cmd.WaitDelay = detachedTimeout
	err := cmd.Run()
	res.output, res.truncated = buf.result()
	var ee *exec.ExitError
	switch {
	case err == nil:
		res.exitCode = acp.Ptr(0)
	case errors.As(err, &ee):
		if code := ee.ExitCode(); code >= 0 {
			res.exitCode = acp.Ptr(code)
		} else {
			res.signal = acp.Ptr(ee.String())
		}
	default:
		return res, err
	}
	return res, nil
}

// limitedBuffer keeps the first limit bytes written to it.
type limitedBuffer struct {
	mu        sync.Mutex
	buf       bytes.Buffer
	limit     int
	truncated bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.limit - b.buf.Len(); room < len(p) {
		b.truncated = true
		b.buf.Write(p[:max(room, 0)])
	} else {
		b.buf.Write(p)
	}
	return len(p), nil
}

func (b *limitedBuffer) result() (string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String(), b.truncated
}

// slow streams slowChunks chunks slowDelay apart.
func (t *turn) slow() error {
	timer := time.NewTimer(slowDelay)
	timer.Stop()
	defer timer.Stop()
	for i := 1; i <= slowChunks; i++ {
		if i > 1 {
			timer.Reset(slowDelay)
			select {
			case <-timer.C:
			case <-t.ctx.Done():
				return t.ctx.Err()
			}
		}
		c := fmt.Sprintf("slow %d/%d\n", i, slowChunks)
		if err := t.update(acp.UpdateAgentMessageText(c)); err != nil {
			return err
		}
		t.reply.WriteString(c)
	}
	return nil
}

// exit sends one chunk, asks Run to exit and never answers the prompt.
func (t *turn) exit() error {
	if err := t.update(acp.UpdateAgentMessageText("mock agent exiting")); err != nil {
		return err
	}
	t.reply.WriteString("mock agent exiting")
	fmt.Fprintln(t.a.log, "mock agent exiting as requested")
	select {
	case t.a.exitReq <- ExitCode:
	default:
	}
	// Wait, whatever happens to the turn's context, until Run has closed the
	// output: the prompt is never answered.
	<-t.a.released
	return errShuttingDown
}

// flood emits n chunks "flood 1" … "flood n" as fast as possible. The lines
// are encoded here and written in batches, bypassing the SDK's per-message
// encoding, so that throughput tests measure the consumer.
func (t *turn) flood(rest string) error {
	arg, _ := cutField(rest)
	n := 100
	if v, err := strconv.Atoi(arg); err == nil && v >= 0 {
		n = min(v, floodMax)
	}
	sid, err := json.Marshal(string(t.s.id))
	if err != nil {
		return err
	}
	prefix := `{"jsonrpc":"2.0","method":"` + acp.ClientMethodSessionUpdate + `","params":{"sessionId":` + string(sid) +
		`,"update":{"content":{"text":"flood `
	const suffix = `","type":"text"},"sessionUpdate":"agent_message_chunk"}}}` + "\n"
	buf := make([]byte, 0, floodBatch+256)
	for i := 1; i <= n; i++ {
		buf = append(buf, prefix...)
		buf = strconv.AppendInt(buf, int64(i), 10)
		buf = append(buf, suffix...)
		if len(buf) >= floodBatch || i == n {
			if err := t.ctx.Err(); err != nil {
				return err
			}
			if err := t.a.out.writeRaw(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
	}
	t.summary = fmt.Sprintf("flood: %d chunks", n)
	return nil
}
