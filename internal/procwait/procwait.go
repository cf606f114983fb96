// Package procwait waits for a child process to exit without reaping it and
// without pinning an OS thread: the wait runs on the Go runtime's netpoller
// through a pidfd (Linux ≥ 5.3). A blocking wait4/waitid (what
// os/exec.Cmd.Wait does) parks one OS thread per waiting process, so a
// server with hundreds of agents would keep hundreds of threads.
package procwait

import (
	"os"
	"syscall"
	"unsafe"
)

// Pidfd blocks until pid (a child of this process) has exited, leaving it
// unreaped (a zombie), so its pid and process group id stay reserved until
// the caller reaps it (e.g. with exec.Cmd.Wait, which then returns at once).
// It returns an error when pidfds are unavailable; the caller then falls back
// to a blocking wait.
func Pidfd(pid int) error {
	const sysPidfdOpen, pidfdNonblock, pPidfd = 434, syscall.O_NONBLOCK, 3
	fd, _, e := syscall.Syscall(sysPidfdOpen, uintptr(pid), pidfdNonblock, 0)
	if e != 0 {
		return e
	}
	f := os.NewFile(fd, "pidfd")
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var info [128]byte // siginfo_t; si_pid at offset 16 is set once exited
	var werr error
	err = rc.Read(func(fd uintptr) bool {
		clear(info[:])
		_, _, e := syscall.Syscall6(syscall.SYS_WAITID, pPidfd, fd,
			uintptr(unsafe.Pointer(&info[0])), syscall.WEXITED|syscall.WNOWAIT|syscall.WNOHANG, 0, 0)
		if e == syscall.EINTR {
			return false
		}
		if e != 0 {
			werr = e
			return true
		}
		return *(*int32)(unsafe.Pointer(&info[16])) != 0
	})
	if err != nil {
		return err
	}
	return werr
}
