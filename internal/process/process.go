// Package process runs user commands for /v1/processes: one-shot runs with
// captured output, long-lived processes with bounded log rings, stdin input,
// PTY terminals over WebSocket and the runtime process configuration.
//
// Every child runs in its own process group (a new session for PTYs) and
// every signal goes to the whole group, so stop, kill, delete, run timeouts
// and Manager.Close leave no orphan behind. Exited children are reaped at
// once; their status is kept in memory until DELETE, as upstream does.
package process

import (
	"container/list"
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/internal/problem"
)

// Config is the runtime process configuration (GET/POST /v1/processes/config).
// Field order is upstream's.
type Config struct {
	MaxConcurrentProcesses  uint64 `json:"maxConcurrentProcesses"`
	DefaultRunTimeoutMs     uint64 `json:"defaultRunTimeoutMs"`
	MaxRunTimeoutMs         uint64 `json:"maxRunTimeoutMs"`
	MaxOutputBytes          uint64 `json:"maxOutputBytes"`
	MaxLogBytesPerProcess   uint64 `json:"maxLogBytesPerProcess"`
	MaxInputBytesPerRequest uint64 `json:"maxInputBytesPerRequest"`
}

// DefaultConfig returns upstream's defaults.
func DefaultConfig() Config {
	return Config{
		MaxConcurrentProcesses:  64,
		DefaultRunTimeoutMs:     30_000,
		MaxRunTimeoutMs:         300_000,
		MaxOutputBytes:          1 << 20,
		MaxLogBytesPerProcess:   10 << 20,
		MaxInputBytesPerRequest: 64 << 10,
	}
}

// Validate checks c as upstream does and clamps DefaultRunTimeoutMs to
// MaxRunTimeoutMs. Errors are 400 problems.
func (c Config) Validate() (Config, error) {
	switch {
	case c.MaxConcurrentProcesses == 0:
		return c, problem.Invalid("maxConcurrentProcesses must be greater than 0")
	case c.DefaultRunTimeoutMs == 0 || c.MaxRunTimeoutMs == 0:
		return c, problem.Invalid("timeouts must be greater than 0")
	case c.MaxOutputBytes == 0 || c.MaxLogBytesPerProcess == 0 || c.MaxInputBytesPerRequest == 0:
		return c, problem.Invalid("byte limits must be greater than 0")
	}
	c.DefaultRunTimeoutMs = min(c.DefaultRunTimeoutMs, c.MaxRunTimeoutMs)
	return c, nil
}

// Owner says who created a process.
type Owner string

// Owners upstream knows. Processes created through the HTTP API are OwnerUser.
const (
	OwnerUser    Owner = "user"
	OwnerDesktop Owner = "desktop"
	OwnerSystem  Owner = "system"
)

// Status of a managed process.
type Status string

// Statuses.
const (
	StatusRunning Status = "running"
	StatusExited  Status = "exited"
)

// Info is upstream's ProcessInfo, in its field order; absent options are omitted.
type Info struct {
	ID          string   `json:"id"`
	Command     string   `json:"command"`
	Args        []string `json:"args"`
	Cwd         *string  `json:"cwd,omitempty"`
	TTY         bool     `json:"tty"`
	Interactive bool     `json:"interactive"`
	Owner       Owner    `json:"owner"`
	Status      Status   `json:"status"`
	Pid         *int     `json:"pid,omitempty"`
	ExitCode    *int     `json:"exitCode,omitempty"`
	CreatedAtMs int64    `json:"createdAtMs"`
	ExitedAtMs  *int64   `json:"exitedAtMs,omitempty"`
}

// CreateRequest starts a managed process.
type CreateRequest struct {
	Command     string
	Args        []string
	Cwd         *string // nil: the server's working directory
	Env         map[string]string
	TTY         bool
	Interactive bool
}

