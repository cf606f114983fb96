// Package daemon runs `sandbox-agent server` in the background, one per
// host and port, with upstream's files under <data dir>/daemon:
// daemon-<host>-<port>.pid (the PID), .version (the build that started it)
// and .log (the server's output, appended across restarts).
//
// Compared with a bare PID file, a recorded PID only counts as a running
// daemon when that process is alive, not a zombie, and is a `server` on the
// same port, so a stale file or a reused PID is never signalled.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"github.com/sandbox-agent-go/sandbox-agent/internal/serverprobe"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gofrs/flock"
)

// Defaults.
const (
	DefaultStartTimeout = 30 * time.Second
	DefaultStopTimeout  = 10 * time.Second
)

// ErrNotRunning is returned by Stop when no daemon runs for the address.
var ErrNotRunning = errors.New("daemon is not running")

// Options address one daemon.
type Options struct {
	// DataDir is the sandbox-agent data directory; the files go to
	// DataDir/daemon.
	DataDir string
	Host    string
	Port    int
	// Token, when set, is required by the server and sent by the health
	// check. It reaches the server through its environment
	// (SANDBOX_AGENT_TOKEN), never its command line, unless TokenFile is
	// set.
	Token string
	// TokenFile, when set, is passed to the server as --token-file (Token
	// must hold its content, for the health check).
	TokenFile string
	// Executable is the sandbox-agent binary to run.
	Executable string
	// Version is recorded at start and compared by Status.
	Version string
	// ServerArgs are appended to `server --host H --port P`.
	ServerArgs []string
	// Env is the server's environment (nil: this process's).
	Env []string
	// StartTimeout bounds the wait for /v1/health (default 30 s).
	StartTimeout time.Duration
	// StopTimeout is how long Stop waits after SIGTERM before SIGKILL
	// (default 10 s).
	StopTimeout time.Duration
}

// The server's token variables (cmd/sandbox-agent server reads them).
const (
	tokenEnv     = "SANDBOX_AGENT_TOKEN"
	tokenFileEnv = "SANDBOX_AGENT_TOKEN_FILE"
)

// Files are the daemon's paths.
type Files struct {
	PID, Version, Log, Lock string
}

// Files returns the paths for o's host and port.
func (o Options) Files() Files {
	h := strings.NewReplacer(".", "-", ":", "-", "[", "", "]", "").Replace(o.Host)
	base := filepath.Join(o.DataDir, "daemon", fmt.Sprintf("daemon-%s-%d", h, o.Port))
	return Files{PID: base + ".pid", Version: base + ".version", Log: base + ".log", Lock: base + ".lock"}
}

// State is what the files and the process table say.
type State struct {
	Files Files
	// Running: the recorded process is a live server on this port.
	Running bool
	PID     int
	// Version the running daemon was started by ("" if unknown).
	Version string
	// Stale: a PID file exists but its process is not a live daemon.
	Stale bool
}

// Outdated reports whether the running daemon was started by another build.
func (s State) Outdated(version string) bool { return s.Running && s.Version != version }

// Status reads the daemon's state.
func Status(o Options) (State, error) {
	st := State{Files: o.Files()}
	b, err := os.ReadFile(st.Files.PID)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		st.Stale = true
		return st, nil
	}
	st.PID = pid
	if !isDaemon(pid, o.Port) {
		st.Stale = true
		return st, nil
	}
	st.Running = true
	if v, err := os.ReadFile(st.Files.Version); err == nil {
		st.Version = strings.TrimSpace(string(v))
	}
	return st, nil
}

// lock serialises start and stop of one daemon across processes.
func lock(ctx context.Context, f Files) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(f.Lock), 0o755); err != nil {
		return nil, err
	}
	fl := flock.New(f.Lock)
	ok, err := fl.TryLockContext(ctx, 50*time.Millisecond)
	if err != nil || !ok {
		if err == nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("waiting for another start or stop of this daemon (%s): %w", f.Lock, err)
	}
	return func() { _ = fl.Unlock() }, nil
}

// Start starts the daemon unless one is running. With upgrade, a daemon
// started by another version is stopped and replaced. It returns once the
// new server answers /v1/health; if the server exits or does not become
// healthy in time, it is stopped, its files are removed, and the error
// carries the end of its log.
func Start(ctx context.Context, o Options, upgrade bool) (st State, started bool, err error) {
	files := o.Files()
	unlock, err := lock(ctx, files)
	if err != nil {
		return State{Files: files}, false, err
	}
	defer unlock()
	st, err = Status(o)
	if err != nil {
		return st, false, err
	}
	if st.Running {
		if !upgrade || !st.Outdated(o.Version) {
			return st, false, nil
		}
		if err := stop(ctx, o, st); err != nil {
			return st, false, fmt.Errorf("stopping the outdated daemon: %w", err)
		}
	}
	return start(ctx, o)
}

