package agents

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/gofrs/flock"

	"github.com/sandbox-agent-go/sandbox-agent/internal/problem"
)

// Install steps, named in progress events and in errors.
const (
	StepRegistry     = "registry"
	StepNative       = "native"
	StepAgentProcess = "agent_process"
	StepLauncher     = "launcher"
	StepVerify       = "verify"
)

// Artifact sources and kinds (HTTP spelling; the CLI prints CamelCase).
const (
	SourceRegistry = "registry"
	SourceFallback = "fallback"
	SourceBuiltin  = "builtin"
	SourceDownload = "download"
	SourceNpm      = "npm"
	SourceLocal    = "local_path"

	KindAgentProcess = "agent_process"
	KindNative       = "native_agent"
)

// ProgressEvent reports one install step starting or ending.
type ProgressEvent struct {
	Agent string
	Step  string
	// Status is "start", "done", "skip" or "fail".
	Status  string
	Detail  string
	Elapsed time.Duration
}

// ProgressFunc receives install progress; it must not block for long.
type ProgressFunc func(ProgressEvent)

// StepError is an install failure naming the step that failed.
type StepError struct {
	Agent, Step string
	Err         error
	Help        string
}

func (e *StepError) Error() string {
	s := fmt.Sprintf("install %s: step %s failed: %v", e.Agent, e.Step, e.Err)
	if e.Help != "" {
		s += "; " + e.Help
	}
	return s
}

func (e *StepError) Unwrap() error { return e.Err }

// manifest records what an install put on disk (agent_processes/<agent>.json).
type manifest struct {
	Agent          string   `json:"agent"`
	Source         string   `json:"source"`
	Package        string   `json:"package,omitempty"`
	Version        string   `json:"version,omitempty"`
	NativeSource   string   `json:"nativeSource,omitempty"`
	NativeVersion  string   `json:"nativeVersion,omitempty"`
	ExtraPackages  []string `json:"extraPackages,omitempty"`
	InstalledAtUTC string   `json:"installedAt"`
}

func (m *Manager) manifestPath(agent string) string {
	return filepath.Join(m.BinDir(), "agent_processes", agent+".json")
}

func (m *Manager) readManifest(agent string) (manifest, bool) {
	var mf manifest
	b, err := os.ReadFile(m.manifestPath(agent))
	if err != nil || json.Unmarshal(b, &mf) != nil {
		return mf, false
	}
	return mf, true
}

// NativePath is <data>/bin/<binary> for agents with a native CLI ("" otherwise).
func (m *Manager) NativePath(agent string) string {
	p, ok := pins[agent]
	if !ok || p.Binary == "" {
		return ""
	}
	return filepath.Join(m.BinDir(), p.Binary)
}

// nativePresent reports whether the native CLI of agent is available
// (installed under bin/ or on PATH), and where.
func (m *Manager) nativePresent(agent string) (string, bool) {
	p := m.NativePath(agent)
	if p == "" {
		return "", true
	}
	if isExecutable(p) {
		return p, true
	}
	if lp, err := m.lookPath(pins[agent].Binary); err == nil {
		return lp, true
	}
	return "", false
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// lookPath finds file on the PATH of the agents' environment.
func (m *Manager) lookPath(file string) (string, error) {
	path := m.envValue("PATH")
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, file)
		if isExecutable(p) {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

func (m *Manager) envValue(key string) string {
	v := ""
	for _, kv := range m.opts.Env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			v = val
		}
	}
	return v
}

func (m *Manager) httpClient() *http.Client {
	if m.opts.HTTPClient != nil {
		return m.opts.HTTPClient
	}
	return &http.Client{Timeout: 10 * time.Minute}
}

func (m *Manager) nativeSource() string {
	s := m.opts.NativeSource
	if s == "" {
		s = os.Getenv("SANDBOX_AGENT_NATIVE_SOURCE")
	}
	switch s {
	case "npm", "download":
		return s
	}
	return "auto"
}

// lockPollInterval is how often a blocked install retries the file lock.
const lockPollInterval = 100 * time.Millisecond