// RunRequest runs a command to completion.
type RunRequest struct {
	Command        string
	Args           []string
	Cwd            *string
	Env            map[string]string
	TimeoutMs      *uint64 // nil: DefaultRunTimeoutMs; clamped to MaxRunTimeoutMs
	MaxOutputBytes *uint64 // nil: MaxOutputBytes; clamped to it as well
}

// RunResponse is upstream's ProcessRunResponse. ExitCode is null (not
// omitted) when the command timed out or died from a signal.
type RunResponse struct {
	ExitCode        *int   `json:"exitCode"`
	TimedOut        bool   `json:"timedOut"`
	Stdout          string `json:"stdout"`
	Stderr          string `json:"stderr"`
	StdoutTruncated bool   `json:"stdoutTruncated"`
	StderrTruncated bool   `json:"stderrTruncated"`
	DurationMs      uint64 `json:"durationMs"`
}

// Options configure a Manager. Zero values take defaults.
type Options struct {
	Logger *slog.Logger
	// Now stamps createdAtMs, exitedAtMs and log entries (default time.Now).
	Now func() time.Time
	// Config is the initial configuration (default DefaultConfig()).
	Config *Config
	// Heartbeat is the follow-logs SSE keep-alive interval (default 15 s).
	Heartbeat time.Duration
	// DrainGrace bounds how long output is awaited after a process exited
	// while something else (a background child) still holds its stdout,
	// stderr or PTY (default 2 s). Follow streams and terminals end after it.
	DrainGrace time.Duration
	// DefaultStopWait is the stop/kill waitMs default (default 2 s).
	DefaultStopWait time.Duration
	// OriginPatterns, when set, restricts the terminal WebSocket to these
	// Origin host patterns (same-origin is always allowed). Empty accepts
	// any origin, as upstream does: the token is the access control.
	OriginPatterns []string
	// Env is the base environment of every child, before the request's
	// env is overlaid (default os.Environ()). The composition root passes
	// the server's environment without its own secrets.
	Env []string
	// SlowReaderTimeout bounds every write to a follow-logs SSE stream or a
	// terminal WebSocket: a client that does not take the bytes within it
	// is cut off, so a stalled reader holds neither a goroutine nor
	// shutdown (default 10 s, the ACP stream's).
	SlowReaderTimeout time.Duration
	// ExitedLogBudget caps the log bytes kept by exited processes, summed
	// over all of them; past it the oldest exited process's log ring is
	// released (its entry stays, its logs answer logsDropped). Default
	// DefaultExitedLogBudget.
	ExitedLogBudget uint64
}

// DefaultExitedLogBudget is the default Options.ExitedLogBudget: 256 MiB.
const DefaultExitedLogBudget = 256 << 20

// Manager owns every managed process and every in-flight run.
type Manager struct {
	log       *slog.Logger
	now       func() time.Time
	heartbeat time.Duration
	grace     time.Duration
	stopWait  time.Duration
	origins   []string
	env       []string
	slow      time.Duration
	ctx       context.Context // cancelled by Close: ends streams and runs
	cancel    context.CancelFunc
	wg        sync.WaitGroup // background goroutines and runs

	mu     sync.Mutex
	cfg    Config
	procs  map[string]*proc
	nextID uint64
	active uint64 // running processes plus spawns in progress
	closed bool

	logs exitedLogs
}

