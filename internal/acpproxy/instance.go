package acpproxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/acp"
	"github.com/sandbox-agent-go/sandbox-agent/internal/problem"
	"github.com/sandbox-agent-go/sandbox-agent/internal/procwait"
)

// Instance is one ACP server: an agent process speaking NDJSON JSON-RPC on
// stdio, addressed by a client-chosen server id.
type Instance struct {
	id        string
	agent     string
	createdAt time.Time
	opts      *Options
	log       *slog.Logger

	cmd     *exec.Cmd
	stdin   *os.File
	stdout  *os.File
	stderrR *os.File
	pgid    int

	// The stdin outbox; see write for its invariant. wbusy marks that one
	// goroutine owns stdin (a direct writer or drain); lines accepted
	// meanwhile wait in wq, in order, up to opts.MaxQueuedBytes.
	wmu      sync.Mutex
	wbusy    bool
	wq       []*outLine
	wqBytes  int
	wbroken  error         // set once a write failed: stdin is gone
	closedCh chan struct{} // closed by close()

	pendMu  sync.Mutex
	pending map[string]chan outMsg

	stream *stream
	stderr *tailBuffer

	exitedCh  chan struct{} // closed once the agent has exited and stdout is drained
	exitCode  *int
	exitSig   string
	reapedCh  chan struct{} // closed when cmd.Wait returned
	readersWG sync.WaitGroup

	closeOnce sync.Once
}

// start launches cmd as a new process group and begins reading its output.
func start(id, agent string, cmd *exec.Cmd, opts *Options) (*Instance, error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		outR.Close()
		outW.Close()
		return nil, err
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	err = cmd.Start()
	// The child owns its ends now; ours must close so EOF propagates.
	inR.Close()
	outW.Close()
	errW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		errR.Close()
		return nil, err
	}
	in := &Instance{
		id: id, agent: agent, createdAt: time.Now(), opts: opts,
		log:      opts.Logger.With("server_id", id, "agent", agent, "pid", cmd.Process.Pid),
		cmd:      cmd,
		stdin:    inW,
		stdout:   outR,
		stderrR:  errR,
		pgid:     cmd.Process.Pid,
		pending:  map[string]chan outMsg{},
		stream:   newStream(opts.ReplayBuffer, opts.ReplayMaxBytes, opts.SlowReaderTimeout),
		stderr:   newTailBuffer(opts.StderrTailBytes),
		exitedCh: make(chan struct{}),
		reapedCh: make(chan struct{}),
		closedCh: make(chan struct{}),
	}
	in.log.Info("agent process started")
	in.readersWG.Add(2)
	stdoutDone, stderrDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer in.readersWG.Done()
		defer close(stdoutDone)
		in.readStdout(outR)
	}()
	go func() {
		defer in.readersWG.Done()
		defer close(stderrDone)
		in.readStderr(errR)
	}()
	go in.reap(stdoutDone, stderrDone)
	return in, nil
}

// reap waits for the agent, cleans up its process group, drains stdout and
// then announces the exit to readers and pending requests.
func (in *Instance) reap(stdoutDone, stderrDone <-chan struct{}) {
	// Wait for the exit on the netpoller first: cmd.Wait alone blocks an OS
	// thread per agent (hundreds of agents, hundreds of threads). The
	// process stays unreaped until cmd.Wait, which then returns at once.
	_ = procwait.Pidfd(in.cmd.Process.Pid) // on error, cmd.Wait blocks instead
	err := in.cmd.Wait()
	close(in.reapedCh)
	// Children the agent left behind would keep the stdout pipe open and
	// outlive it; the group dies with its leader.
	_ = syscall.Kill(-in.pgid, syscall.SIGKILL)
	// Drain both pipes so the exit message follows every line the agent
	// wrote and the error details carry its last stderr.
	drain := time.NewTimer(2 * time.Second)
	defer drain.Stop()
	for _, done := range []<-chan struct{}{stdoutDone, stderrDone} {
		select {
		case <-done:
		case <-drain.C:
			// Something outside the group holds the pipes; stop reading.
			_ = in.stdout.SetReadDeadline(time.Now())
			_ = in.stderrR.SetReadDeadline(time.Now())
			<-stdoutDone
			<-stderrDone
		}
	}
	// The readers are done: release the pipes now rather than whenever a
	// GC finalizer gets to them.
	_ = in.stdout.Close()
	_ = in.stderrR.Close()
	ps := in.cmd.ProcessState
	p := acp.AgentExitedParams{Success: err == nil && ps != nil && ps.Success()}
	if ps != nil {
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			p.Signal = ws.Signal().String()
		} else {
			c := ps.ExitCode()
			p.Code = &c
		}
	}
	in.exitCode, in.exitSig = p.Code, p.Signal
	if p.Code != nil {
		in.log.Info("agent process exited", "code", *p.Code)
	} else {
		in.log.Info("agent process exited", "signal", p.Signal)
	}
	_, _ = in.stream.publish(acp.Notify(acp.MethodAgentExited, p))
	close(in.exitedCh)
	_ = in.stdin.Close()
}

