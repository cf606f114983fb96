package agents

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
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

// binaryEntry installs a registry binary distribution (archive + cmd).
func (in *installer) binaryEntry(ctx context.Context, prefix, version, archive, cmd string, args []string, env map[string]string) (string, bool, error) {
	m := in.m
	stage, err := os.MkdirTemp(m.BinDir(), ".staging-"+in.agent+"-")
	if err != nil {
		return "", false, err
	}
	defer os.RemoveAll(stage)
	if err := os.Chmod(stage, 0o755); err != nil {
		return "", false, err
	}
	data, err := m.download(ctx, archive)
	if err != nil {
		return "", false, err
	}
	switch {
	case strings.HasSuffix(archive, ".tar.gz"), strings.HasSuffix(archive, ".tgz"):
		err = untarGz(data, stage)
	default:
		err = fmt.Errorf("unsupported archive format: %s", archive)
	}
	if err != nil {
		return "", false, err
	}
	if err := swapDir(stage, prefix); err != nil {
		return "", false, err
	}
	exe := filepath.Join(prefix, filepath.Clean("/"+cmd))
	if !isExecutable(exe) {
		found := ""
		_ = filepath.WalkDir(prefix, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && d.Name() == filepath.Base(cmd) && found == "" {
				found = p
			}
			return nil
		})
		if found == "" {
			return "", false, fmt.Errorf("archive %s has no %s", archive, cmd)
		}
		exe = found
	}
	in.exec, in.args = exe, args
	in.env = sortedEnv(env)
	in.mf.Source, in.mf.Package, in.mf.Version = SourceRegistry, archive, version
	in.res.Artifacts = append(in.res.Artifacts, Artifact{Kind: KindAgentProcess, Path: m.LauncherPath(in.agent), Source: SourceRegistry, Version: version})
	return "binary " + archive, false, nil
}

func sortedEnv(m map[string]string) [][2]string {
	var out [][2]string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, [2]string{k, m[k]})
	}
	return out
}

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

// swapDir replaces dst with the directory stage (rename; the old dst is
// moved aside first and removed after).
func swapDir(stage, dst string) error {
	old := ""
	if _, err := os.Lstat(dst); err == nil {
		old = fmt.Sprintf("%s.old-%d", dst, time.Now().UnixNano())
		if err := os.Rename(dst, old); err != nil {
			return err
		}
	}
	if err := os.Rename(stage, dst); err != nil {
		if old != "" {
			_ = os.Rename(old, dst)
		}
		return err
	}
	if old != "" {
		_ = os.RemoveAll(old)
	}
	return nil
}

