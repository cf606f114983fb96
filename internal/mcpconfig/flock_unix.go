//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package mcpconfig

import (
	"os"
	"syscall"
)

// lockDir takes an exclusive advisory lock on the config directory, so
// writers in other processes (a second server, a CLI) serialise with us.
// flock locks belong to the open file, so goroutines of this process that
// open the directory separately exclude each other too.
func lockDir(dir string) (func(), error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(d.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		d.Close()
		return nil, &os.PathError{Op: "flock", Path: dir, Err: err}
	}
	return func() {
		_ = syscall.Flock(int(d.Fd()), syscall.LOCK_UN)
		_ = d.Close()
	}, nil
}
