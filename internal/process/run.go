package process

import (
	"context"
	"os"
	"syscall"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/internal/problem"
)

// maxTimerMs keeps millisecond durations far from time.Duration overflow.
const maxTimerMs = 1 << 40

// capture reads f to EOF keeping the first limit bytes.
type capture struct {
	data      []byte
	truncated bool
	done      chan struct{}
}

func startCapture(f *os.File, limit uint64) *capture {
	c := &capture{done: make(chan struct{})}
	go func() {
		defer close(c.done)
		buf := make([]byte, readChunk)
		for {
			n, err := f.Read(buf)
			if n > 0 {
				room := limit - uint64(len(c.data))
				if uint64(n) > room {
					c.truncated = true
					n = int(room)
				}
				c.data = append(c.data, buf[:n]...)
			}
			if err != nil {
				return
			}
		}
	}()
	return c
}

// Run runs a command to completion in its own process group and returns its
// exit code and captured output. On timeout, ctx cancellation or Close the
// whole group is killed. Errors are *problem.Problem (or ctx's error).
func (m *Manager) Run(ctx context.Context, req RunRequest) (RunResponse, error) {
	if req.Command == "" {
		return RunResponse{}, problem.Invalid("command must not be empty")
	}
	if !m.track() {
		return RunResponse{}, errShuttingDown()
	}
	defer m.wg.Done()
	cfg := m.Config()

	timeoutMs := cfg.DefaultRunTimeoutMs
	if req.TimeoutMs != nil {
		timeoutMs = *req.TimeoutMs
	}
	timeoutMs = min(timeoutMs, cfg.MaxRunTimeoutMs, maxTimerMs)
	limit := cfg.MaxOutputBytes
	if req.MaxOutputBytes != nil {
		limit = min(*req.MaxOutputBytes, limit)
	}

	start := time.Now()
	sp, err := spawn(spawnSpec{base: m.env, command: req.Command, args: req.Args, cwd: req.Cwd, env: req.Env})
	if err != nil {
		return RunResponse{}, spawnProblem(err)
	}
	stdout, stderr := startCapture(sp.stdout, limit), startCapture(sp.stderr, limit)
	exitable := make(chan struct{})
	go func() {
		_ = waitNoReap(sp.pid)
		close(exitable)
	}()

	timer := time.NewTimer(time.Duration(timeoutMs) * time.Millisecond)
	defer timer.Stop()
	timedOut, killed := false, false
	select {
	case <-exitable:
	case <-timer.C:
		timedOut = true
	case <-ctx.Done():
	case <-m.ctx.Done():
	}
	select {
	case <-exitable:
	default:
		// Still running: kill the group while the leader is unreaped.
		killed = true
		_ = syscall.Kill(-sp.pid, syscall.SIGKILL)
		<-exitable
	}
	if !killed {
		timedOut = false
	}
	code, _ := reap(sp.pid)

	// Output: the group is dead if we killed it, so EOF is immediate unless
	// something escaped the group; after a normal exit, background children
	// may still hold the pipes. Either way wait at most DrainGrace.
	grace := time.NewTimer(m.grace)
	defer grace.Stop()
	for _, c := range []*capture{stdout, stderr} {
		select {
		case <-c.done:
		case <-grace.C:
			grace.Reset(0)
		case <-ctx.Done():
		case <-m.ctx.Done():
		}
	}
	_ = sp.stdout.Close()
	_ = sp.stderr.Close()
	<-stdout.done
	<-stderr.done

	if killed {
		code = nil
	}
	if killed && !timedOut {
		if err := ctx.Err(); err != nil {
			return RunResponse{}, err
		}
		return RunResponse{}, errShuttingDown()
	}
	return RunResponse{
		ExitCode:        code,
		TimedOut:        timedOut,
		Stdout:          lossyUTF8(stdout.data),
		Stderr:          lossyUTF8(stderr.data),
		StdoutTruncated: stdout.truncated,
		StderrTruncated: stderr.truncated,
		DurationMs:      uint64(time.Since(start).Milliseconds()),
	}, nil
}