// outMsg is one message read from the agent, ready to publish.
type outMsg struct {
	data    []byte
	respKey string // set for responses: the id key of a possibly pending POST
	seq     uint64 // set by publishBatch
}

// Stdout batching: lines already buffered are published together, copied
// into shared slabs instead of one allocation each. An agent starts with a
// small read buffer and first slab, so the many idle agents of a busy
// server stay small; the first burst switches to the large sizes.
const (
	maxOutBatch    = 256
	firstSlabSize  = 4 << 10
	slabSize       = 64 << 10
	maxSlabLine    = 16 << 10
	firstReadBytes = 4 << 10
	readBufBytes   = 32 << 10
	// burstLines in one batch marks an agent that writes faster than one
	// small read at a time.
	burstLines = 8
)

func (in *Instance) readStdout(r io.Reader) {
	br := bufio.NewReaderSize(r, firstReadBytes)
	large := false
	var scratch []byte
	var slab []byte // allocated on the first line
	keep := func(t []byte) []byte {
		if len(t) > maxSlabLine {
			return bytes.Clone(t)
		}
		if cap(slab)-len(slab) < len(t) {
			size := slabSize
			if slab == nil && !large {
				size = max(firstSlabSize, len(t))
			}
			slab = make([]byte, 0, size)
		}
		start := len(slab)
		slab = append(slab, t...)
		return slab[start:len(slab):len(slab)]
	}
	batch := make([]outMsg, 0, maxOutBatch)
	for {
		line, tooLong, err := readLine(br, in.opts.MaxLineBytes, &scratch)
		if m, ok := in.prepare(line, tooLong, keep); ok {
			batch = append(batch, m)
		}
		if !large && len(batch) >= burstLines {
			// The small reader keeps what it has buffered and passes
			// the large reader's reads straight to the pipe from then on.
			br, large = bufio.NewReaderSize(br, readBufBytes), true
		}
		if len(batch) > 0 && (err != nil || br.Buffered() == 0 || len(batch) == maxOutBatch) {
			if in.flush(batch) != nil {
				return
			}
			clear(batch)
			batch = batch[:0]
		}
		if err != nil {
			return
		}
	}
}

// readLine returns one line without its terminator. The line aliases the
// reader's buffer (or *scratch) and is valid until the next call. A line
// longer than max is consumed to its end and reported with tooLong (and its
// first max bytes).
func readLine(br *bufio.Reader, max int, scratch *[]byte) (line []byte, tooLong bool, err error) {
	chunk, e := br.ReadSlice('\n')
	if e != bufio.ErrBufferFull && len(chunk) <= max+1 {
		return bytes.TrimSuffix(chunk, []byte{'\n'}), false, e
	}
	line = (*scratch)[:0]
	for {
		if !tooLong {
			if len(line)+len(chunk) > max+1 {
				if keep := max - len(line); keep > 0 {
					line = append(line, chunk[:keep]...)
				}
				tooLong = true
			} else {
				line = append(line, chunk...)
			}
		}
		if e != bufio.ErrBufferFull {
			break
		}
		chunk, e = br.ReadSlice('\n')
	}
	*scratch = line
	if !tooLong {
		line = bytes.TrimSuffix(line, []byte{'\n'})
	}
	return line, tooLong, e
}

