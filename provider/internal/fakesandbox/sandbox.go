//go:build unix

package fakesandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// State is a fake sandbox's lifecycle state.
type State int

// The lifecycle states. Creating and Paused keep the sandbox's ports from
// answering through the Proxy; Deleted makes every lookup report ErrNotFound.
const (
	Creating State = iota
	Running
	Paused
	Stopped
	Deleted
)

func (s State) String() string {
	switch s {
	case Creating:
		return "creating"
	case Running:
		return "running"
	case Paused:
		return "paused"
	case Stopped:
		return "stopped"
	case Deleted:
		return "deleted"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// PauseMode says what pausing does to the sandbox's processes.
type PauseMode int

const (
	// Freeze stops every process group with SIGSTOP; Resume continues them
	// (E2B's memory snapshot: the server is still there after resume).
	Freeze PauseMode = iota
	// Kill ends every process group; Resume starts with nothing running
	// (Daytona/Vercel stop: a cold boot that loses the server).
	Kill
)

// Errors reported by a Sandbox.
var (
	ErrNotFound   = errors.New("fakesandbox: sandbox not found")
	ErrNotRunning = errors.New("fakesandbox: sandbox not running")
	ErrEscape     = errors.New("fakesandbox: path escapes the sandbox")
)

// markerEnv names the variable that marks a sandbox's processes.
const markerEnv = "FAKESANDBOX_ID"

var markerSeq atomic.Uint64

// PortEnv is the prefix of the environment variables through which a
// command learns the real loopback port behind a logical port: the real port
// for logical port 2468 is in $SANDBOX_PORT_2468. Vendor fakes that cannot
// change the command (it comes from the provider under test) rewrite it with
// Sandbox.Port instead, e.g. replacing "--port 2468".
const PortEnv = "SANDBOX_PORT_"

// Sandbox simulates one vendor sandbox on this machine: a private directory
// that is its filesystem root and HOME, an environment, and the process
// groups of the commands it runs. It is safe for concurrent use.
type Sandbox struct {
	ID   string
	root string // host directory that is the sandbox's "/"
	home string // sandbox path of HOME, e.g. /home/user

	// marker is the environment entry every process of the sandbox
	// inherits (see marked).
	marker string

	mu    sync.Mutex
	state State
	env   []string
	ports map[int]int // logical → real loopback port
	procs map[*Process]struct{}
	ready chan struct{} // closed on the first Running
}

// Options configures New.
type Options struct {
	ID string
	// Home is the sandbox path of the working directory and HOME
	// (default /home/user).
	Home string
	// Env is added to every command's environment.
	Env map[string]string
	// Creating starts the sandbox in the Creating state (slow boot): its
	// ports do not answer until MarkReady. Otherwise it starts Running.
	Creating bool
}

// New creates a sandbox whose filesystem lives under a new directory in dir
// (a test's t.TempDir()).
func New(dir string, o Options) (*Sandbox, error) {
	if o.Home == "" {
		o.Home = "/home/user"
	}
	root, err := os.MkdirTemp(dir, "sandbox-")
	if err != nil {
		return nil, fmt.Errorf("fakesandbox: %w", err)
	}
	s := &Sandbox{ID: o.ID, root: root, home: path.Clean("/" + o.Home), ports: map[int]int{},
		procs: map[*Process]struct{}{}, ready: make(chan struct{})}
	if err := os.MkdirAll(s.hostPath(s.home), 0o755); err != nil {
		return nil, fmt.Errorf("fakesandbox: %w", err)
	}
	// The host's PATH stays so /bin/sh finds the usual tools; HOME and TMPDIR
	// are the sandbox's own so nothing it runs writes elsewhere.
	tmp := s.hostPath("/tmp")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("fakesandbox: %w", err)
	}
	s.marker = markerEnv + "=" + strconv.FormatUint(markerSeq.Add(1), 10) + "-" + strconv.Itoa(os.Getpid()) + "-" + path.Base(root)
	// Only the system's directories and the sandbox's own ~/.local/bin are on
	// PATH, so a sandbox-agent installed on this machine (or in GOPATH/bin)
	// never stands in for the one a provider installs. Options.Env may
	// override it.
	pathEnv := s.hostPath(s.home) + "/.local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	s.env = []string{"PATH=" + pathEnv, "HOME=" + s.hostPath(s.home), "TMPDIR=" + tmp, s.marker}
	for k, v := range o.Env {
		s.env = append(s.env, k+"="+v)
	}
	if o.Creating {
		s.state = Creating
	} else {
		s.state = Running
		close(s.ready)
	}
	return s, nil
}

// Root is the host directory that is the sandbox's filesystem root.
func (s *Sandbox) Root() string { return s.root }

// HostPath maps an absolute sandbox path to the host; it is lexical only, so
// file access goes through WriteFile/ReadFile, which also refuse symlinks
// leading out.
func (s *Sandbox) HostPath(p string) string { return s.hostPath(p) }

func (s *Sandbox) hostPath(p string) string {
	return s.root + path.Clean("/"+p)
}

// State reports the current state.
func (s *Sandbox) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

// Ready is closed once the sandbox has first become Running.
func (s *Sandbox) Ready() <-chan struct{} { return s.ready }

// MarkReady ends a slow boot: Creating → Running.
func (s *Sandbox) MarkReady() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != Creating {
		return fmt.Errorf("fakesandbox: MarkReady in state %s", s.state)
	}
	s.state = Running
	close(s.ready)
	return nil
}