func start(ctx context.Context, o Options) (State, bool, error) {
	files := o.Files()
	st := State{Files: files}
	addr := net.JoinHostPort(serverprobe.DialHost(o.Host), strconv.Itoa(o.Port))
	// Something else on the port would answer the health check for a
	// server that failed to bind.
	if c, err := (&net.Dialer{Timeout: 300 * time.Millisecond}).DialContext(ctx, "tcp", addr); err == nil {
		c.Close()
		return st, false, fmt.Errorf("%s is already in use by another process (not a daemon of %s)", addr, filepath.Dir(files.PID))
	}
	logf, err := os.OpenFile(files.Log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return st, false, err
	}
	defer logf.Close()
	logStart, _ := logf.Seek(0, io.SeekEnd)
	args := []string{"server", "--host", o.Host, "--port", strconv.Itoa(o.Port)}
	env := o.Env
	if env == nil {
		env = os.Environ()
	}
	// The server reads these; only the ones chosen here may apply.
	env = slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		return strings.HasPrefix(kv, tokenEnv+"=") || strings.HasPrefix(kv, tokenFileEnv+"=")
	})
	switch {
	case o.TokenFile != "":
		args = append(args, "--token-file", o.TokenFile)
	case o.Token != "":
		env = append(env, tokenEnv+"="+o.Token)
	}
	args = append(args, o.ServerArgs...)
	cmd := exec.Command(o.Executable, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = "/"
	// A session of its own: no controlling terminal, no SIGHUP or Ctrl-C
	// from the shell that started it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return st, false, fmt.Errorf("starting %s: %w", o.Executable, err)
	}
	pid := cmd.Process.Pid
	fail := func(cause error) (State, bool, error) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		_ = cmd.Wait()
		_ = os.Remove(files.PID)
		_ = os.Remove(files.Version)
		return st, false, fmt.Errorf("%w; last lines of %s:\n%s", cause, files.Log, tail(files.Log, logStart, 20))
	}
	if err := writeAtomic(files.PID, strconv.Itoa(pid)+"\n"); err != nil {
		return fail(err)
	}
	if err := writeAtomic(files.Version, o.Version+"\n"); err != nil {
		return fail(err)
	}
	timeout := o.StartTimeout
	if timeout <= 0 {
		timeout = DefaultStartTimeout
	}
	baseURL := "http://" + addr
	// Our child until we return: reap it here if it died.
	var ws syscall.WaitStatus
	exited := func() bool {
		p, _ := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		if p != pid {
			return false
		}
		_ = cmd.Process.Release()
		_ = os.Remove(files.PID)
		_ = os.Remove(files.Version)
		return true
	}
	errExited := errors.New("the server exited during start")
	err = serverprobe.Wait(ctx, serverprobe.WaitOptions{
		BaseURL: baseURL, Token: o.Token, Timeout: timeout,
		Alive: func() error {
			if exited() {
				return errExited
			}
			return nil
		},
	})
	switch {
	case errors.Is(err, errExited):
		return st, false, fmt.Errorf("the server exited during start (%s); last lines of %s:\n%s", exitText(ws), files.Log, tail(files.Log, logStart, 20))
	case errors.Is(err, serverprobe.ErrTimeout):
		return fail(fmt.Errorf("the server did not answer %s/v1/health within %s", baseURL, timeout))
	case err != nil:
		return fail(err)
	case exited():
		// Somebody else answered and our server died.
		return st, false, fmt.Errorf("the server exited during start (%s) while another process answered on %s; last lines of %s:\n%s", exitText(ws), addr, files.Log, tail(files.Log, logStart, 20))
	}
	// From here the daemon outlives us; its new parent reaps it.
	_ = cmd.Process.Release()
	st.Running, st.PID, st.Version = true, pid, o.Version
	return st, true, nil
}

func exitText(ws syscall.WaitStatus) string {
	if ws.Signaled() {
		return "signal " + ws.Signal().String()
	}
	return "exit code " + strconv.Itoa(ws.ExitStatus())
}

// Stop stops the daemon: SIGTERM (the server then stops its agents and
// exits), SIGKILL after StopTimeout. A stale PID file is removed and
// reported as ErrNotRunning with st.Stale set.
func Stop(ctx context.Context, o Options) (State, error) {
	files := o.Files()
	unlock, err := lock(ctx, files)
	if err != nil {
		return State{Files: files}, err
	}
	defer unlock()
	st, err := Status(o)
	if err != nil {
		return st, err
	}
	if !st.Running {
		if st.Stale {
			_ = os.Remove(files.PID)
			_ = os.Remove(files.Version)
		}
		return st, ErrNotRunning
	}
	return st, stop(ctx, o, st)
}

func stop(ctx context.Context, o Options, st State) error {
	timeout := o.StopTimeout
	if timeout <= 0 {
		timeout = DefaultStopTimeout
	}
	if err := terminate(ctx, st.PID, timeout); err != nil {
		return err
	}
	_ = os.Remove(st.Files.PID)
	_ = os.Remove(st.Files.Version)
	return nil
}

// writeAtomic replaces path with content via a temporary sibling.
func writeAtomic(path, content string) error {
	tmp := path + ".tmp-" + strconv.Itoa(os.Getpid())
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

// tail returns the last n lines written to path after offset.
func tail(path string, offset int64, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	defer f.Close()
	const maxTail = 64 << 10
	if end, err := f.Seek(0, io.SeekEnd); err == nil && end-offset > maxTail {
		offset = end - maxTail
	}
	_, _ = f.Seek(offset, io.SeekStart)
	b, _ := io.ReadAll(io.LimitReader(f, maxTail))
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
