package daemon

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestFilesAndDialHost(t *testing.T) {
	tests := []struct {
		host, base, dial string
	}{
		{"127.0.0.1", "daemon-127-0-0-1-2468", "127.0.0.1"},
		{"0.0.0.0", "daemon-0-0-0-0-2468", "127.0.0.1"},
		{"::", "daemon----2468", "::1"},
		{"[::1]", "daemon---1-2468", "::1"},
		{"localhost", "daemon-localhost-2468", "localhost"},
	}
	for _, tt := range tests {
		f := Options{DataDir: "/d", Host: tt.host, Port: 2468}.Files()
		if want := filepath.Join("/d", "daemon", tt.base); f.PID != want+".pid" || f.Version != want+".version" || f.Log != want+".log" {
			t.Errorf("%s: %+v", tt.host, f)
		}
		if got := dialHost(tt.host); got != tt.dial {
			t.Errorf("dialHost(%s) = %s, want %s", tt.host, got, tt.dial)
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
