package agents

// npm-distributed agents: install into a staging prefix and explain npm's failures.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

func withoutVersion(spec string) string {
	if i := strings.LastIndex(spec, "@"); i > 0 {
		return spec[:i]
	}
	return spec
}

// installedVersion reads the version npm resolved for spec under prefix.
func installedVersion(prefix, spec string) string {
	name := spec
	if i := strings.LastIndex(spec, "@"); i > 0 {
		name = spec[:i]
	}
	b, err := os.ReadFile(filepath.Join(prefix, "node_modules", filepath.FromSlash(name), "package.json"))
	if err == nil {
		var pj struct {
			Version string `json:"version"`
		}
		if json.Unmarshal(b, &pj) == nil && pj.Version != "" {
			return pj.Version
		}
	}
	if i := strings.LastIndex(spec, "@"); i > 0 {
		return spec[i+1:]
	}
	return "unknown"
}

// npmInstallInto runs npm install into a staging prefix, checks that every
// hint exists in node_modules/.bin, then swaps the staging dir into prefix.
func (m *Manager) npmInstallInto(ctx context.Context, prefix string, pkgs, hints []string) error {
	npm := m.opts.NPM
	if npm == "" {
		npm = "npm"
	}
	npmPath, err := exec.LookPath(npm)
	if err != nil {
		return fmt.Errorf("npm not found (%v): install Node.js 18+ with npm, or put npm on the server's PATH", err)
	}
	if err := os.MkdirAll(filepath.Dir(prefix), 0o755); err != nil {
		return err
	}
	stage, err := os.MkdirTemp(filepath.Dir(prefix), ".staging-"+filepath.Base(prefix)+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stage)
	if err := os.Chmod(stage, 0o755); err != nil {
		return err
	}
	args := append([]string{"install", "--no-audit", "--no-fund", "--no-save", "--loglevel=error", "--prefix", stage}, pkgs...)
	cmd := exec.CommandContext(ctx, npmPath, args...)
	// Options.Env, not os.Environ(): the server's own secrets are not the
	// installer's (or its packages' install scripts').
	cmd.Env = append(slices.Clone(m.opts.Env), "npm_config_update_notifier=false")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%v: %s", err, explainNPM(out.String()))
	}
	for _, h := range hints {
		if !isExecutable(filepath.Join(stage, "node_modules", ".bin", h)) {
			return fmt.Errorf("installed package missing executable: node_modules/.bin/%s", h)
		}
	}
	return swapDir(stage, prefix)
}

// explainNPM keeps npm's output short and says what a network failure means.
func explainNPM(out string) string {
	out = strings.TrimSpace(out)
	hint := ""
	switch {
	case containsAny(out, "ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ETIMEDOUT", "ECONNRESET", "network"):
		hint = "the npm registry is unreachable (check network access and `npm config get registry`); "
	case strings.Contains(out, "E404"):
		hint = "the package does not exist on the configured npm registry; "
	case strings.Contains(out, "ETARGET"):
		hint = "that version does not exist on the configured npm registry; "
	}
	if len(out) > 2000 {
		out = "…" + out[len(out)-2000:]
	}
	return hint + out
}

func containsAny(s string, subs ...string) bool {
	for _, x := range subs {
		if strings.Contains(s, x) {
			return true
		}
	}
	return false
}