// Port returns the real loopback port behind a logical port, allocating a
// free one on first use. Commands started afterwards see it as
// $SANDBOX_PORT_<logical>.
func (s *Sandbox) Port(logical int) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == Deleted {
		return 0, ErrNotFound
	}
	if p, ok := s.ports[logical]; ok {
		return p, nil
	}
	// Bind to learn a free port, then release it for the process inside.
	// Another test could take it in between; on loopback in one test
	// binary that race is rare enough to accept for a fake.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("fakesandbox: free port: %w", err)
	}
	p := ln.Addr().(*net.TCPAddr).Port
	if err := ln.Close(); err != nil {
		return 0, fmt.Errorf("fakesandbox: free port: %w", err)
	}
	s.ports[logical] = p
	return p, nil
}

// target is the proxy's backend for a logical port, or an error that says
// why it does not answer.
func (s *Sandbox) target(logical int) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state {
	case Deleted:
		return "", ErrNotFound
	case Running:
	default:
		return "", fmt.Errorf("%w: %s", ErrNotRunning, s.state)
	}
	p, ok := s.ports[logical]
	if !ok {
		return "", fmt.Errorf("fakesandbox: port %d not exposed", logical)
	}
	return "127.0.0.1:" + strconv.Itoa(p), nil
}

// Cmd describes a command to run inside the sandbox.
type Cmd struct {
	// Command is given to /bin/sh -c.
	Command string
	// Dir is a sandbox path (default the sandbox's HOME).
	Dir string
	// Env is added to the sandbox's environment.
	Env map[string]string
	// Stdin, when set, is the command's standard input.
	Stdin io.Reader
}

// Result is what a finished command produced.
type Result struct {
	Stdout, Stderr []byte
	ExitCode       int // -1 when killed by a signal
}

// Run runs a command in its own process group and waits for it. When ctx
// ends (a vendor's per-command timeout, or the caller going away) the whole
// group is killed and Run returns ctx's error with what was captured.
func (s *Sandbox) Run(ctx context.Context, c Cmd) (Result, error) {
	p, err := s.Start(c)
	if err != nil {
		return Result{}, err
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		p.kill()
		<-p.done
		r := p.Result()
		return r, fmt.Errorf("fakesandbox: %q: %w", c.Command, ctx.Err())
	}
	return p.Result(), nil
}

// Process is a command started in the background. It outlives the request
// that started it; only its own exit, Kill, a Kill-mode Pause, or Destroy
// end it.
type Process struct {
	cmd    *exec.Cmd
	stdout lockedBuffer
	stderr lockedBuffer
	done   chan struct{}
	exit   int
}