// NewManager returns a Manager with no processes.
func NewManager(o Options) *Manager {
	m := &Manager{
		log: o.Logger, now: o.Now, heartbeat: o.Heartbeat, grace: o.DrainGrace,
		stopWait: o.DefaultStopWait, origins: o.OriginPatterns, env: o.Env, slow: o.SlowReaderTimeout,
		cfg: DefaultConfig(), procs: map[string]*proc{},
	}
	m.logs.init(o.ExitedLogBudget)
	if m.env == nil {
		m.env = os.Environ()
	}
	if m.slow <= 0 {
		m.slow = 10 * time.Second
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.heartbeat <= 0 {
		m.heartbeat = 15 * time.Second
	}
	if m.grace <= 0 {
		m.grace = 2 * time.Second
	}
	if m.stopWait <= 0 {
		m.stopWait = 2 * time.Second
	}
	if o.Config != nil {
		if c, err := o.Config.Validate(); err == nil {
			m.cfg = c
		} else {
			m.log.Warn("invalid initial process config, using defaults", "err", err)
		}
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	return m
}

// Config returns the current configuration.
func (m *Manager) Config() Config {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cfg
}

// SetConfig validates, clamps and stores c, returning what was stored.
func (m *Manager) SetConfig(c Config) (Config, error) {
	c, err := c.Validate()
	if err != nil {
		return c, err
	}
	m.mu.Lock()
	m.cfg = c
	m.mu.Unlock()
	return c, nil
}

func (m *Manager) nowMs() int64 { return m.now().UnixMilli() }

// track registers a run or stream with Close; false once closed. The
// caller calls m.wg.Done when it ends.
func (m *Manager) track() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false
	}
	m.wg.Add(1)
	return true
}

// errShuttingDown is what a request still pending at Close gets: 503
// server_shutting_down, never a success or an empty answer.
func errShuttingDown() *problem.Problem { return problem.ShuttingDown() }

// proc is one managed process.
type proc struct {
	id          string
	command     string
	args        []string
	cwd         *string
	tty         bool
	interactive bool
	owner       Owner
	createdAtMs int64
	pid         int // also the process group id

	logs   *ring
	stdin  *os.File   // pipe write end, or the PTY master
	reads  []*os.File // stdout+stderr read ends, or the PTY master
	master *os.File   // PTY master (tty only)

	inputSem    chan struct{} // serialises writes to stdin
	exited      chan struct{} // closed once reaped
	drained     chan struct{} // closed once exited and output read (or DrainGrace)
	removed     chan struct{} // closed by DELETE
	readersDone chan struct{}
	readersLeft atomic.Int32
	budget      *list.Element // in Manager.logs.order once retired (guarded by Manager.logs.mu)
	forgotten   bool          // deleted: never retire (guarded by Manager.logs.mu)

	mu         sync.Mutex
	running    bool
	exitCode   *int
	exitedAtMs int64
	killGroup  bool // a stop/kill/close was requested: SIGKILL leftovers when the leader exits
}

func (p *proc) info() Info {
	p.mu.Lock()
	defer p.mu.Unlock()
	in := Info{ID: p.id, Command: p.command, Args: p.args, Cwd: p.cwd, TTY: p.tty,
		Interactive: p.interactive, Owner: p.owner, CreatedAtMs: p.createdAtMs}
	if in.Args == nil {
		in.Args = []string{}
	}
	if p.running {
		in.Status = StatusRunning
		pid := p.pid
		in.Pid = &pid
	} else {
		in.Status = StatusExited
		in.ExitCode = p.exitCode
		at := p.exitedAtMs
		in.ExitedAtMs = &at
	}
	return in
}

func (p *proc) isRunning() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running
}

// signal sends sig to the whole group (PTY: session) while the leader is
// unreaped, so the id cannot have been recycled. It reports whether the
// process ran.
func (p *proc) signal(sig syscall.Signal, killLeftovers bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.running {
		return false
	}
	if killLeftovers {
		p.killGroup = true
	}
	signalTree(p.pid, p.tty && sig != syscall.SIGWINCH, sig)
	return true
}

// closeReads closes the output read ends so readers held open by leftover
// background children stop.
func (p *proc) closeReads() {
	for _, f := range p.reads {
		_ = f.Close()
	}
}

