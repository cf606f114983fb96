package mockagent

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
	"sync"
	"sync/atomic"
	"time"

	acp "github.com/coder/acp-go-sdk"
)

// Version is the version the mock agent reports in agentInfo, and the version
// the server shows for the built-in agent.
const Version = "builtin"

// AgentName is the agentInfo name the mock agent reports in initialize.
const AgentName = "sandbox-agent-mock"

// ExitCode is the exit code requested by the EXIT keyword.
const ExitCode = 3

// ExitError is returned by [Run] when a prompt asked the agent to exit
// (keyword EXIT). The caller should exit the process with Code.
type ExitError struct{ Code int }

func (e *ExitError) Error() string {
	return fmt.Sprintf("mock agent: exit requested (code %d)", e.Code)
}

// ErrConnectionClosed is returned by [Run] when the ACP connection gave up on
// its input before in reached EOF (for example a line longer than the SDK's
// 10 MiB limit).
var ErrConnectionClosed = errors.New("mock agent: ACP connection closed")

const (
	// responseWait bounds how long Run waits, after in reached EOF, for the
	// responses to requests it has already read.
	responseWait = 5 * time.Second
	// exitFlushWait bounds how long Run waits, on EXIT, for the answers to the
	// requests already handled.
	exitFlushWait = time.Second
	// readerWait bounds how long Run waits for an interrupted read of in.
	readerWait = 2 * time.Second
)

var errShuttingDown = errors.New("mock agent is shutting down")

// Run serves ACP on in/out until in reaches EOF or ctx ends. Diagnostics go to
// errOut.
//
// Run returns nil when in reached EOF (the read error if reading in failed),
// ctx.Err() when ctx ended first, and an *[ExitError] when a prompt contained
// the EXIT keyword.
//
// When in reaches EOF or ctx ends, the prompts in flight are cancelled (they
// answer stopReason "cancelled", as real agents do when their stdin closes)
// and Run returns once every request read so far has been answered (waiting
// at most 5 s). When EXIT is requested, Run writes the answers of the
// requests already handled (waiting at most 1 s), then writes nothing more and
// returns; the EXIT prompt and other prompts in flight are never answered.
//
// If in has not reached EOF when Run returns, a pending read of in is
// interrupted by setting a read deadline or closing in, when in supports
// either. A write to out in progress is always waited for.
//
// No goroutine started by Run or by the ACP connection it creates outlives it,
// except a read of in that could not be interrupted (a blocking stdin), which
// ends with the process.
func Run(ctx context.Context, in io.Reader, out io.Writer, errOut io.Writer) error {
	if errOut == nil {
		errOut = io.Discard
	}
	logw := &syncWriter{w: errOut}
	ow := newOutput(out)
	a := newAgent(ow, logw)

	pr, pw := io.Pipe()
	conn := acp.NewAgentSideConnection(a, ow, pr)
	conn.SetLogger(slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelWarn})))
	a.conn = conn

	// The pump starts only after a.conn is set, so no request can reach the
	// agent before it is fully built.
	ip := &inputPump{src: in, dst: pw, done: make(chan struct{})}
	go ip.run()

	var result error
	graceful, exitCode := false, -1
	select {
	case <-ip.done:
		// in reached EOF (or failed). The SDK has not seen EOF yet, so it can
		// still answer what it has read.
		result, graceful = ip.err, true
	case <-ctx.Done():
		result, graceful = ctx.Err(), true
	case exitCode = <-a.exitReq:
	case <-conn.Done():
		result = ErrConnectionClosed
	}
	if graceful {
		// Cancel the prompts in flight and let every request read so far be
		// answered, unless a prompt asks to exit meanwhile.
		a.stop()
		n := ip.requests.Load()
		code, ok := a.waitFor(func() bool { return ow.responseCount() >= n }, responseWait, a.exitReq)
		if code >= 0 {
			exitCode = code
		} else if !ok {
			fmt.Fprintf(logw, "mock agent: gave up waiting for %d request(s) to be answered\n", n-ow.responseCount())
		}
	}
	if exitCode >= 0 {
		result = &ExitError{Code: exitCode}
		// Flush: answer the requests whose handling is over (their answers
		// are written right after their handlers return); requests still in
		// progress, the EXIT prompt among them, stay unanswered.
		a.waitFor(func() bool {
			return ow.responseCount()+a.calls.requests.Load() >= ip.requests.Load()
		}, exitFlushWait, nil)
	}
	ow.close()
	a.stop()
	close(a.released)

	// Shut the SDK down: its reader sees the closed pipe, its connection
	// context ends and with it every in-flight request context.
	pr.CloseWithError(errShuttingDown)
	<-conn.Done()
	a.calls.closeAndWait()
	ip.interrupt(logw)
	return result
}

// inputPump copies in to the SDK's reader line by line, counting the requests
// (messages with an id and a method) so that Run can wait for their answers.
type inputPump struct {
	src      io.Reader
	dst      *io.PipeWriter
	requests atomic.Int64
	err      error // set before done is closed
	done     chan struct{}
}

func (p *inputPump) run() {
	defer close(p.done)
	r := bufio.NewReaderSize(p.src, 64*1024)
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 {
			if line[len(line)-1] != '\n' {
				// A final line without newline: terminate it so the SDK handles
				// it now rather than when its pipe closes.
				line = append(line, '\n')
			}
			if isRequest(line) {
				p.requests.Add(1)
			}
			if _, werr := p.dst.Write(line); werr != nil {
				return // the SDK side is closed; Run is shutting down
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				p.err = err
			}
			return
		}
	}
}

