package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestOfficialSDKDrivesClaude runs compat/claude.mjs (the official
// TypeScript SDK: createSession, prompt, permission round trip) against an
// in-process server that sees the cached Claude and the fake LLM — the
// wiring the compat harness needs for the same script.
func TestOfficialSDKDrivesClaude(t *testing.T) {
	t.Parallel()
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join("..", "compat", "node_modules", "sandbox-agent", "package.json"))
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("needs node and `npm ci` in compat/ (the README test command does this): %v", err)
		}
		t.Skipf("skipping: %v (run `npm ci` in compat/)", err)
	}
	h := newHarness(t, "claude", nil, claudeEnv)
	cmd := exec.CommandContext(t.Context(), node, "claude.mjs")
	cmd.Dir = filepath.Join("..", "compat")
	cmd.Env = append(os.Environ(), "SANDBOX_AGENT_URL="+h.url, "SANDBOX_AGENT_TOKEN=", "COMPAT_DEADLINE_MS=60000")
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("claude.mjs: %v", err)
	}
}