// Create starts a managed process owned by owner. Errors are *problem.Problem.
func (m *Manager) Create(ctx context.Context, req CreateRequest, owner Owner) (Info, error) {
	if req.Command == "" {
		return Info{}, problem.Invalid("command must not be empty")
	}
	if err := ctx.Err(); err != nil {
		return Info{}, err
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return Info{}, errShuttingDown()
	}
	if m.active >= m.cfg.MaxConcurrentProcesses {
		limit := m.cfg.MaxConcurrentProcesses
		m.mu.Unlock()
		return Info{}, problem.ConflictMsg(fmt.Sprintf("max concurrent process limit reached (%d)", limit))
	}
	m.nextID++
	id := "proc_" + strconv.FormatUint(m.nextID, 10)
	m.active++
	cfg := m.cfg
	m.mu.Unlock()

	sp, err := spawn(spawnSpec{base: m.env, command: req.Command, args: req.Args, cwd: req.Cwd, env: req.Env, tty: req.TTY, stdin: true})
	if err != nil {
		m.mu.Lock()
		m.active--
		m.mu.Unlock()
		m.log.Debug("process spawn failed", "id", id, "command", req.Command, "err", err)
		return Info{}, spawnProblem(err)
	}
	p := &proc{
		id: id, command: req.Command, args: slices.Clone(req.Args), cwd: req.Cwd, tty: req.TTY,
		interactive: req.Interactive, owner: owner, createdAtMs: m.nowMs(), pid: sp.pid,
		logs:  newRing(cfg.MaxLogBytesPerProcess),
		stdin: sp.stdin, master: sp.master,
		inputSem: make(chan struct{}, 1), exited: make(chan struct{}), drained: make(chan struct{}),
		removed: make(chan struct{}), readersDone: make(chan struct{}), running: true,
	}
	type source struct {
		f *os.File
		s streamKind
	}
	var sources []source
	if req.TTY {
		sources = []source{{sp.master, streamPTY}}
	} else {
		sources = []source{{sp.stdout, streamStdout}, {sp.stderr, streamStderr}}
	}
	for _, s := range sources {
		p.reads = append(p.reads, s.f)
	}
	p.readersLeft.Store(int32(len(sources)))

	m.mu.Lock()
	if m.closed {
		m.active--
		m.mu.Unlock()
		// Close ran while we were spawning: do not leave this one behind.
		_ = syscall.Kill(-sp.pid, syscall.SIGKILL)
		_, _ = reap(sp.pid)
		sp.closeAll()
		return Info{}, errShuttingDown()
	}
	m.procs[id] = p
	m.wg.Add(1 + len(sources))
	m.mu.Unlock()

	// The answer describes the process as spawned (running, with its pid),
	// as upstream's does, even if it exits before the response is written.
	info := p.info()
	for _, s := range sources {
		go m.readOutput(p, s.f, s.s)
	}
	go m.watch(p)
	m.log.Debug("process started", "id", id, "pid", sp.pid, "command", req.Command, "tty", req.TTY)
	return info, nil
}

// readOutput appends every chunk read from f to the log ring until EOF
// (EIO on a PTY master once the child side is gone: no artefact is logged).
func (m *Manager) readOutput(p *proc, f *os.File, s streamKind) {
	defer m.wg.Done()
	defer func() {
		if p.readersLeft.Add(-1) == 0 {
			close(p.readersDone)
		}
	}()
	buf := make([]byte, readChunk)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			p.logs.append(s, buf[:n], m.nowMs())
		}
		if err != nil {
			break
		}
	}
	_ = f.Close()
}

// watch reaps the leader, records its status, then marks the process
// drained once its output is read (bounded by DrainGrace).
func (m *Manager) watch(p *proc) {
	defer m.wg.Done()
	_ = waitNoReap(p.pid)
	p.mu.Lock()
	if p.killGroup {
		// The leader is a zombie, so its pgid is still ours to signal.
		signalTree(p.pid, p.tty, syscall.SIGKILL)
	}
	code, _ := reap(p.pid)
	p.running = false
	p.exitCode = code
	p.exitedAtMs = m.nowMs()
	if !p.tty {
		_ = p.stdin.Close()
	}
	p.mu.Unlock()
	m.mu.Lock()
	m.active--
	m.mu.Unlock()
	close(p.exited)
	m.log.Debug("process exited", "id", p.id, "pid", p.pid, "exitCode", code)

	t := time.NewTimer(m.grace)
	select {
	case <-p.readersDone:
	case <-t.C:
	case <-p.removed:
	case <-m.ctx.Done():
	}
	t.Stop()
	// From now on the ring only grows if a background child still writes
	// to the inherited pipes; it counts against the exited-log budget
	// (before drained, so whoever saw drained sees the accounting).
	m.logs.retire(p)
	close(p.drained)
}