// Start starts a command in the background in its own process group.
func (s *Sandbox) Start(c Cmd) (*Process, error) {
	dir := s.home
	if c.Dir != "" {
		dir = c.Dir
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != Running && s.state != Creating {
		if s.state == Deleted {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("%w: %s", ErrNotRunning, s.state)
	}
	p := &Process{done: make(chan struct{})}
	cmd := exec.Command("/bin/sh", "-c", c.Command)
	cmd.Dir = s.hostPath(dir)
	cmd.Env = append([]string(nil), s.env...)
	for l, r := range s.ports {
		cmd.Env = append(cmd.Env, PortEnv+strconv.Itoa(l)+"="+strconv.Itoa(r))
	}
	for k, v := range c.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdin = c.Stdin
	cmd.Stdout = &p.stdout
	cmd.Stderr = &p.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// A grandchild that escaped the group could hold the pipes open; do
	// not let Wait hang on it.
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("fakesandbox: start %q: %w", c.Command, err)
	}
	p.cmd = cmd
	s.procs[p] = struct{}{}
	go func() {
		err := cmd.Wait()
		p.exit = exitCode(cmd, err)
		s.mu.Lock()
		delete(s.procs, p)
		s.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

func exitCode(cmd *exec.Cmd, err error) int {
	if cmd.ProcessState == nil {
		return -1
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return -1
	}
	if err != nil && !errors.As(err, new(*exec.ExitError)) {
		return -1
	}
	return cmd.ProcessState.ExitCode()
}

// Pgid is the process group of the command (its pid).
func (p *Process) Pgid() int { return p.cmd.Process.Pid }

// Done is closed when the command has exited and its output is complete.
func (p *Process) Done() <-chan struct{} { return p.done }

// Stdout is what the command has written so far.
func (p *Process) Stdout() []byte { return p.stdout.Bytes() }

// Stderr is what the command has written so far to standard error.
func (p *Process) Stderr() []byte { return p.stderr.Bytes() }

// Result is the captured output and exit code; ExitCode is only final after
// Done.
func (p *Process) Result() Result {
	r := Result{Stdout: p.Stdout(), Stderr: p.Stderr(), ExitCode: -1}
	select {
	case <-p.done:
		r.ExitCode = p.exit
	default:
	}
	return r
}

// Kill kills the command's process group and waits until it has exited or
// ctx ends.
func (p *Process) Kill(ctx context.Context) error {
	p.kill()
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("fakesandbox: kill: %w", ctx.Err())
	}
}

func (p *Process) kill() { p.signal(syscall.SIGKILL) }

func (p *Process) signal(sig syscall.Signal) {
	// ESRCH: the group is already gone, which is what we wanted.
	_ = syscall.Kill(-p.cmd.Process.Pid, sig)
	if sig == syscall.SIGKILL {
		// A stopped process only dies once continued on some kernels'
		// accounting of the group; SIGCONT after SIGKILL is harmless.
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGCONT)
	}
}

// Processes returns the commands still running.
func (s *Sandbox) Processes() []*Process {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := make([]*Process, 0, len(s.procs))
	for p := range s.procs {
		ps = append(ps, p)
	}
	return ps
}

// Pause puts a Running sandbox to sleep: its ports stop answering through
// the Proxy and its processes are frozen (Freeze) or killed (Kill, waiting
// for them to exit or ctx to end).
func (s *Sandbox) Pause(ctx context.Context, mode PauseMode) error {
	s.mu.Lock()
	if s.state != Running {
		st := s.state
		s.mu.Unlock()
		if st == Deleted {
			return ErrNotFound
		}
		return fmt.Errorf("%w: %s", ErrNotRunning, st)
	}
	if mode == Freeze {
		s.state = Paused
	} else {
		s.state = Stopped
	}
	// Signal under the lock so a concurrent Resume cannot send SIGCONT
	// before the SIGSTOP and leave a "running" sandbox frozen.
	sig := syscall.SIGSTOP
	if mode == Kill {
		sig = syscall.SIGKILL
	}
	procs := make([]*Process, 0, len(s.procs))
	for p := range s.procs {
		procs = append(procs, p)
		p.signal(sig)
	}
	s.signalMarked(sig)
	s.mu.Unlock()
	if mode == Kill {
		return s.waitGone(ctx, procs)
	}
	return nil
}

// signalMarked signals every process of the sandbox, also those that left
// their command's process group.
func (s *Sandbox) signalMarked(sig syscall.Signal) {
	for _, pid := range marked(s.marker) {
		_ = syscall.Kill(pid, sig)
		if sig == syscall.SIGKILL {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}
}

// Leftovers lists the live processes of the sandbox (Linux; elsewhere
// none): after Destroy or a Kill-mode Pause it must be empty.
func (s *Sandbox) Leftovers() []int { return marked(s.marker) }

// waitGone waits for the commands and every marked process to exit. The
// marked ones are not our children, so there is nothing to wait on but
// /proc: it is polled with a growing interval, bounded by ctx.
func (s *Sandbox) waitGone(ctx context.Context, procs []*Process) error {
	if err := waitAll(ctx, procs); err != nil {
		return err
	}
	d := time.Millisecond
	for {
		left := marked(s.marker)
		if len(left) == 0 {
			return nil
		}
		for _, pid := range left {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("fakesandbox: processes %v still alive: %w", left, ctx.Err())
		}
		d = min(2*d, 50*time.Millisecond)
	}
}

// Resume wakes a Paused or Stopped sandbox: frozen processes continue; a
// Stopped one comes back with nothing running.
func (s *Sandbox) Resume() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state {
	case Paused:
		for p := range s.procs {
			p.signal(syscall.SIGCONT)
		}
		s.signalMarked(syscall.SIGCONT)
	case Stopped:
	case Running:
		return nil
	case Deleted:
		return ErrNotFound
	default:
		return fmt.Errorf("fakesandbox: Resume in state %s", s.state)
	}
	s.state = Running
	return nil
}

// Destroy kills every process group, waits for them (bounded by ctx),
// removes the sandbox's directory and marks it Deleted. Destroying twice is
// not an error.
func (s *Sandbox) Destroy(ctx context.Context) error {
	s.mu.Lock()
	if s.state == Deleted {
		s.mu.Unlock()
		return nil
	}
	s.state = Deleted
	procs := make([]*Process, 0, len(s.procs))
	for p := range s.procs {
		procs = append(procs, p)
		p.kill()
	}
	s.signalMarked(syscall.SIGKILL)
	s.mu.Unlock()
	if err := s.waitGone(ctx, procs); err != nil {
		return err
	}
	if err := os.RemoveAll(s.root); err != nil {
		return fmt.Errorf("fakesandbox: %w", err)
	}
	return nil
}

func waitAll(ctx context.Context, procs []*Process) error {
	for _, p := range procs {
		select {
		case <-p.done:
		case <-ctx.Done():
			return fmt.Errorf("fakesandbox: waiting for processes: %w", ctx.Err())
		}
	}
	return nil
}

// WriteFile writes a file at an absolute sandbox path, creating parent
// directories, as vendors' file-upload APIs do. A path as the sandbox's
// commands see it (under the host directory their $HOME names) is the same
// file, so a provider may upload to "$HOME/..." as printed by a command.
// Paths that would leave the sandbox, also through a symlink, are refused
// with ErrEscape.
func (s *Sandbox) WriteFile(p string, data []byte, perm fs.FileMode) error {
	rel, r, err := s.open(p)
	if err != nil {
		return err
	}
	defer r.Close()
	if dir := path.Dir(rel); dir != "." {
		if err := r.MkdirAll(dir, 0o755); err != nil {
			return wrapFS(err)
		}
	}
	if err := r.WriteFile(rel, data, perm); err != nil {
		return wrapFS(err)
	}
	return nil
}

// ReadFile reads a file at an absolute sandbox path (vendors' download).
func (s *Sandbox) ReadFile(p string) ([]byte, error) {
	rel, r, err := s.open(p)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b, err := r.ReadFile(rel)
	if err != nil {
		return nil, wrapFS(err)
	}
	return b, nil
}

// open resolves a sandbox path relative to an os.Root on the sandbox
// directory, which refuses ".." and symlinks that lead out of it. A relative
// path is taken from HOME, like a shell inside the sandbox would.
func (s *Sandbox) open(p string) (string, *os.Root, error) {
	if s.State() == Deleted {
		return "", nil, ErrNotFound
	}
	if !path.IsAbs(p) {
		p = path.Join(s.home, p)
	} else if rest, ok := strings.CutPrefix(p, s.root+"/"); ok {
		// A path as the sandbox's commands see it ($HOME is a host path):
		// the same file.
		p = "/" + rest
	}
	for _, el := range strings.Split(p, "/") {
		if el == ".." {
			return "", nil, fmt.Errorf("%w: %q", ErrEscape, p)
		}
	}
	rel := path.Clean(p)[1:]
	if rel == "" {
		return "", nil, fmt.Errorf("fakesandbox: %q is the root directory", p)
	}
	r, err := os.OpenRoot(s.root)
	if err != nil {
		return "", nil, fmt.Errorf("fakesandbox: %w", err)
	}
	return rel, r, nil
}

func wrapFS(err error) error {
	// os.Root's escape error is unexported and may be nested in several
	// PathErrors (mkdirat → statat); its text is all there is to match.
	if strings.Contains(err.Error(), "path escapes from parent") {
		return fmt.Errorf("%w: %w", ErrEscape, err)
	}
	return fmt.Errorf("fakesandbox: %w", err)
}

// lockedBuffer is an output sink that the command's copy goroutine writes
// while tests read it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}
