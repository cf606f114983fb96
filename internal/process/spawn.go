package process

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"
	"unsafe"

	"github.com/creack/pty"

	"github.com/sandbox-agent-go/sandbox-agent/internal/problem"
	"github.com/sandbox-agent-go/sandbox-agent/internal/procwait"
)

// readChunk is the read size of output pumps: one read is one log entry.
const readChunk = 16 << 10

// Default PTY geometry and terminal type (upstream's).
const (
	defaultCols = 80
	defaultRows = 24
	ptyTerm     = "xterm-256color"
)

type spawnSpec struct {
	base    []string // the environment env is overlaid on (Options.Env)
	command string
	args    []string
	cwd     *string
	env     map[string]string
	tty     bool
	stdin   bool // give the child a stdin pipe (else /dev/null); PTYs always have one
}

type spawned struct {
	pid    int
	stdin  *os.File // pipe write end or PTY master; nil for /dev/null
	stdout *os.File // pipe read ends (pipe mode)
	stderr *os.File
	master *os.File // PTY master (tty mode); also stdin and the only output
}

func (s *spawned) closeAll() {
	for _, f := range []*os.File{s.stdin, s.stdout, s.stderr, s.master} {
		if f != nil {
			_ = f.Close()
		}
	}
}

// spawn starts spec in its own process group (pipes) or its own session with
// the PTY as controlling terminal (tty). The parent ends it keeps are
// non-blocking and registered with the runtime poller, so Close unblocks
// their readers and writers and deadlines work.
func spawn(spec spawnSpec) (*spawned, error) {
	env := mergeEnv(spec.base, spec.env, spec.tty)
	dir := ""
	if spec.cwd != nil {
		if *spec.cwd == "" {
			return nil, syscall.ENOENT // chdir("") fails, as upstream's spawn does
		}
		dir = *spec.cwd
	}
	path, err := lookPathCached(spec.command, env, dir)
	if err != nil {
		return nil, err
	}
	argv := append([]string{spec.command}, spec.args...)
	if spec.tty {
		return spawnPTY(path, argv, env, dir)
	}
	return spawnPipes(path, argv, env, dir, spec.stdin)
}

// devNull is one read-only /dev/null shared by every child without a stdin
// pipe: opening it per spawn cost as much as a pipe. ForkExec dup2s it into
// the child, so sharing the descriptor is safe.
var devNull = sync.OnceValues(func() (*os.File, error) { return os.Open(os.DevNull) })

// lookPathCache remembers recent PATH resolutions for lookPathTTL. A hit is
// re-checked with one stat of the resolved file, so a removed or replaced
// binary is noticed at once; only a new binary earlier in PATH takes up to
// the TTL to win. Resolving walks PATH with a stat per entry, which was a
// seventh of the CPU of a /v1/processes/run.
var lookPathCache struct {
	sync.Mutex
	m map[string]lookPathHit // PATH + "\x00" + dir + "\x00" + command
}

type lookPathHit struct {
	path string
	at   time.Time
}

const (
	lookPathTTL     = time.Second
	lookPathEntries = 256 // the map is reset when it grows past this
)