func (m *Manager) lookup(id string) (*proc, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.procs[id]
	if p == nil {
		return nil, problem.Resource("process", id)
	}
	return p, nil
}

// Get returns one process.
func (m *Manager) Get(id string) (Info, error) {
	p, err := m.lookup(id)
	if err != nil {
		return Info{}, err
	}
	return p.info(), nil
}

// List returns every process (of owner, when non-empty) sorted by id as
// strings, as upstream does (proc_10 sorts before proc_3).
func (m *Manager) List(owner Owner) []Info {
	m.mu.Lock()
	ps := make([]*proc, 0, len(m.procs))
	for _, p := range m.procs {
		if owner == "" || p.owner == owner {
			ps = append(ps, p)
		}
	}
	m.mu.Unlock()
	slices.SortFunc(ps, func(a, b *proc) int {
		switch {
		case a.id < b.id:
			return -1
		case a.id > b.id:
			return 1
		}
		return 0
	})
	out := make([]Info, len(ps))
	for i, p := range ps {
		out[i] = p.info()
	}
	return out
}

// Stop sends SIGTERM to the process group and waits up to wait for the
// leader to exit. Group members left behind by the leader are killed.
func (m *Manager) Stop(ctx context.Context, id string, wait time.Duration) (Info, error) {
	return m.signalWait(ctx, id, syscall.SIGTERM, wait)
}

// Kill sends SIGKILL to the process group and waits up to wait for it.
func (m *Manager) Kill(ctx context.Context, id string, wait time.Duration) (Info, error) {
	return m.signalWait(ctx, id, syscall.SIGKILL, wait)
}

func (m *Manager) signalWait(ctx context.Context, id string, sig syscall.Signal, wait time.Duration) (Info, error) {
	p, err := m.lookup(id)
	if err != nil {
		return Info{}, err
	}
	if p.signal(sig, true) && wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-p.exited:
		case <-t.C:
		case <-ctx.Done():
		case <-m.ctx.Done():
		}
		t.Stop()
	}
	return p.info(), nil
}

// Delete forgets an exited process, kills anything left in its group and
// ends its log streams. A running process is a 409.
func (m *Manager) Delete(id string) error {
	m.mu.Lock()
	p := m.procs[id]
	if p == nil {
		m.mu.Unlock()
		return problem.Resource("process", id)
	}
	if p.isRunning() {
		m.mu.Unlock()
		return problem.ConflictMsg("process is still running; stop or kill it before delete")
	}
	delete(m.procs, id)
	m.mu.Unlock()
	close(p.removed)
	m.logs.forget(p)
	killLeftovers(p.pid, p.tty)
	p.closeReads()
	m.log.Debug("process deleted", "id", id)
	return nil
}

// Close kills every process group, ends every log stream, terminal and run,
// and waits (bounded by ctx) until every child is reaped and every
// background goroutine has returned. It is safe to call more than once.
func (m *Manager) Close(ctx context.Context) error {
	m.mu.Lock()
	m.closed = true
	ps := make([]*proc, 0, len(m.procs))
	for _, p := range m.procs {
		ps = append(ps, p)
	}
	m.mu.Unlock()
	m.cancel()
	for _, p := range ps {
		if !p.signal(syscall.SIGKILL, true) {
			killLeftovers(p.pid, p.tty)
		}
		p.closeReads()
	}
	done := make(chan struct{})
	go func() {
		m.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("process manager close: %w", ctx.Err())
	}
}