// replaceSymlink atomically points link at target (relative when target
// is relative-able and under the link's directory tree, else absolute).
func replaceSymlink(target, link string) error {
	rel, err := filepath.Rel(filepath.Dir(link), target)
	if err != nil || strings.HasPrefix(rel, "..") {
		rel = target
	}
	tmp := fmt.Sprintf("%s.tmp-%d", link, time.Now().UnixNano())
	if err := os.Symlink(rel, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, link); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
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

// nativeDownload fetches the native CLI from upstream's release sources.
func (in *installer) nativeDownload(ctx context.Context, pin Pin, dst string) (string, error) {
	m := in.m
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	musl := false
	if g, _ := filepath.Glob("/lib/ld-musl-*.so.1"); len(g) > 0 {
		musl = true
	}
	arch := map[string]string{"amd64": "x64", "arm64": "arm64"}[runtime.GOARCH]
	var url, member string
	v := in.req.AgentVersion
	switch in.agent {
	case "claude":
		base := "https://storage.googleapis.com/claude-code-dist-86c565f3-f756-42ad-8dfa-d59b1c096819/claude-code-releases"
		if v == "" {
			b, err := m.download(probeCtx(ctx), base+"/latest")
			if err != nil {
				return "", err
			}
			v = strings.TrimSpace(string(b))
		}
		plat := runtime.GOOS + "-" + arch
		if musl {
			plat += "-musl"
		}
		url = base + "/" + v + "/" + plat + "/claude"
	case "codex":
		target := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[runtime.GOARCH] + "-unknown-linux-musl"
		rel := "latest/download"
		if v != "" {
			rel = "download/rust-v" + v
		}
		url = "https://github.com/openai/codex/releases/" + rel + "/codex-" + target + ".tar.gz"
		member = "codex-" + target
	case "opencode":
		plat := runtime.GOOS + "-" + arch
		if musl {
			plat += "-musl"
		}
		rel := "latest/download"
		if v != "" {
			rel = "download/v" + v
		}
		url = "https://github.com/anomalyco/opencode/releases/" + rel + "/opencode-" + plat + ".tar.gz"
		member = "opencode"
	default:
		return "", errors.New("no download source")
	}
	if runtime.GOOS != "linux" && in.agent != "claude" {
		return "", errors.New("download only supported on linux here")
	}
	// A quick reachability probe keeps offline installs fast.
	if _, err := m.head(probeCtx(ctx), url); err != nil {
		return "", err
	}
	data, err := m.download(ctx, url)
	if err != nil {
		return "", err
	}
	if member != "" {
		data, err = tarMember(data, member)
		if err != nil {
			return "", fmt.Errorf("%s: %w", url, err)
		}
	}
	tmp := fmt.Sprintf("%s.tmp-%d", dst, time.Now().UnixNano())
	if err := os.WriteFile(tmp, data, 0o755); err != nil {
		return "", err
	}
	if m.probeVersion(tmp) == "" {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("%s: the downloaded binary does not run", url)
	}
	if err := os.Rename(tmp, dst); err != nil {
		_ = os.Remove(tmp)
		return "", err
	}
	return "downloaded " + url, nil
}

func probeCtx(ctx context.Context) context.Context {
	c, cancel := context.WithTimeout(ctx, 15*time.Second)
	context.AfterFunc(c, cancel)
	return c
}

func (m *Manager) head(ctx context.Context, url string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := m.httpClient().Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	if resp.StatusCode >= 400 {
		return resp.StatusCode, fmt.Errorf("HEAD %s: %s", url, resp.Status)
	}
	return resp.StatusCode, nil
}

func (m *Manager) download(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := m.httpClient().Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 1<<30))
}

func tarMember(gz []byte, name string) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err != nil {
			return nil, fmt.Errorf("archive has no %s", name)
		}
		if h.Typeflag == tar.TypeReg && filepath.Base(h.Name) == name {
			return io.ReadAll(io.LimitReader(tr, 1<<30))
		}
	}
}

func untarGz(gz []byte, dir string) error {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return err
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		p := filepath.Join(dir, filepath.Clean("/"+h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode)&0o755|0o600)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, io.LimitReader(tr, 1<<30))
			f.Close()
			if err != nil {
				return err
			}
		}
	}
}

// LinkAgent makes agent, installed under the data directory from, usable
// from the data directory to by symlinking its launcher, manifest and
// native CLI (launchers hold absolute paths, so the install itself stays
// where it is). Tests use it to share one agents cache between servers.
func LinkAgent(from, to, agent string) error {
	src := NewManager(Options{DataDir: from, Env: []string{}})
	dst := NewManager(Options{DataDir: to, Env: []string{}})
	if !isExecutable(src.LauncherPath(agent)) {
		return fmt.Errorf("%s is not installed in %s", agent, from)
	}
	links := [][2]string{{src.LauncherPath(agent), dst.LauncherPath(agent)}, {src.manifestPath(agent), dst.manifestPath(agent)}}
	if p := src.NativePath(agent); p != "" {
		links = append(links, [2]string{p, dst.NativePath(agent)})
	}
	for _, l := range links {
		if _, err := os.Stat(l[0]); err != nil {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(l[1]), 0o755); err != nil {
			return err
		}
		target, err := filepath.Abs(l[0])
		if err != nil {
			return err
		}
		if err := replaceSymlink(target, l[1]); err != nil {
			return err
		}
	}
	return nil
}