func spawnPipes(path string, argv, env []string, dir string, withStdin bool) (_ *spawned, err error) {
	var childEnds, parentEnds []*os.File
	defer func() {
		for _, f := range childEnds {
			_ = f.Close()
		}
		if err != nil {
			for _, f := range parentEnds {
				_ = f.Close()
			}
		}
	}()
	sp := &spawned{}
	var stdinChild *os.File
	if withStdin {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		childEnds, parentEnds = append(childEnds, r), append(parentEnds, w)
		stdinChild, sp.stdin = r, w
	} else {
		f, err := devNull()
		if err != nil {
			return nil, err
		}
		stdinChild = f // shared and kept open: not a child end to close
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	childEnds, parentEnds = append(childEnds, outW), append(parentEnds, outR)
	errR, errW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	childEnds, parentEnds = append(childEnds, errW), append(parentEnds, errR)
	sp.stdout, sp.stderr = outR, errR
	// Fd puts the child ends in blocking mode, which is what the child wants;
	// the parent ends are separate open file descriptions and stay pollable.
	sp.pid, err = syscall.ForkExec(path, argv, &syscall.ProcAttr{
		Dir:   dir,
		Env:   env,
		Files: []uintptr{stdinChild.Fd(), outW.Fd(), errW.Fd()},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	if err != nil {
		return nil, err
	}
	return sp, nil
}

func spawnPTY(path string, argv, env []string, dir string) (*spawned, error) {
	master, tty, err := pty.Open()
	if err != nil {
		return nil, err
	}
	defer func() { _ = tty.Close() }()
	if err := pty.Setsize(tty, &pty.Winsize{Cols: defaultCols, Rows: defaultRows}); err != nil {
		_ = master.Close()
		return nil, err
	}
	// pty.Open leaves the master in blocking mode (its ioctls go through
	// Fd). Re-wrap a non-blocking duplicate so reads are poller-driven and
	// Close interrupts them.
	pm, err := pollable(master)
	if err != nil {
		return nil, err
	}
	fd := tty.Fd()
	pid, err := syscall.ForkExec(path, argv, &syscall.ProcAttr{
		Dir:   dir,
		Env:   env,
		Files: []uintptr{fd, fd, fd},
		Sys:   &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0},
	})
	if err != nil {
		_ = pm.Close()
		return nil, err
	}
	return &spawned{pid: pid, stdin: pm, master: pm}, nil
}

// pollable returns a non-blocking, poller-registered duplicate of f and
// closes f.
func pollable(f *os.File) (*os.File, error) {
	defer func() { _ = f.Close() }()
	nfd, _, errno := syscall.Syscall(syscall.SYS_FCNTL, f.Fd(), syscall.F_DUPFD_CLOEXEC, 0)
	if errno != 0 {
		return nil, errno
	}
	if err := syscall.SetNonblock(int(nfd), true); err != nil {
		_ = syscall.Close(int(nfd))
		return nil, err
	}
	return os.NewFile(nfd, f.Name()), nil
}

// setWinsize resizes the PTY through the poller-safe raw connection (the
// creack/pty helpers use Fd, which would switch the master to blocking).
func setWinsize(f *os.File, cols, rows uint16) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	ws := pty.Winsize{Cols: cols, Rows: rows}
	var errno syscall.Errno
	if err := rc.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCSWINSZ, uintptr(unsafe.Pointer(&ws)))
	}); err != nil {
		return err
	}
	if errno != 0 {
		return errno
	}
	return nil
}

// mergeEnv overlays extra on base (later keys win); PTYs get TERM unless
// the request sets it.
func mergeEnv(base []string, extra map[string]string, tty bool) []string {
	idx := make(map[string]int, len(base)+len(extra)+1)
	out := make([]string, 0, len(base)+len(extra)+1)
	set := func(k, v string) {
		kv := k + "=" + v
		if i, ok := idx[k]; ok {
			out[i] = kv
			return
		}
		idx[k] = len(out)
		out = append(out, kv)
	}
	for _, kv := range base {
		if k, v, ok := strings.Cut(kv, "="); ok {
			set(k, v)
		}
	}
	if tty {
		set("TERM", ptyTerm)
	}
	for k, v := range extra {
		set(k, v)
	}
	return out
}

func lookPathCached(command string, env []string, dir string) (string, error) {
	if strings.Contains(command, "/") {
		return command, nil
	}
	pathVar := ""
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], "PATH="); ok {
			pathVar = v
			break
		}
	}
	key := pathVar + "\x00" + dir + "\x00" + command
	c := &lookPathCache
	c.Lock()
	hit, ok := c.m[key]
	c.Unlock()
	if ok && time.Since(hit.at) < lookPathTTL {
		check := hit.path
		if !strings.HasPrefix(check, "/") && dir != "" {
			check = dir + "/" + check
		}
		if fi, err := os.Stat(check); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return hit.path, nil
		}
	}
	path, err := lookPath(command, env, dir)
	c.Lock()
	if len(c.m) >= lookPathEntries {
		c.m = nil
	}
	if err == nil {
		if c.m == nil {
			c.m = make(map[string]lookPathHit)
		}
		c.m[key] = lookPathHit{path: path, at: time.Now()}
	}
	c.Unlock()
	return path, err
}