// prepare classifies one stdout line. keep copies it out of the read
// buffer: the line is published as the agent wrote it, never re-encoded.
func (in *Instance) prepare(line []byte, tooLong bool, keep func([]byte) []byte) (outMsg, bool) {
	t := bytes.TrimSpace(line)
	if len(t) == 0 && !tooLong {
		return outMsg{}, false
	}
	if tooLong {
		return outMsg{data: in.invalid(fmt.Sprintf("line exceeds %d bytes", in.opts.MaxLineBytes), t)}, true
	}
	env, err := acp.Parse(t)
	if err != nil {
		return outMsg{data: in.invalid(err.Error(), t)}, true
	}
	m := outMsg{data: keep(t)}
	if env.Kind == acp.Response {
		m.respKey = acp.IDKey(env.ID)
	}
	return m, true
}

// flush publishes a batch, then hands responses to their waiting POSTs:
// a response is on the SSE stream no later than it reaches its POST.
func (in *Instance) flush(batch []outMsg) error {
	if err := in.stream.publishBatch(batch); err != nil {
		return err
	}
	for i := range batch {
		m := batch[i]
		if m.respKey == "" {
			continue
		}
		in.pendMu.Lock()
		ch, ok := in.pending[m.respKey]
		if ok {
			delete(in.pending, m.respKey)
		}
		in.pendMu.Unlock()
		if ok {
			ch <- m
		}
	}
	return nil
}

const maxInvalidRaw = 64 << 10

// invalid wraps a stdout line that is not a JSON object.
func (in *Instance) invalid(msg string, raw []byte) []byte {
	if len(raw) > maxInvalidRaw {
		raw = raw[:maxInvalidRaw]
	}
	in.log.Warn("agent wrote invalid stdout", "error", msg, "bytes", len(raw))
	return acp.Notify(acp.MethodInvalidStdout, acp.InvalidStdoutParams{Error: msg, Raw: string(bytes.ToValidUTF8(raw, []byte("\uFFFD")))})
}

func (in *Instance) readStderr(r io.Reader) {
	br := bufio.NewReaderSize(r, 4<<10)
	var scratch []byte
	logged := 0
	for {
		line, tooLong, err := readLine(br, 4096, &scratch)
		if len(line) > 0 {
			in.stderr.Write(line)
			in.stderr.Write([]byte{'\n'})
			if logged < in.opts.StderrLogBytes {
				logged += len(line)
				in.log.Info("agent stderr", "line", string(line), "truncated", tooLong)
				if logged >= in.opts.StderrLogBytes {
					in.log.Warn("agent stderr logging suppressed after limit", "limit_bytes", in.opts.StderrLogBytes)
				}
			}
		}
		if err != nil {
			return
		}
	}
}

// errAgentExited is wrapped by send when the agent is gone.
var errAgentExited = errors.New("agent process has exited")

func (in *Instance) exited() bool {
	select {
	case <-in.exitedCh:
		return true
	default:
		return false
	}
}

// outLine is one line waiting in the stdin outbox.
type outLine struct {
	buf  []byte     // the line and its '\n'
	done chan error // buffered: the write's outcome, sent once
}

// Errors of write besides errAgentExited.
var (
	// errQueued: the line is accepted but not (wholly) written yet; it will
	// be, in order (see write).
	errQueued = errors.New("agent stdin write queued")
	// errQueueFull: the line was refused; not a byte of it was written.
	errQueueFull = errors.New("agent stdin queue full")
)