// interrupt makes a pending read of src return, if src allows it, and waits
// for the pump to finish.
func (p *inputPump) interrupt(logw io.Writer) {
	select {
	case <-p.done:
		return
	default:
	}
	interruptible := false
	if d, ok := p.src.(interface{ SetReadDeadline(time.Time) error }); ok && d.SetReadDeadline(time.Now()) == nil {
		interruptible = true
	}
	if c, ok := p.src.(io.Closer); ok {
		_ = c.Close()
		// Closing a blocking *os.File (a plain stdin) does not interrupt a
		// read in progress; such a read ends with the process.
		if _, isFile := p.src.(*os.File); !isFile {
			interruptible = true
		}
	}
	if !interruptible {
		return
	}
	t := time.NewTimer(readerWait)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		fmt.Fprintln(logw, "mock agent: input reader did not stop; abandoning it")
	}
}

// wireMessage has the shape the SDK decodes every line into, so that a line
// the SDK cannot decode is not counted either.
type wireMessage struct {
	JSONRPC string            `json:"jsonrpc"`
	ID      *json.RawMessage  `json:"id,omitempty"`
	Method  string            `json:"method,omitempty"`
	Params  json.RawMessage   `json:"params,omitempty"`
	Result  json.RawMessage   `json:"result,omitempty"`
	Error   *acp.RequestError `json:"error,omitempty"`
}

// isRequest reports whether an inbound line is a request the SDK will answer.
func isRequest(line []byte) bool {
	if len(bytes.TrimSpace(line)) == 0 {
		return false
	}
	var m wireMessage
	if json.Unmarshal(line, &m) != nil {
		return false
	}
	return m.ID != nil && m.Method != ""
}

// responsePrefix starts every message the SDK writes that carries an id: our
// answers and our own requests to the client. Notifications start with
// "method" instead.
var responsePrefix = []byte(`{"jsonrpc":"2.0","id":`)

// isResponse reports whether an outbound line (as written by the SDK) is a
// response.
func isResponse(p []byte) bool {
	if !bytes.HasPrefix(p, responsePrefix) {
		return false
	}
	var m struct {
		Method string `json:"method"`
	}
	if json.Unmarshal(p, &m) != nil {
		return false
	}
	return m.Method == ""
}

// output serialises writes to out, counts the responses written and can be
// closed so that nothing more reaches out.
type output struct {
	mu        sync.Mutex
	w         io.Writer
	closed    bool
	responses int64
	changed   chan struct{} // signalled after each response
}

var errOutputClosed = errors.New("mock agent: output closed")

func newOutput(w io.Writer) *output {
	return &output{w: w, changed: make(chan struct{}, 1)}
}

// Write writes one message (the SDK writes each message with one call).
func (o *output) Write(p []byte) (int, error) {
	resp := isResponse(p)
	o.mu.Lock()
	defer o.mu.Unlock()
	if resp {
		o.responses++
		signal(o.changed)
	}
	if o.closed {
		return 0, errOutputClosed
	}
	return o.writeLocked(p)
}

// writeRaw writes pre-encoded notification lines, bypassing response
// accounting.
func (o *output) writeRaw(p []byte) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return errOutputClosed
	}
	_, err := o.writeLocked(p)
	return err
}

func (o *output) writeLocked(p []byte) (int, error) {
	n, err := o.w.Write(p)
	if err == nil {
		if f, ok := o.w.(interface{ Flush() error }); ok {
			err = f.Flush()
		}
	}
	return n, err
}

func (o *output) close() {
	o.mu.Lock()
	o.closed = true
	o.mu.Unlock()
}

func (o *output) responseCount() int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.responses
}

// syncWriter serialises writes to the diagnostics writer.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// signal does a non-blocking send on a wake-up channel.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// waitFor waits until cond holds, the timeout passes or exit (when not nil)
// delivers an exit code. It returns the exit code (or -1) and whether cond
// held. cond is checked again whenever a response is written or a request
// handler starts.
func (a *agent) waitFor(cond func() bool, timeout time.Duration, exit <-chan int) (exitCode int, ok bool) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		if cond() {
			return -1, true
		}
		select {
		case <-a.calls.changed:
		case code := <-exit:
			return code, false
		case <-t.C:
			return -1, cond()
		}
	}
}

// callTracker counts agent method calls in progress so that Run can wait for
// them, and refuses new calls once closed.
type callTracker struct {
	mu       sync.Mutex
	wg       sync.WaitGroup
	closed   bool
	requests atomic.Int64  // request handlers in progress
	changed  chan struct{} // signalled when a request handler starts
}

func (t *callTracker) enter(request bool) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.wg.Add(1)
	if request {
		t.requests.Add(1)
		signal(t.changed)
	}
	return true
}

func (t *callTracker) leave(request bool) {
	if request {
		t.requests.Add(-1)
	}
	t.wg.Done()
}

func (t *callTracker) closeAndWait() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.wg.Wait()
}

// ServeIfChild runs the mock agent on stdio and exits when the process was
// started as `<binary> mock-agent-process`. Test binaries call it first in
// TestMain so the mock launcher can run them in place of sandbox-agent.
func ServeIfChild() {
	if len(os.Args) < 2 || os.Args[1] != "mock-agent-process" {
		return
	}
	err := Run(context.Background(), os.Stdin, os.Stdout, os.Stderr)
	var ee *ExitError
	if errors.As(err, &ee) {
		os.Exit(ee.Code)
	}
	os.Exit(0)
}