// lookPath resolves command like execvp does with the child's PATH: a name
// with a slash is used as is (relative to the child's cwd), otherwise every
// PATH entry is tried. Errors are errnos so they format like upstream's.
func lookPath(command string, env []string, dir string) (string, error) {
	if strings.Contains(command, "/") {
		return command, nil
	}
	pathVar, found := "", false
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], "PATH="); ok {
			pathVar, found = v, true
			break
		}
	}
	if !found {
		pathVar = "/bin:/usr/bin"
	}
	var firstErr error = syscall.ENOENT
	for _, d := range strings.Split(pathVar, ":") {
		if d == "" {
			d = "."
		}
		cand := d + "/" + command
		check := cand
		if !strings.HasPrefix(cand, "/") && dir != "" {
			check = dir + "/" + cand
		}
		fi, err := os.Stat(check)
		if err != nil {
			continue
		}
		if fi.IsDir() || fi.Mode()&0o111 == 0 {
			firstErr = syscall.EACCES
			continue
		}
		return cand, nil
	}
	return "", firstErr
}

// osErrorString formats err as Rust's io::Error does: "<strerror> (os error N)".
func osErrorString(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		s := errno.Error()
		if r, n := utf8.DecodeRuneInString(s); n > 0 {
			s = string(unicode.ToUpper(r)) + s[n:]
		}
		return fmt.Sprintf("%s (os error %d)", s, int(errno))
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return osErrorString(pe.Err)
	}
	return err.Error()
}

func spawnProblem(err error) *problem.Problem {
	return problem.Stream("failed to spawn process: " + osErrorString(err))
}

// waitNoReap blocks until pid is waitable without reaping it, so its pid
// (and process group id) stay reserved while the caller decides whether to
// signal the group.
func waitNoReap(pid int) error {
	if err := procwait.Pidfd(pid); err == nil {
		return nil
	}
	var info [128]byte // siginfo_t
	for {
		_, _, e := syscall.Syscall6(syscall.SYS_WAITID, 1 /* P_PID */, uintptr(pid),
			uintptr(unsafe.Pointer(&info[0])), syscall.WEXITED|syscall.WNOWAIT, 0, 0)
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return e
		}
		return nil
	}
}

// reap collects pid and returns its exit code (nil when a signal killed it).
func reap(pid int) (*int, error) {
	var ws syscall.WaitStatus
	for {
		_, err := syscall.Wait4(pid, &ws, 0, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		break
	}
	if ws.Exited() {
		c := ws.ExitStatus()
		return &c, nil
	}
	return nil, nil
}

// killLeftovers SIGKILLs what is left of the group (or PTY session) of an
// already reaped leader. If a process now holds the leader's pid, the number
// was recycled (our group, having no leader, cannot then be told apart), so
// nothing is sent: killing a stranger is worse than leaving a stray.
func killLeftovers(id int, session bool) {
	if err := syscall.Kill(id, 0); err == syscall.ESRCH {
		signalTree(id, session, syscall.SIGKILL)
	}
}

// signalTree sends sig to process group id and, for a PTY session, to the
// members of session id in other groups too (a job-control shell puts each
// job in its own group).
func signalTree(id int, session bool, sig syscall.Signal) {
	_ = syscall.Kill(-id, sig)
	if session {
		for _, pid := range sessionMembers(id) {
			_ = syscall.Kill(pid, sig)
		}
	}
}

// sessionMembers lists the processes of session sid outside group sid, from
// /proc (nil when /proc is unavailable).
func sessionMembers(sid int) []int {
	d, err := os.Open("/proc")
	if err != nil {
		return nil
	}
	names, _ := d.Readdirnames(-1)
	_ = d.Close()
	var out []int
	want := strconv.Itoa(sid)
	for _, n := range names {
		pid, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		raw, err := os.ReadFile("/proc/" + n + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp session ...; comm may hold spaces and parens.
		i := bytes.LastIndexByte(raw, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(raw[i+1:]))
		if len(f) > 3 && f[3] == want && f[2] != want {
			out = append(out, pid)
		}
	}
	return out
}