// agentLock serialises installs of one agent: within this process with a
// channel, across processes (a second server, `install-agent` from a shell)
// with an flock on <bin>/.install-locks/<agent>.lock. Both waits end with
// ctx.
func (m *Manager) agentLock(ctx context.Context, agent string) (func(), error) {
	m.mu.Lock()
	ch, ok := m.locks[agent]
	if !ok {
		ch = make(chan struct{}, 1)
		m.locks[agent] = ch
	}
	m.mu.Unlock()
	select {
	case ch <- struct{}{}: // free: taken whatever the state of ctx
	default:
		select {
		case ch <- struct{}{}:
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for another install of %s in this process: %w", agent, ctx.Err())
		}
	}
	dir := filepath.Join(m.BinDir(), ".install-locks")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		<-ch
		return nil, err
	}
	fl := flock.New(filepath.Join(dir, agent+".lock"))
	locked, err := fl.TryLock()
	if err == nil && !locked {
		m.opts.Logger.Info("waiting for another process installing the agent", "agent", agent, "lock", fl.Path())
		locked, err = fl.TryLockContext(ctx, lockPollInterval)
	}
	if err != nil || !locked {
		<-ch
		if err == nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("waiting for another process installing %s (lock %s): %w", agent, fl.Path(), err)
	}
	return func() {
		_ = fl.Unlock()
		<-ch
	}, nil
}

// InstallWithProgress installs agent, reporting each step to progress
// (which may be nil). Errors are *problem.Problem (install_failed) whose
// stderr detail names the failed step; nothing is reported installed
// unless every step, including verification, succeeded.
func (m *Manager) InstallWithProgress(ctx context.Context, agent string, req InstallRequest, progress ProgressFunc) (InstallResult, error) {
	if !Known(agent) {
		return InstallResult{}, problem.Unsupported(agent)
	}
	unlock, err := m.agentLock(ctx, agent)
	if err != nil {
		return InstallResult{}, problem.Install(agent, err.Error())
	}
	defer unlock()
	if progress == nil {
		progress = func(ProgressEvent) {}
	}
	if m.Installed(agent) && !req.Reinstall {
		return InstallResult{AlreadyInstalled: true, Artifacts: []Artifact{}}, nil
	}
	in := &installer{m: m, agent: agent, req: req, progress: progress}
	res, err := in.run(ctx)
	if err != nil {
		var se *StepError
		if errors.As(err, &se) {
			m.opts.Logger.Warn("agent install failed", "agent", agent, "step", se.Step, "error", se.Err)
		}
		return InstallResult{}, problem.Install(agent, err.Error()+"; the agent was not installed (launcher "+m.LauncherPath(agent)+" not written)")
	}
	m.invalidateVersion(agent)
	m.opts.Logger.Info("agent installed", "agent", agent, "path", m.LauncherPath(agent))
	return res, nil
}

type installer struct {
	m        *Manager
	agent    string
	req      InstallRequest
	progress ProgressFunc
	res      InstallResult
	mf       manifest
	// launcher contents
	exec string
	args []string
	env  [][2]string
	path []string // directories prepended to PATH
}

func (in *installer) step(name string, f func() (detail string, skipped bool, err error)) error {
	start := time.Now()
	in.progress(ProgressEvent{Agent: in.agent, Step: name, Status: "start"})
	detail, skipped, err := f()
	ev := ProgressEvent{Agent: in.agent, Step: name, Status: "done", Detail: detail, Elapsed: time.Since(start)}
	if skipped {
		ev.Status = "skip"
	}
	if err != nil {
		ev.Status, ev.Detail = "fail", err.Error()
		in.progress(ev)
		help := ""
		if p, ok := pins[in.agent]; ok {
			help = p.Help
		}
		return &StepError{Agent: in.agent, Step: name, Err: err, Help: help}
	}
	in.progress(ev)
	return nil
}

