// Package testbin builds the sandbox-agent binary for tests that need the
// real executable (CLI, official SDK compat, examples, local provider).
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
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
