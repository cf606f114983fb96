package procwait

import (
	"os"
	"os/exec"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Pidfd returns once the child exits, leaves it for exec.Cmd.Wait to reap
// (the exit status is intact) and does not return before the exit.
func TestPidfdWaitsWithoutReaping(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/sh", "-c", "read x; exit 7")
	cmd.Stdin = r
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	done := make(chan error, 1)
	go func() { done <- Pidfd(cmd.Process.Pid) }()
	select {
	case err := <-done:
		t.Fatalf("returned before the child exited: %v", err)
	default:
	}
	w.Close() // EOF: the child exits 7
	if err := <-done; err != nil {
		t.Fatalf("Pidfd: %v", err)
	}
	err = cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 7 {
		t.Fatalf("Wait after Pidfd: %v", err)
	}
}

func TestPidfdOfNoChild(t *testing.T) {
	if err := Pidfd(1 << 30); err == nil {
		t.Fatal("want an error for a pid that does not exist")
	}
}
