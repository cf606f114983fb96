package sandboxagent

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/sandbox-agent-go/sandbox-agent/internal/sse"
)

// ProcessConfig is the server's process manager configuration.
type ProcessConfig struct {
	MaxConcurrentProcesses  int   `json:"maxConcurrentProcesses"`
	DefaultRunTimeoutMs     int64 `json:"defaultRunTimeoutMs"`
	MaxRunTimeoutMs         int64 `json:"maxRunTimeoutMs"`
	MaxOutputBytes          int64 `json:"maxOutputBytes"`
	MaxLogBytesPerProcess   int64 `json:"maxLogBytesPerProcess"`
	MaxInputBytesPerRequest int64 `json:"maxInputBytesPerRequest"`
}

// GetProcessConfig returns the process configuration.
func (c *Client) GetProcessConfig(ctx context.Context) (ProcessConfig, error) {
	var r ProcessConfig
	err := c.doJSON(ctx, request{method: http.MethodGet, path: "/processes/config"}, &r)
	return r, err
}

// SetProcessConfig replaces the process configuration.
func (c *Client) SetProcessConfig(ctx context.Context, cfg ProcessConfig) (ProcessConfig, error) {
	var r ProcessConfig
	err := c.doJSON(ctx, request{method: http.MethodPost, path: "/processes/config", json: cfg}, &r)
	return r, err
}

