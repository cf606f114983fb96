package agents

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

type versionEntry struct {
	path    string
	modTime time.Time
	version string
}

// probeVersion runs `<bin> --version`, then `version`, then `-V`, and
// returns the first non-empty output line cut at " (" (upstream's rule:
// "2.1.44 (Claude Code)" → "2.1.44"); "" when none works.
func (m *Manager) probeVersion(bin string) string {
	for _, arg := range []string{"--version", "version", "-V"} {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		cmd := exec.CommandContext(ctx, bin, arg)
		cmd.Env = m.opts.Env
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		cmd.WaitDelay = time.Second
		var out bytes.Buffer
		cmd.Stdout = &out
		err := cmd.Run()
		cancel()
		if err != nil {
			continue
		}
		for _, line := range strings.Split(out.String(), "\n") {
			line = strings.TrimSpace(line)
			if line == "" {
				continue
			}
			if i := strings.Index(line, " ("); i > 0 {
				line = line[:i]
			}
			return line
		}
	}
	return ""
}

func (m *Manager) invalidateVersion(agent string) {
	m.mu.Lock()
	delete(m.versions, agent)
	m.mu.Unlock()
}

// agentVersion reports the installed version and path of agent for
// /v1/agents?config=true: the native CLI's probed version and path for
// agents that have one, else the adapter's version and the launcher.
// Probes are cached per binary path and modification time unless noCache.
func (m *Manager) agentVersion(agent string, noCache bool) (version, path string) {
	if agent == "mock" {
		return "builtin", m.LauncherPath(agent)
	}
	native, _ := m.nativePresent(agent)
	if native == "" {
		mf, ok := m.readManifest(agent)
		if ok && mf.Version != "" {
			return mf.Version, m.LauncherPath(agent)
		}
		return "unknown", m.LauncherPath(agent)
	}
	fi, err := os.Stat(native)
	if err != nil {
		return "unknown", native
	}
	m.mu.Lock()
	e, ok := m.versions[agent]
	m.mu.Unlock()
	if ok && !noCache && e.path == native && e.modTime.Equal(fi.ModTime()) {
		return e.version, native
	}
	v := m.probeVersion(native)
	if v == "" {
		if mf, ok := m.readManifest(agent); ok && mf.NativeVersion != "" {
			v = mf.NativeVersion
		} else {
			v = "unknown"
		}
	}
	m.mu.Lock()
	m.versions[agent] = versionEntry{path: native, modTime: fi.ModTime(), version: v}
	m.mu.Unlock()
	return v, native
}
