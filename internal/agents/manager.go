package agents

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"github.com/sandbox-agent-go/sandbox-agent/internal/problem"
)

// Options configure a Manager.
type Options struct {
	// DataDir is the sandbox-agent data directory (default
	// $XDG_DATA_HOME/sandbox-agent or ~/.local/share/sandbox-agent).
	DataDir string
	// Executable is the sandbox-agent binary the mock launcher runs
	// (default: this process's executable).
	Executable string
	// RequirePreinstall turns lazy installation on first use into an
	// agent_not_installed error (SANDBOX_AGENT_REQUIRE_PREINSTALL).
	RequirePreinstall bool
	// Env is the environment agents inherit (default os.Environ()).
	Env    []string
	Logger *slog.Logger
	// RegistryURL is the ACP registry (default SANDBOX_AGENT_ACP_REGISTRY_URL,
	// else upstream's); "off" uses the built-in pins only. An unreachable
	// registry also falls back to the pins.
	RegistryURL string
	// NPM is the npm executable (default "npm" on PATH).
	NPM string
	// NativeSource picks where native CLIs come from: "auto" (upstream's
	// download sources, then npm), "npm" or "download" (default
	// SANDBOX_AGENT_NATIVE_SOURCE, else auto).
	NativeSource string
	// HTTPClient fetches the registry and downloads (default: 10 min timeout).
	HTTPClient *http.Client
}

// Manager installs, inspects and launches agents.
type Manager struct {
	opts Options

	mu       sync.Mutex
	locks    map[string]chan struct{}
	versions map[string]versionEntry
}

// DefaultDataDir follows upstream: $XDG_DATA_HOME/sandbox-agent, else
// ~/.local/share/sandbox-agent. SANDBOX_AGENT_DATA_DIR overrides both.
func DefaultDataDir() string {
	if d := os.Getenv("SANDBOX_AGENT_DATA_DIR"); d != "" {
		return d
	}
	if x := os.Getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "sandbox-agent")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = os.TempDir()
	}
	return filepath.Join(home, ".local", "share", "sandbox-agent")
}

// EnvRequirePreinstall reads SANDBOX_AGENT_REQUIRE_PREINSTALL (1|true|yes).
func EnvRequirePreinstall() bool {
	switch strings.ToLower(strings.TrimSpace(os.Getenv("SANDBOX_AGENT_REQUIRE_PREINSTALL"))) {
	case "1", "true", "yes":
		return true
	}
	return false
}

// NewManager returns a Manager.
func NewManager(opts Options) *Manager {
	if opts.DataDir == "" {
		opts.DataDir = DefaultDataDir()
	}
	if opts.Executable == "" {
		if exe, err := os.Executable(); err == nil {
			opts.Executable = exe
		} else {
			opts.Executable = "sandbox-agent"
		}
	}
	if opts.Env == nil {
		opts.Env = os.Environ()
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Manager{opts: opts, locks: map[string]chan struct{}{}, versions: map[string]versionEntry{}}
}

// BinDir is <data>/bin.
func (m *Manager) BinDir() string { return filepath.Join(m.opts.DataDir, "bin") }

// LauncherPath is where the agent's ACP launcher script lives.
func (m *Manager) LauncherPath(agent string) string {
	return filepath.Join(m.BinDir(), "agent_processes", agent+"-acp")
}

// Known reports whether agent is supported (acpproxy.Launcher).
func (m *Manager) Known(agent string) bool { return Known(agent) }

// Installed reports whether the agent's launcher exists and is executable
// and, for agents that need one, the native CLI is present.
func (m *Manager) Installed(agent string) bool {
	if !isExecutable(m.LauncherPath(agent)) {
		return false
	}
	_, ok := m.nativePresent(agent)
	return ok
}

// Artifact is one installed piece of an agent.
type Artifact struct {
	Kind    string `json:"kind"`
	Path    string `json:"path"`
	Source  string `json:"source"`
	Version string `json:"version"`
}

// InstallRequest is the body of POST /v1/agents/{agent}/install.
type InstallRequest struct {
	Reinstall           bool   `json:"reinstall,omitempty"`
	AgentVersion        string `json:"agentVersion,omitempty"`
	AgentProcessVersion string `json:"agentProcessVersion,omitempty"`
}

// InstallResult reports what Install did.
type InstallResult struct {
	AlreadyInstalled bool
	Artifacts        []Artifact
}

// Install installs agent (see InstallWithProgress).
func (m *Manager) Install(ctx context.Context, agent string, req InstallRequest) (InstallResult, error) {
	return m.InstallWithProgress(ctx, agent, req, nil)
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func mockLauncher(exe string) []byte {
	return []byte("#!/usr/bin/env sh\n" +
		"# sandbox-agent built-in mock ACP agent launcher\n" +
		"if [ -n \"${SANDBOX_AGENT_BIN:-}\" ]; then exec \"$SANDBOX_AGENT_BIN\" mock-agent-process \"$@\"; fi\n" +
		"exec " + shellQuote(exe) + " mock-agent-process \"$@\"\n")
}

// writeExecutable writes data atomically (temp file + rename) with mode 0755.
func writeExecutable(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".install-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o755); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Command resolves agent to its ACP process, installing it lazily unless
// RequirePreinstall is set (acpproxy.Launcher).
func (m *Manager) Command(ctx context.Context, agent string) (*exec.Cmd, error) {
	if !Known(agent) {
		return nil, problem.Unsupported(agent)
	}
	// Upstream's launch resolution: an existing launcher file is run as is
	// (so a hand-placed launcher works); otherwise install first.
	if !isExecutable(m.LauncherPath(agent)) {
		if m.opts.RequirePreinstall {
			return nil, problem.NotInstalled(agent)
		}
		if _, err := m.Install(ctx, agent, InstallRequest{}); err != nil {
			return nil, err
		}
	}
	if err := m.launchCheck(agent); err != nil {
		return nil, err
	}
	cmd := exec.Command(m.LauncherPath(agent))
	cmd.Env = m.agentEnv(agent)
	return cmd, nil
}

// launchCheck catches agents that would start but can never answer.
func (m *Manager) launchCheck(agent string) error {
	if agent == "cursor" {
		if _, err := m.lookPath("cursor-agent"); err != nil {
			return fmt.Errorf("cursor: the Cursor CLI `cursor-agent` is not on PATH; %s", cursorHelp)
		}
	}
	return nil
}

// agentEnv is the environment of agent's process: the server's, plus
// SANDBOX_AGENT_BIN, plus IS_SANDBOX=1 for Claude when running as root
// (Claude Code refuses to run as root otherwise) unless already set to
// another value than a truthy spelling ("yes", "true", "on").
func (m *Manager) agentEnv(agent string) []string {
	env := append([]string(nil), m.opts.Env...)
	has := func(key string) bool {
		for _, kv := range env {
			if strings.HasPrefix(kv, key+"=") {
				return true
			}
		}
		return false
	}
	if !has("SANDBOX_AGENT_BIN") {
		env = append(env, "SANDBOX_AGENT_BIN="+m.opts.Executable)
	}
	if agent == "claude" && os.Geteuid() == 0 {
		// Claude Code only honours IS_SANDBOX=1: a truthy spelling such
		// as "yes" (seen in real sandboxes) would make it refuse to run.
		switch v := strings.ToLower(m.envValue("IS_SANDBOX")); {
		case !has("IS_SANDBOX"):
			env = append(env, "IS_SANDBOX=1")
		case v == "yes" || v == "true" || v == "on" || v == "y":
			env = append(env, "IS_SANDBOX=1")
		}
	}
	return env
}
