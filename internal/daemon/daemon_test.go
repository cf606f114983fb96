//go:build linux

package daemon

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

func TestFiles(t *testing.T) {
	tests := []struct {
		host, base string
	}{
		{"127.0.0.1", "daemon-127-0-0-1-2468"},
		{"0.0.0.0", "daemon-0-0-0-0-2468"},
		{"::", "daemon----2468"},
		{"[::1]", "daemon---1-2468"},
		{"localhost", "daemon-localhost-2468"},
	}
	for _, tt := range tests {
		f := Options{DataDir: "/d", Host: tt.host, Port: 2468}.Files()
		if want := filepath.Join("/d", "daemon", tt.base); f.PID != want+".pid" || f.Version != want+".version" || f.Log != want+".log" {
			t.Errorf("%s: %+v", tt.host, f)
		}
	}
}

// TestIsDaemonChecksCommandLine: only a live `server` on the port counts.
func TestIsDaemonChecksCommandLine(t *testing.T) {
	// The arguments after the script stay in the shell's /proc/<pid>/cmdline
	// (the trailing ":" keeps the shell from exec'ing sleep).
	live := exec.Command("sh", "-c", "sleep 60; :", "sh", "server", "--port", "4321")
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = live.Process.Kill(); _ = live.Wait() }()
	if !isDaemon(live.Process.Pid, 4321) {
		t.Error("a live server on the port was not recognised")
	}
	if isDaemon(live.Process.Pid, 4322) {
		t.Error("a server on another port was taken for ours")
	}
	if isDaemon(os.Getpid(), 4321) {
		t.Error("the test process was taken for a daemon")
	}
	if isDaemon(999999999, 4321) {
		t.Error("a missing PID counted as running")
	}
}

// TestStopEscalatesToSIGKILL: a daemon that ignores SIGTERM is killed after
// StopTimeout and its files are removed.
func TestStopEscalatesToSIGKILL(t *testing.T) {
	dir := t.TempDir()
	o := Options{DataDir: dir, Host: "127.0.0.1", Port: 4323, StopTimeout: 100 * time.Millisecond}
	stubborn := exec.Command("sh", "-c", `trap "" TERM; echo ready; read x`, "sh", "server", "--port", "4323")
	stdin, err := stubborn.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	out, err := stubborn.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := stubborn.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stubborn.Process.Kill(); _ = stubborn.Wait() }()
	if _, err := out.Read(make([]byte, 6)); err != nil { // the trap is set
		t.Fatal(err)
	}
	f := o.Files()
	if err := os.MkdirAll(filepath.Dir(f.PID), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.PID, []byte(strconv.Itoa(stubborn.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := Stop(t.Context(), o)
	if err != nil || !st.Running {
		t.Fatalf("stop: %+v %v", st, err)
	}
	err = stubborn.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("ended with %v, want SIGKILL", err)
	}
	if _, err := os.Stat(f.PID); !os.IsNotExist(err) {
		t.Fatal("PID file left")
	}
}
