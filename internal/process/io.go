package process

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/internal/problem"
)

func errNotRunning() *problem.Problem { return problem.ConflictMsg("process is not running") }

func errNotTTY() *problem.Problem {
	return problem.ConflictMsg("process is not running in tty mode")
}

// checkInputSize enforces maxInputBytesPerRequest (413, as upstream).
func (m *Manager) checkInputSize(n int) error {
	if limit := m.Config().MaxInputBytesPerRequest; uint64(n) > limit {
		return problem.PayloadTooLarge(fmt.Sprintf("input payload exceeds maxInputBytesPerRequest (%d)", limit))
	}
	return nil
}

// Input writes data to the process's stdin (the PTY for tty processes) and
// returns how many bytes were written. Writes are serialised per process and
// a write blocked on a full pipe is abandoned when ctx ends.
func (m *Manager) Input(ctx context.Context, id string, data []byte) (int, error) {
	p, err := m.lookup(id)
	if err != nil {
		return 0, err
	}
	return p.write(ctx, data)
}

func (p *proc) write(ctx context.Context, data []byte) (int, error) {
	select {
	case p.inputSem <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-p.exited:
		return 0, errNotRunning()
	}
	defer func() { <-p.inputSem }()
	if !p.isRunning() {
		return 0, errNotRunning()
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = p.stdin.SetWriteDeadline(time.Unix(1, 0))
		close(fired)
	})
	n, err := p.stdin.Write(data)
	if !stop() {
		<-fired
		_ = p.stdin.SetWriteDeadline(time.Time{})
	}
	if err != nil {
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
		// Closed at exit, or EPIPE: the reader side is gone.
		return n, errNotRunning()
	}
	return n, nil
}

// Resize sets a tty process's terminal size (TIOCSWINSZ, then SIGWINCH to
// its process group, as upstream).
func (m *Manager) Resize(id string, cols, rows uint16) error {
	p, err := m.lookup(id)
	if err != nil {
		return err
	}
	return p.resize(cols, rows)
}

func (p *proc) resize(cols, rows uint16) error {
	if !p.tty {
		return errNotTTY()
	}
	if !p.isRunning() {
		return errNotRunning()
	}
	if err := setWinsize(p.master, cols, rows); err != nil {
		if !p.isRunning() || errors.Is(err, syscall.EBADF) {
			return errNotRunning()
		}
		return problem.Stream("failed to resize terminal: " + osErrorString(err))
	}
	p.signal(syscall.SIGWINCH, false)
	return nil
}
