package agents

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

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
}

// Manager installs, inspects and launches agents.
type Manager struct {
	opts Options
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
	return &Manager{opts: opts}
}

// BinDir is <data>/bin.
func (m *Manager) BinDir() string { return filepath.Join(m.opts.DataDir, "bin") }

// LauncherPath is where the agent's ACP launcher script lives.
func (m *Manager) LauncherPath(agent string) string {
	return filepath.Join(m.BinDir(), "agent_processes", agent+"-acp")
}

// Known reports whether agent is supported (acpproxy.Launcher).
func (m *Manager) Known(agent string) bool { return Known(agent) }

// Installed reports whether the agent's launcher exists and is executable.
func (m *Manager) Installed(agent string) bool {
	fi, err := os.Stat(m.LauncherPath(agent))
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
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

// ErrInstallUnsupported is returned for agents this build cannot install.
var ErrInstallUnsupported = errors.New("installing this agent is not supported by this build")

// Install installs agent. Only the built-in mock is installable in this
// build; other agents work when an ACP launcher is placed at LauncherPath.
func (m *Manager) Install(ctx context.Context, agent string, req InstallRequest) (InstallResult, error) {
	if !Known(agent) {
		return InstallResult{}, problem.Unsupported(agent)
	}
	if m.Installed(agent) && !req.Reinstall {
		return InstallResult{AlreadyInstalled: true, Artifacts: []Artifact{}}, nil
	}
	if agent != "mock" {
		return InstallResult{}, problem.Install(agent, fmt.Sprintf(
			"step agent_process: %v: agent %q cannot be installed yet (only the built-in mock agent installs); "+
				"to use your own build, place an executable ACP launcher at %s", ErrInstallUnsupported, agent, m.LauncherPath(agent)))
	}
	path := m.LauncherPath(agent)
	if err := writeExecutable(path, mockLauncher(m.opts.Executable)); err != nil {
		return InstallResult{}, problem.Install(agent, "step write_launcher: "+err.Error())
	}
	m.opts.Logger.Info("agent installed", "agent", agent, "path", path)
	return InstallResult{Artifacts: []Artifact{{Kind: "agent_process", Path: path, Source: "builtin", Version: "builtin"}}}, nil
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
	if !m.Installed(agent) {
		if m.opts.RequirePreinstall {
			return nil, problem.NotInstalled(agent)
		}
		if _, err := m.Install(ctx, agent, InstallRequest{}); err != nil {
			return nil, err
		}
	}
	cmd := exec.Command(m.LauncherPath(agent))
	cmd.Env = m.agentEnv()
	return cmd, nil
}

func (m *Manager) agentEnv() []string {
	env := append([]string(nil), m.opts.Env...)
	for _, kv := range env {
		if strings.HasPrefix(kv, "SANDBOX_AGENT_BIN=") {
			return env
		}
	}
	return append(env, "SANDBOX_AGENT_BIN="+m.opts.Executable)
}

// CredentialsAvailable reports whether the agent can find credentials.
func (m *Manager) CredentialsAvailable(agent string) bool {
	spec, ok := Lookup(agent)
	if !ok {
		return false
	}
	if spec.CredentialsAlways {
		return true
	}
	anthropic := m.envAny("ANTHROPIC_API_KEY", "CLAUDE_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_AUTH_TOKEN")
	openai := m.envAny("OPENAI_API_KEY", "CODEX_API_KEY")
	switch agent {
	case "claude", "amp":
		return anthropic
	case "codex":
		return openai
	case "opencode":
		return anthropic || openai
	}
	return false
}

func (m *Manager) envAny(keys ...string) bool {
	for _, kv := range m.opts.Env {
		k, v, _ := strings.Cut(kv, "=")
		for _, want := range keys {
			if k == want && strings.TrimSpace(v) != "" {
				return true
			}
		}
	}
	return false
}