// RunProcessRequest runs a command to completion.
type RunProcessRequest struct {
	Command string            `json:"command"`
	Args    []string          `json:"args,omitempty"`
	Cwd     string            `json:"cwd,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
	// Timeout bounds the run; zero selects the server's default. It is
	// sent as timeoutMs, rounded up to a whole millisecond.
	Timeout        time.Duration `json:"-"`
	MaxOutputBytes int64         `json:"maxOutputBytes,omitempty"`
}

// MarshalJSON writes the wire form, with Timeout as timeoutMs.
func (r RunProcessRequest) MarshalJSON() ([]byte, error) {
	type wire RunProcessRequest // without this method
	return json.Marshal(struct {
		wire
		TimeoutMs int64 `json:"timeoutMs,omitempty"`
	}{wire(r), millis(r.Timeout)})
}

// millis converts d to the API's milliseconds, rounding up so that a
// positive duration never becomes 0 ("no wait", "server default").
func millis(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

// RunProcessResponse is the result of RunProcess.
type RunProcessResponse struct {
	ExitCode        *int   `json:"exitCode"`
	TimedOut        bool   `json:"timedOut"`
	Stdout          string `json:"stdout"`
	Stderr          string `json:"stderr"`
	StdoutTruncated bool   `json:"stdoutTruncated"`
	StderrTruncated bool   `json:"stderrTruncated"`
	DurationMs      int64  `json:"durationMs"`
}

// RunProcess runs a command and returns its output.
func (c *Client) RunProcess(ctx context.Context, req RunProcessRequest) (RunProcessResponse, error) {
	var r RunProcessResponse
	err := c.doJSON(ctx, request{method: http.MethodPost, path: "/processes/run", json: req}, &r)
	return r, err
}

// CreateProcessRequest starts a managed process.
type CreateProcessRequest struct {
	Command     string            `json:"command"`
	Args        []string          `json:"args,omitempty"`
	Cwd         string            `json:"cwd,omitempty"`
	Env         map[string]string `json:"env,omitempty"`
	TTY         bool              `json:"tty,omitempty"`
	Interactive bool              `json:"interactive,omitempty"`
}

// ProcessInfo describes a managed process.
type ProcessInfo struct {
	ID          string   `json:"id"`
	Command     string   `json:"command"`
	Args        []string `json:"args"`
	Cwd         string   `json:"cwd,omitempty"`
	TTY         bool     `json:"tty"`
	Interactive bool     `json:"interactive"`
	Owner       string   `json:"owner"`
	Status      string   `json:"status"` // "running" or "exited"
	Pid         *int     `json:"pid,omitempty"`
	ExitCode    *int     `json:"exitCode,omitempty"`
	CreatedAtMs int64    `json:"createdAtMs"`
	ExitedAtMs  *int64   `json:"exitedAtMs,omitempty"`
}

// CreateProcess starts a managed process.
func (c *Client) CreateProcess(ctx context.Context, req CreateProcessRequest) (ProcessInfo, error) {
	var r ProcessInfo
	err := c.doJSON(ctx, request{method: http.MethodPost, path: "/processes", json: req}, &r)
	return r, err
}

// ListProcesses lists managed processes; owner filters when non-empty.
func (c *Client) ListProcesses(ctx context.Context, owner string) ([]ProcessInfo, error) {
	q := url.Values{}
	if owner != "" {
		q.Set("owner", owner)
	}
	var r struct {
		Processes []ProcessInfo `json:"processes"`
	}
	err := c.doJSON(ctx, request{method: http.MethodGet, path: "/processes", query: q}, &r)
	return r.Processes, err
}

func procPath(id string, suffix string) string {
	return "/processes/" + url.PathEscape(id) + suffix
}

// GetProcess returns one process.
func (c *Client) GetProcess(ctx context.Context, id string) (ProcessInfo, error) {
	var r ProcessInfo
	err := c.doJSON(ctx, request{method: http.MethodGet, path: procPath(id, "")}, &r)
	return r, err
}

func waitQuery(wait time.Duration) url.Values {
	q := url.Values{}
	if ms := millis(wait); ms > 0 {
		q.Set("waitMs", strconv.FormatInt(ms, 10))
	}
	return q
}

// StopProcess sends SIGTERM and waits up to wait for the exit (zero: does
// not wait).
func (c *Client) StopProcess(ctx context.Context, id string, wait time.Duration) (ProcessInfo, error) {
	var r ProcessInfo
	err := c.doJSON(ctx, request{method: http.MethodPost, path: procPath(id, "/stop"), query: waitQuery(wait)}, &r)
	return r, err
}

// KillProcess sends SIGKILL and waits up to wait for the exit (zero: does
// not wait).
func (c *Client) KillProcess(ctx context.Context, id string, wait time.Duration) (ProcessInfo, error) {
	var r ProcessInfo
	err := c.doJSON(ctx, request{method: http.MethodPost, path: procPath(id, "/kill"), query: waitQuery(wait)}, &r)
	return r, err
}

// DeleteProcess removes an exited process.
func (c *Client) DeleteProcess(ctx context.Context, id string) error {
	return c.doJSON(ctx, request{method: http.MethodDelete, path: procPath(id, "")}, nil)
}

// ProcessLogEntry is one chunk of process output.
type ProcessLogEntry struct {
	Sequence    uint64 `json:"sequence"`
	Stream      string `json:"stream"` // stdout, stderr, combined, pty
	TimestampMs int64  `json:"timestampMs"`
	Data        string `json:"data"` // base64
	Encoding    string `json:"encoding"`
}

// Bytes decodes Data.
func (e ProcessLogEntry) Bytes() ([]byte, error) { return base64.StdEncoding.DecodeString(e.Data) }

// ProcessLogsQuery filters logs.
type ProcessLogsQuery struct {
	Stream string // "", stdout, stderr, combined, pty
	Tail   *int   // last N entries
	Since  uint64 // entries with sequence > Since
}

func (q ProcessLogsQuery) values() url.Values {
	v := url.Values{}
	if q.Stream != "" {
		v.Set("stream", q.Stream)
	}
	if q.Tail != nil {
		v.Set("tail", strconv.Itoa(*q.Tail))
	}
	if q.Since > 0 {
		v.Set("since", fmt.Sprint(q.Since))
	}
	return v
}

// ProcessLogs is the answer of GetProcessLogs.
type ProcessLogs struct {
	ProcessID string            `json:"processId"`
	Stream    string            `json:"stream"`
	Entries   []ProcessLogEntry `json:"entries"`
}

// GetProcessLogs returns buffered logs.
func (c *Client) GetProcessLogs(ctx context.Context, id string, q ProcessLogsQuery) (ProcessLogs, error) {
	var r ProcessLogs
	err := c.doJSON(ctx, request{method: http.MethodGet, path: procPath(id, "/logs"), query: q.values()}, &r)
	return r, err
}

// FollowProcessLogs streams log entries until the process record is deleted
// (the sequence ends), ctx ends (ends without error) or an error occurs
// (yielded last).
func (c *Client) FollowProcessLogs(ctx context.Context, id string, q ProcessLogsQuery) iter.Seq2[ProcessLogEntry, error] {
	return func(yield func(ProcessLogEntry, error) bool) {
		v := q.values()
		v.Set("follow", "true")
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		resp, err := c.do(ctx, request{method: http.MethodGet, path: procPath(id, "/logs"), query: v, accept: "text/event-stream"})
		if err != nil {
			if ctx.Err() == nil {
				yield(ProcessLogEntry{}, err)
			}
			return
		}
		defer resp.Body.Close()
		r := sse.NewReader(resp.Body)
		for {
			ev, err := r.Next()
			if err != nil {
				if ctx.Err() == nil && !errors.Is(err, io.EOF) {
					yield(ProcessLogEntry{}, err)
				}
				return
			}
			if ev.Event != "log" || strings.TrimSpace(string(ev.Data)) == "" {
				continue
			}
			var e ProcessLogEntry
			if err := json.Unmarshal(ev.Data, &e); err != nil {
				yield(ProcessLogEntry{}, fmt.Errorf("sandboxagent: decode log entry: %w", err))
				return
			}
			if !yield(e, nil) {
				return
			}
		}
	}
}

// SendProcessInput writes data to a process's stdin (or PTY).
func (c *Client) SendProcessInput(ctx context.Context, id string, data []byte) error {
	body := map[string]string{"data": base64.StdEncoding.EncodeToString(data), "encoding": "base64"}
	return c.doJSON(ctx, request{method: http.MethodPost, path: procPath(id, "/input"), json: body}, nil)
}

// ResizeProcessTerminal resizes a tty process's terminal.
func (c *Client) ResizeProcessTerminal(ctx context.Context, id string, cols, rows int) error {
	return c.doJSON(ctx, request{method: http.MethodPost, path: procPath(id, "/terminal/resize"), json: map[string]int{"cols": cols, "rows": rows}}, nil)
}

// ProcessTerminalURL returns the WebSocket URL of a process terminal; the
// client token, if any, is added as access_token.
func (c *Client) ProcessTerminalURL(id string) string {
	u := c.url() + apiPrefix + procPath(id, "/terminal/ws")
	switch {
	case strings.HasPrefix(u, "https://"):
		u = "wss://" + strings.TrimPrefix(u, "https://")
	case strings.HasPrefix(u, "http://"):
		u = "ws://" + strings.TrimPrefix(u, "http://")
	}
	if c.token != "" {
		u += "?access_token=" + url.QueryEscape(c.token)
	}
	return u
}

// TerminalEvent is one message from a terminal: output bytes, or a control
// frame ("ready", "exit", "error").
type TerminalEvent struct {
	Type     string // "data", "ready", "exit", "error"
	Data     []byte // for "data"
	ExitCode *int   // for "exit"
	Message  string // for "error"
}

// Terminal is an interactive session with a tty process over WebSocket.
type Terminal struct {
	conn      *websocket.Conn
	closeOnce sync.Once
}

// ConnectProcessTerminal opens the terminal WebSocket of a tty process.
func (c *Client) ConnectProcessTerminal(ctx context.Context, id string) (*Terminal, error) {
	if err := c.gate.wait(ctx); err != nil {
		return nil, err
	}
	conn, resp, err := websocket.Dial(ctx, c.ProcessTerminalURL(id), &websocket.DialOptions{
		HTTPClient: c.hc, HTTPHeader: c.authHeader(),
	})
	if err != nil {
		if resp != nil && resp.StatusCode >= 300 {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			return nil, newError(resp.StatusCode, b)
		}
		return nil, fmt.Errorf("sandboxagent: terminal websocket: %w", err)
	}
	conn.SetReadLimit(16 << 20)
	return &Terminal{conn: conn}, nil
}

// Write sends input bytes.
func (t *Terminal) Write(ctx context.Context, p []byte) error {
	return t.sendJSON(ctx, map[string]string{"type": "input", "data": base64.StdEncoding.EncodeToString(p), "encoding": "base64"})
}

// Resize changes the terminal size.
func (t *Terminal) Resize(ctx context.Context, cols, rows int) error {
	return t.sendJSON(ctx, map[string]any{"type": "resize", "cols": cols, "rows": rows})
}

func (t *Terminal) sendJSON(ctx context.Context, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return t.conn.Write(ctx, websocket.MessageText, b)
}

// Read returns the next event; io.EOF after the socket closed normally.
func (t *Terminal) Read(ctx context.Context) (TerminalEvent, error) {
	typ, b, err := t.conn.Read(ctx)
	if err != nil {
		s := websocket.CloseStatus(err)
		if s == websocket.StatusNormalClosure || s == websocket.StatusNoStatusRcvd {
			return TerminalEvent{}, io.EOF
		}
		return TerminalEvent{}, err
	}
	if typ == websocket.MessageBinary {
		return TerminalEvent{Type: "data", Data: b}, nil
	}
	var f struct {
		Type     string `json:"type"`
		ExitCode *int   `json:"exitCode"`
		Message  string `json:"message"`
	}
	if json.Unmarshal(b, &f) != nil || (f.Type != "ready" && f.Type != "exit" && f.Type != "error") {
		return TerminalEvent{Type: "error", Message: "received invalid terminal control frame"}, nil
	}
	return TerminalEvent{Type: f.Type, ExitCode: f.ExitCode, Message: f.Message}, nil
}

// Events iterates over terminal events until the socket closes or ctx
// ends; a read error other than a normal close is yielded last.
func (t *Terminal) Events(ctx context.Context) iter.Seq2[TerminalEvent, error] {
	return func(yield func(TerminalEvent, error) bool) {
		for {
			ev, err := t.Read(ctx)
			if err != nil {
				if !errors.Is(err, io.EOF) && ctx.Err() == nil {
					yield(TerminalEvent{}, err)
				}
				return
			}
			if !yield(ev, nil) {
				return
			}
		}
	}
}

// Close sends a close frame request and closes the socket.
func (t *Terminal) Close() error {
	var err error
	t.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = t.sendJSON(ctx, map[string]string{"type": "close"})
		err = t.conn.Close(websocket.StatusNormalClosure, "")
	})
	return err
}
