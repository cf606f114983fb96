package process

import (
	"os"
	"syscall"
	"testing"

	"github.com/sandbox-agent-go/sandbox-agent/internal/procwait"
)

// procwait.Pidfd must report the exit without reaping, so the group can still
// be signalled safely and reap collects the status afterwards.
func TestWaitPidfdDoesNotReap(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	pid, err := syscall.ForkExec("/bin/sh", []string{"sh", "-c", "read x; exit 7"}, &syscall.ProcAttr{
		Files: []uintptr{r.Fd(), 0, 2},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- procwait.Pidfd(pid) }()
	select {
	case err := <-done:
		t.Fatalf("returned before the child exited: %v", err)
	default:
	}
	w.Close() // EOF on the child's stdin: it exits 7
	if err := <-done; err != nil {
		t.Fatalf("procwait.Pidfd: %v", err)
	}
	code, err := reap(pid)
	if err != nil || code == nil || *code != 7 {
		t.Fatalf("reap after waitPidfd: %v %v", code, err)
	}
}

func TestLookPathCacheNeverReturnsARemovedBinary(t *testing.T) {
	dir := t.TempDir()
	tool := dir + "/tool"
	if err := os.WriteFile(tool, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	env := []string{"PATH=" + dir}
	for range 2 { // miss, then hit
		if p, err := lookPathCached("tool", env, ""); err != nil || p != tool {
			t.Fatalf("%q %v", p, err)
		}
	}
	if err := os.Remove(tool); err != nil {
		t.Fatal(err)
	}
	if p, err := lookPathCached("tool", env, ""); err == nil {
		t.Fatalf("a removed binary must not be served from the cache: %q", p)
	}
}