// write sends one line to the agent's stdin.
//
// Invariant (the outbox): when write returns, the line is exactly one of
//   - written (nil): wholly in the pipe;
//   - queued (errQueued): accepted, and it will be written whole, after
//     every line accepted before it and before every line accepted after
//     it, unless the agent's stdin goes away first (the agent exited or the
//     server was deleted: then nothing is ever written again);
//   - refused (errQueueFull, errAgentExited, other errors): no byte of it
//     was written and none ever will be.
//
// Lines are never interleaved: one goroutine owns stdin at a time (wbusy).
// An idle agent's line is written directly by the caller, bounded by ctx's
// deadline, so a round trip costs no goroutine hand-off. A line the agent
// has not taken by then is finished by drain in the background, and so are
// the lines that queued behind it; a caller that gives up on a queued line
// leaves it queued. The queue is bounded by opts.MaxQueuedBytes (at least
// one line is always accepted).
func (in *Instance) write(ctx context.Context, line []byte) error {
	if in.exited() {
		return errAgentExited
	}
	buf := make([]byte, 0, len(line)+1)
	buf = append(append(buf, line...), '\n')
	in.wmu.Lock()
	if in.wbroken != nil {
		in.wmu.Unlock()
		return errAgentExited
	}
	if !in.wbusy {
		in.wbusy = true
		in.wmu.Unlock()
		return in.writeDirect(ctx, buf)
	}
	if in.wqBytes > 0 && in.wqBytes+len(buf) > in.opts.MaxQueuedBytes {
		n := in.wqBytes
		in.wmu.Unlock()
		in.log.Warn("agent stdin queue full; message refused", "queued_bytes", n, "bytes", len(buf))
		return errQueueFull
	}
	ol := &outLine{buf: buf, done: make(chan error, 1)}
	in.wq = append(in.wq, ol)
	in.wqBytes += len(buf)
	in.wmu.Unlock()
	select {
	case err := <-ol.done:
		return in.writeOutcome(ctx, err)
	case <-ctx.Done():
		select {
		case err := <-ol.done:
			return in.writeOutcome(ctx, err)
		default:
		}
		if in.exited() {
			return errAgentExited
		}
		return errQueued
	}
}

// writeDirect writes buf as stdin's owner (wbusy is set) and passes
// ownership on: back to idle, or to drain for what queued meanwhile.
func (in *Instance) writeDirect(ctx context.Context, buf []byte) error {
	dl, _ := ctx.Deadline() // zero (none) clears an earlier deadline
	_ = in.stdin.SetWriteDeadline(dl)
	n, err := in.stdin.Write(buf)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		go in.drain(buf[n:])
		return errQueued
	}
	if err != nil {
		in.breakQueue(err)
		return in.writeOutcome(ctx, err)
	}
	in.wmu.Lock()
	if len(in.wq) == 0 {
		in.wbusy = false
		in.wmu.Unlock()
		return nil
	}
	in.wmu.Unlock()
	go in.drain(nil)
	return nil
}

// drain owns stdin: it finishes rest (a line cut by its deadline), then
// writes the queue in order until it is empty. Its writes have no deadline:
// they end when the agent reads or its stdin is closed (exit, DELETE,
// shutdown), which fails whatever is still queued.
func (in *Instance) drain(rest []byte) {
	_ = in.stdin.SetWriteDeadline(time.Time{})
	if len(rest) > 0 {
		if _, err := in.stdin.Write(rest); err != nil {
			in.breakQueue(err)
			return
		}
	}
	for {
		in.wmu.Lock()
		if len(in.wq) == 0 {
			in.wbusy = false
			in.wmu.Unlock()
			return
		}
		ol := in.wq[0]
		in.wq[0] = nil
		in.wq = in.wq[1:]
		in.wqBytes -= len(ol.buf)
		in.wmu.Unlock()
		_, err := in.stdin.Write(ol.buf)
		ol.done <- err
		if err != nil {
			in.breakQueue(err)
			return
		}
	}
}

// breakQueue records that stdin is gone and fails every queued line.
func (in *Instance) breakQueue(err error) {
	in.wmu.Lock()
	in.wbroken = err
	q := in.wq
	in.wq, in.wqBytes = nil, 0
	in.wmu.Unlock()
	for _, ol := range q {
		ol.done <- err
	}
}

// writeOutcome maps the error of a finished write.
func (in *Instance) writeOutcome(ctx context.Context, err error) error {
	if err != nil && (errors.Is(err, os.ErrClosed) || errors.Is(err, syscall.EPIPE)) {
		// The agent is going; let reap record how before reporting it.
		select {
		case <-in.exitedCh:
		case <-ctx.Done():
		}
		return errAgentExited
	}
	return err
}

