//go:build unix && !linux

package daemon

import (
	"context"
	"fmt"
	"syscall"
	"time"
)

// isDaemon, without /proc: the process exists. The PID file is trusted
// for what it names (Linux also checks the command line and port).
func isDaemon(pid, _ int) bool {
	return syscall.Kill(pid, 0) == nil
}

// terminate sends SIGTERM, then SIGKILL after timeout, polling for the
// exit (no pidfd outside Linux).
func terminate(ctx context.Context, pid int, timeout time.Duration) error {
	if err := syscall.Kill(pid, syscall.SIGTERM); err == syscall.ESRCH {
		return nil
	} else if err != nil {
		return fmt.Errorf("SIGTERM %d: %w", pid, err)
	}
	if waitGone(ctx, pid, timeout) {
		return nil
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	if !waitGone(ctx, pid, 5*time.Second) {
		return fmt.Errorf("daemon (PID %d) did not exit after SIGKILL", pid)
	}
	return nil
}

func waitGone(ctx context.Context, pid int, d time.Duration) bool {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	deadline := time.After(d)
	for {
		if syscall.Kill(pid, 0) == syscall.ESRCH {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-deadline:
			return false
		case <-t.C:
		}
	}
}
