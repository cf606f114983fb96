// Package testbin builds the sandbox-agent binary for tests that need the
// real executable (CLI, official SDK compat, examples, local provider).
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"

	"go.uber.org/goleak"
)

// ModuleRoot is the repository root, found from this file's location so
// tests in any package can use it.
func ModuleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
}

// Build compiles a main package of this module (default ./cmd/sandbox-agent)
// statically into dir and returns the binary's path.
func Build(dir string, pkg ...string) (string, error) {
	p := "./cmd/sandbox-agent"
	if len(pkg) > 0 {
		p = pkg[0]
	}
	bin := filepath.Join(dir, filepath.Base(p))
	cmd := exec.Command("go", "build", "-o", bin, p)
	cmd.Dir = ModuleRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", p, err, out)
	}
	return bin, nil
}

// Main is a TestMain for packages that drive the real binary: it builds
// sandbox-agent into a temporary directory, stores its path in *bin, runs
// the tests, removes the directory and, when the tests passed, fails if
// goroutines leaked. It returns the exit code for os.Exit.
func Main(m interface{ Run() int }, bin *string) int {
	dir, err := os.MkdirTemp("", "sandbox-agent-test-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if *bin, err = Build(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	return code
}