// call writes a request and waits for the agent's response with the same
// id. Before it returns the response, every live SSE reader has flushed
// everything the agent wrote up to and including it (see stream's
// invariant), bounded by the slow-reader timeout: a client never sees the
// answer of a POST before the stream events that precede it.
func (in *Instance) call(ctx context.Context, id []byte, line []byte) ([]byte, error) {
	key := acp.IDKey(id)
	ch := make(chan outMsg, 1)
	in.pendMu.Lock()
	if _, dup := in.pending[key]; dup {
		in.pendMu.Unlock()
		return nil, problem.ConflictMsg(fmt.Sprintf("a request with id %s is already pending on server '%s'", key, in.id))
	}
	in.pending[key] = ch
	in.pendMu.Unlock()
	drop := func() {
		in.pendMu.Lock()
		if in.pending[key] == ch {
			delete(in.pending, key)
		}
		in.pendMu.Unlock()
	}
	ctx, cancel := context.WithTimeout(ctx, in.opts.RequestTimeout)
	defer cancel()
	if in.exited() {
		drop()
		return nil, in.writeError(errAgentExited) // gone before we wrote: 502, as upstream
	}
	if err := in.write(ctx, line); err != nil {
		drop()
		if errors.Is(err, errAgentExited) {
			return nil, in.exitProblem() // it died while taking the request
		}
		return nil, in.writeError(err)
	}
	select {
	case resp := <-ch:
		in.stream.waitFlushed(ctx, resp.seq)
		return resp.data, nil
	case <-in.exitedCh:
		drop()
		// The response may have raced the exit.
		select {
		case resp := <-ch:
			in.stream.waitFlushed(ctx, resp.seq)
			return resp.data, nil
		default:
		}
		return nil, in.exitProblem()
	case <-ctx.Done():
		drop()
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, problem.TimeoutMsg(fmt.Sprintf("timed out waiting for agent response after %s", in.opts.RequestTimeout))
		}
		return nil, ctx.Err()
	}
}

func (in *Instance) writeError(err error) error {
	if errors.Is(err, errAgentExited) || in.exited() {
		return problem.Stream(fmt.Sprintf("failed writing to agent stdin: agent process has exited%s", in.exitSuffix()))
	}
	if errors.Is(err, errQueued) {
		return problem.InputQueued("timed out writing to agent stdin (the agent is not reading); the message is queued and will reach the agent in order once it reads")
	}
	if errors.Is(err, errQueueFull) {
		return problem.InputFull(fmt.Sprintf("agent stdin queue is full (%d bytes waiting; the agent is not reading); the message was not written", in.opts.MaxQueuedBytes))
	}
	return problem.Stream("failed writing to agent stdin: " + err.Error())
}

func (in *Instance) exitSuffix() string {
	if !in.exited() {
		return "" // reap has not recorded the status yet
	}
	if in.exitCode != nil {
		return fmt.Sprintf(" (exit code %d)", *in.exitCode)
	}
	if in.exitSig != "" {
		return " (" + in.exitSig + ")"
	}
	return ""
}

func (in *Instance) exitProblem() *problem.Problem {
	var code *int
	if in.exited() { // exitCode is written before exitedCh closes
		code = in.exitCode
	}
	return problem.Exited(in.agent, code, in.stderr.String())
}

// close stops the agent: close stdin, SIGTERM the group, SIGKILL it after
// the grace period, and wait (bounded) until the process is reaped and its
// readers are done. Open SSE streams end.
func (in *Instance) close(ctx context.Context) {
	in.closeOnce.Do(func() {
		close(in.closedCh)
		in.stream.close()
		_ = in.stdin.Close()
		_ = syscall.Kill(-in.pgid, syscall.SIGTERM)
		t := time.NewTimer(in.opts.KillGrace)
		select {
		case <-in.reapedCh:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		_ = syscall.Kill(-in.pgid, syscall.SIGKILL)
		select {
		case <-in.exitedCh:
		case <-ctx.Done():
			in.log.Warn("agent did not exit before the close deadline")
		}
		done := make(chan struct{})
		go func() { in.readersWG.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
		}
	})
}

// tailBuffer keeps the last n bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	n   int
}

func newTailBuffer(n int) *tailBuffer { return &tailBuffer{n: n} }

func (t *tailBuffer) Write(p []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.n {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.n:]...)
	}
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.TrimRight(t.buf, "\n"))
}
