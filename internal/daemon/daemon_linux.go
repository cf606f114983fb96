package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// isDaemon reports whether pid is a live (not zombie) `server` process
// listening on port, judged from /proc.
func isDaemon(pid, port int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name, which may itself
	// contain spaces or parentheses.
	if i := bytes.LastIndexByte(stat, ')'); i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' || stat[i+2] == 'X' {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	server, onPort := false, false
	for i, a := range args {
		if a == "server" {
			server = true
		}
		if (a == "--port" || a == "-p") && i+1 < len(args) && args[i+1] == strconv.Itoa(port) {
			onPort = true
		}
	}
	return server && onPort
}

// terminate sends SIGTERM, then SIGKILL after timeout, and waits for the
// exit. A pidfd pins the process: the signals cannot reach another process
// that reused the PID meanwhile.
func terminate(ctx context.Context, pid int, timeout time.Duration) error {
	pidfd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) { // exited since Status looked
		return nil
	}
	if err != nil {
		return fmt.Errorf("open pidfd for %d: %w", pid, err)
	}
	defer unix.Close(pidfd)
	if err := unix.PidfdSendSignal(pidfd, unix.SIGTERM, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("SIGTERM %d: %w", pid, err)
	}
	if !waitExit(ctx, pidfd, timeout) {
		_ = unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0)
		if !waitExit(ctx, pidfd, 5*time.Second) {
			return fmt.Errorf("daemon (PID %d) did not exit after SIGKILL", pid)
		}
	}
	return nil
}

// waitExit waits until the process behind pidfd has exited (a pidfd turns
// readable then, zombie or not), for at most d or until ctx ends.
func waitExit(ctx context.Context, pidfd int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 || ctx.Err() != nil {
			return false
		}
		// Short slices keep ctx responsive without a goroutine.
		ms := int(min(left, 100*time.Millisecond) / time.Millisecond)
		fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, max(ms, 1))
		if err != nil && !errors.Is(err, unix.EINTR) {
			return false
		}
		if n > 0 {
			return true
		}
	}
}