func (in *installer) run(ctx context.Context) (InstallResult, error) {
	m := in.m
	in.mf = manifest{Agent: in.agent, InstalledAtUTC: time.Now().UTC().Format(time.RFC3339)}
	if err := os.MkdirAll(filepath.Join(m.BinDir(), "agent_processes"), 0o755); err != nil {
		return in.res, &StepError{Agent: in.agent, Step: StepLauncher, Err: err}
	}
	if in.req.Reinstall {
		// A reinstall in flight must not be reported installed.
		_ = os.Remove(m.LauncherPath(in.agent))
	}
	if in.agent == "mock" {
		path := m.LauncherPath("mock")
		if err := in.step(StepLauncher, func() (string, bool, error) {
			return path, false, writeExecutable(path, mockLauncher(m.opts.Executable))
		}); err != nil {
			return in.res, err
		}
		in.res.Artifacts = []Artifact{{Kind: KindAgentProcess, Path: path, Source: SourceBuiltin, Version: "builtin"}}
		return in.res, nil
	}
	pin := pins[in.agent]
	var entry *registryAgent
	if err := in.step(StepRegistry, func() (string, bool, error) {
		if pin.Package == "" {
			return "not used: the ACP process is the native " + pin.Binary + " binary", true, nil
		}
		url := m.registryURL()
		if url == "" {
			return "disabled; using the built-in pin " + pin.Package + "@" + pin.Version, true, nil
		}
		rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		doc, err := m.fetchRegistry(rctx, url)
		if err != nil {
			return fmt.Sprintf("unreachable (%v); using the built-in pin %s@%s", err, pin.Package, pin.Version), true, nil
		}
		entry = doc.find(pin.RegistryID)
		if entry == nil {
			return fmt.Sprintf("no entry %q; using the built-in pin %s@%s", pin.RegistryID, pin.Package, pin.Version), true, nil
		}
		return fmt.Sprintf("entry %s version %s", entry.ID, entry.Version), false, nil
	}); err != nil {
		return in.res, err
	}
	if pin.Binary != "" {
		if err := in.step(StepNative, func() (string, bool, error) { return in.native(ctx, pin) }); err != nil {
			return in.res, err
		}
	}
	if err := in.step(StepAgentProcess, func() (string, bool, error) { return in.agentProcess(ctx, pin, entry) }); err != nil {
		return in.res, err
	}
	// The launcher is written to a temporary name, verified, then renamed:
	// until the rename the agent is not installed.
	final := m.LauncherPath(in.agent)
	tmp := fmt.Sprintf("%s.verify-%d-%d", final, os.Getpid(), time.Now().UnixNano())
	defer os.Remove(tmp)
	if err := in.step(StepLauncher, func() (string, bool, error) {
		return final, false, writeExecutable(tmp, in.launcher())
	}); err != nil {
		return in.res, err
	}
	if err := in.step(StepVerify, func() (string, bool, error) {
		if err := m.runHelp(ctx, in.agent, tmp); err != nil {
			return "", false, err
		}
		return "--help exited 0", false, nil
	}); err != nil {
		return in.res, err
	}
	if b, err := json.MarshalIndent(in.mf, "", "  "); err == nil {
		_ = os.WriteFile(m.manifestPath(in.agent), b, 0o644)
	}
	if err := os.Rename(tmp, final); err != nil {
		return in.res, &StepError{Agent: in.agent, Step: StepLauncher, Err: err}
	}
	return in.res, nil
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// launcher renders the shell launcher in upstream's format.
func (in *installer) launcher() []byte {
	var b strings.Builder
	b.WriteString("#!/usr/bin/env sh\nset -e\n")
	for _, kv := range in.env {
		if !envName.MatchString(kv[0]) {
			continue // a registry entry must not inject shell
		}
		fmt.Fprintf(&b, "export %s=%s\n", kv[0], shellQuote(kv[1]))
	}
	for _, d := range in.path {
		fmt.Fprintf(&b, "export PATH=%s\":$PATH\"\n", shellQuote(d))
	}
	b.WriteString("exec " + shellQuote(in.exec))
	for _, a := range in.args {
		b.WriteString(" " + shellQuote(a))
	}
	b.WriteString(" \"$@\"\n")
	return []byte(b.String())
}

// native installs the agent's native CLI as <data>/bin/<binary>.
func (in *installer) native(ctx context.Context, pin Pin) (string, bool, error) {
	m := in.m
	dst := m.NativePath(in.agent)
	if !in.req.Reinstall && in.req.AgentVersion == "" {
		if p, ok := m.nativePresent(in.agent); ok {
			in.mf.NativeSource = SourceLocal
			return "already present at " + p, true, nil
		}
	}
	var errs []string
	src := m.nativeSource()
	if src != "npm" {
		detail, err := in.nativeDownload(ctx, pin, dst)
		if err == nil {
			in.mf.NativeSource = SourceDownload
			in.addNativeArtifact(dst, SourceDownload)
			return detail, false, nil
		}
		errs = append(errs, "download: "+err.Error())
		if src == "download" {
			return "", false, errors.New(strings.Join(errs, "; "))
		}
	}
	version := pin.NativeVersion
	if in.req.AgentVersion != "" {
		version = in.req.AgentVersion
	}
	spec := pin.NativePackage + "@" + version
	prefix := filepath.Join(m.BinDir(), "native", in.agent)
	if err := m.npmInstallInto(ctx, prefix, []string{spec}, []string{pin.NativeHint}); err != nil {
		errs = append(errs, "npm "+spec+": "+err.Error())
		return "", false, errors.New(strings.Join(errs, "; "))
	}
	target := filepath.Join(prefix, "node_modules", ".bin", pin.NativeHint)
	if err := replaceSymlink(target, dst); err != nil {
		return "", false, err
	}
	in.mf.NativeSource, in.mf.NativeVersion = SourceNpm, version
	in.addNativeArtifact(dst, SourceNpm)
	detail := "npm " + spec
	if len(errs) > 0 {
		detail += " (" + strings.Join(errs, "; ") + ")"
	}
	return detail, false, nil
}

func (in *installer) addNativeArtifact(path, source string) {
	v := in.m.probeVersion(path)
	if v == "" {
		v = in.mf.NativeVersion
	}
	in.mf.NativeVersion = v
	in.res.Artifacts = append(in.res.Artifacts, Artifact{Kind: KindNative, Path: path, Source: source, Version: v})
}

// agentProcess installs the ACP adapter and sets up the launcher fields.
func (in *installer) agentProcess(ctx context.Context, pin Pin, entry *registryAgent) (string, bool, error) {
	m := in.m
	launcher := m.LauncherPath(in.agent)
	if pin.Package == "" { // opencode: the native binary speaks ACP
		native, _ := m.nativePresent(in.agent)
		in.exec, in.args = native, pin.Args
		in.mf.Source, in.mf.Version = SourceFallback, in.mf.NativeVersion
		in.res.Artifacts = append(in.res.Artifacts, Artifact{Kind: KindAgentProcess, Path: launcher, Source: SourceFallback, Version: in.mf.NativeVersion})
		return "runs " + native + " " + strings.Join(pin.Args, " "), false, nil
	}
	prefix := filepath.Join(m.BinDir(), "agent_processes", in.agent)
	spec := pin.Package + "@" + pin.Version
	source := SourceFallback
	in.args = pin.Args
	var binErr error // a registry binary that failed; the pin is used instead
	if entry != nil {
		switch {
		case entry.Distribution.Npx != nil:
			spec = entry.Distribution.Npx.Package
			in.args = entry.Distribution.Npx.Args
			in.env = sortedEnv(entry.Distribution.Npx.Env)
			source = SourceRegistry
		default:
			if bin, ok := entry.Distribution.Binary[platformKey()]; ok {
				detail, skipped, err := in.binaryEntry(ctx, prefix, entry.Version, bin.Archive, bin.Cmd, bin.Args, bin.Env)
				if err == nil {
					return detail, skipped, nil
				}
				binErr = err
				in.args, in.env = pin.Args, nil
			}
		}
	}
	spec = withVersion(spec, in.req.AgentProcessVersion)
	extra := pin.Extra
	if source == SourceRegistry {
		// The registry's adapter is newer than the pins: pair it with the
		// current release of its companion CLI, not the pinned one.
		extra = nil
		for _, e := range pin.Extra {
			extra = append(extra, withoutVersion(e))
		}
	}
	pkgs := append([]string{spec}, extra...)
	hints := []string{pin.Hint}
	err := m.npmInstallInto(ctx, prefix, pkgs, hints)
	if err != nil && source == SourceRegistry {
		// A registry entry that does not install falls back to the pin.
		regErr := fmt.Errorf("npm install %s: %w", strings.Join(pkgs, " "), err)
		spec, source, in.args, in.env = withVersion(pin.Package+"@"+pin.Version, in.req.AgentProcessVersion), SourceFallback, pin.Args, nil
		pkgs = append([]string{spec}, pin.Extra...)
		if err = m.npmInstallInto(ctx, prefix, pkgs, hints); err != nil {
			err = fmt.Errorf("%v; built-in pin: %w", regErr, err)
		}
	}
	if err != nil {
		return "", false, fmt.Errorf("npm install %s: %w", strings.Join(pkgs, " "), err)
	}
	binDir := filepath.Join(prefix, "node_modules", ".bin")
	in.exec = filepath.Join(binDir, pin.Hint)
	if len(pin.Extra) > 0 {
		in.path = append(in.path, binDir)
	}
	version := installedVersion(prefix, spec)
	in.mf.Source, in.mf.Package, in.mf.Version, in.mf.ExtraPackages = source, spec, version, pin.Extra
	in.res.Artifacts = append(in.res.Artifacts, Artifact{Kind: KindAgentProcess, Path: launcher, Source: source, Version: version})
	detail := "npm " + strings.Join(pkgs, " ")
	if binErr != nil {
		detail += " (registry binary failed: " + binErr.Error() + ")"
	}
	return detail, false, nil
}

func sortedEnv(m map[string]string) [][2]string {
	var out [][2]string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, [2]string{k, m[k]})
	}
	return out
}

// runHelp runs `<launcher> --help` (stdin empty, own process group) and
// requires exit 0 within a minute.
func (m *Manager) runHelp(ctx context.Context, agent, launcher string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, launcher, "--help")
	cmd.Env = m.agentEnv(agent)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if err != nil {
		tail := strings.TrimSpace(out.String())
		if len(tail) > 1000 {
			tail = "…" + tail[len(tail)-1000:]
		}
		return fmt.Errorf("`%s --help` failed: %v: %s", launcher, err, tail)
	}
	return nil
}
