package agents

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/sandbox-agent-go/sandbox-agent/internal/problem"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeNPM writes an npm stand-in: `install ... --prefix DIR pkg@ver...`
// creates node_modules/<pkg>/package.json and, per package, the bins the
// real package has. Behaviour switches are files next to the script:
// "offline" (fail like an unreachable registry), "helpfail" (installed
// bins exit 1 on --help), "nobins" (install no executables).
func fakeNPM(t *testing.T) (npm, dir string) {
	t.Helper()
	dir = t.TempDir()
	script := `#!/bin/sh
here=$(dirname "$0")
if [ -f "$here/offline" ]; then echo "npm error code ENOTFOUND" >&2; echo "npm error network request failed" >&2; exit 1; fi
prefix=""
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix="$2"; shift 2; continue ;;
    -*|install) shift; continue ;;
  esac
  spec="$1"; shift
  case "$spec" in
    @*) name="@$(echo "${spec#@}" | cut -d@ -f1)"; ver=$(echo "${spec#@}" | cut -s -d@ -f2) ;;
    *) name=$(echo "$spec" | cut -d@ -f1); ver=$(echo "$spec" | cut -s -d@ -f2) ;;
  esac
  [ -n "$ver" ] || ver=1.0.0
  if [ -f "$here/fail-$(echo "$spec" | tr '/@' '__')" ]; then echo "npm error code E404" >&2; exit 1; fi
  echo "$spec" >> "$here/installed"
  mkdir -p "$prefix/node_modules/$name" "$prefix/node_modules/.bin"
  echo "{\"version\":\"$ver\"}" > "$prefix/node_modules/$name/package.json"
  case "$name" in
    @anthropic-ai/claude-code) bins=claude ;;
    @openai/codex) bins=codex ;;
    opencode-ai) bins=opencode ;;
    @earendil-works/pi-coding-agent) bins=pi ;;
    *) bins=$(basename "$name") ;;
  esac
  [ -f "$here/nobins" ] && bins=""
  for b in $bins; do
    code=0; [ -f "$here/helpfail" ] && code=1
    printf '#!/bin/sh\nif [ "$1" = "--version" ]; then echo "%s (Fake)"; exit 0; fi\nif [ "$1" = "--help" ]; then echo "usage: %s"; exit %s; fi\nexit 0\n' "$ver" "$b" "$code" > "$prefix/node_modules/.bin/$b"
    chmod +x "$prefix/node_modules/.bin/$b"
  done
done
`
	npm = filepath.Join(dir, "npm")
	if err := os.WriteFile(npm, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return npm, dir
}

func newTestManager(t *testing.T, registry string) (*Manager, string) {
	t.Helper()
	npm, dir := fakeNPM(t)
	if registry == "" {
		registry = "off"
	}
	m := NewManager(Options{
		DataDir:      t.TempDir(),
		Executable:   "/bin/true",
		Env:          []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()},
		Logger:       slog.New(slog.DiscardHandler),
		RegistryURL:  registry,
		NPM:          npm,
		NativeSource: "npm",
	})
	return m, dir
}

func TestInstallFromPinsWhenRegistryUnreachable(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	url := dead.URL + "/registry.json"
	dead.Close()
	m, npmDir := newTestManager(t, url)
	var steps []string
	res, err := m.InstallWithProgress(t.Context(), "claude", InstallRequest{}, func(ev ProgressEvent) {
		steps = append(steps, ev.Step+":"+ev.Status)
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "registry:start registry:skip native:start native:done agent_process:start agent_process:done launcher:start launcher:done verify:start verify:done"
	if strings.Join(steps, " ") != want {
		t.Fatalf("steps %v", steps)
	}
	if res.AlreadyInstalled || len(res.Artifacts) != 2 {
		t.Fatalf("%+v", res)
	}
	if a := res.Artifacts[0]; a.Kind != KindNative || a.Source != SourceNpm || a.Version != "2.1.197" || a.Path != filepath.Join(m.BinDir(), "claude") {
		t.Fatalf("%+v", a)
	}
	if a := res.Artifacts[1]; a.Kind != KindAgentProcess || a.Source != SourceFallback || a.Version != "0.49.0" || a.Path != m.LauncherPath("claude") {
		t.Fatalf("%+v", a)
	}
	b, _ := os.ReadFile(m.LauncherPath("claude"))
	wantLauncher := "#!/usr/bin/env sh\nset -e\nexec '" + filepath.Join(m.BinDir(), "agent_processes", "claude", "node_modules", ".bin", "claude-agent-acp") + "' \"$@\"\n"
	if string(b) != wantLauncher {
		t.Fatalf("launcher:\n%s", b)
	}
	installed, _ := os.ReadFile(filepath.Join(npmDir, "installed"))
	if string(installed) != "@anthropic-ai/claude-code@2.1.197\n@agentclientprotocol/claude-agent-acp@0.49.0\n" {
		t.Fatalf("npm got %q", installed)
	}
	if !m.Installed("claude") {
		t.Fatal("not installed")
	}
	info, _ := m.Info("claude", true)
	if !info.Installed || info.Version != "2.1.197" || info.Path != filepath.Join(m.BinDir(), "claude") {
		t.Fatalf("%+v", info)
	}
	// Staging directories are gone.
	ents, _ := os.ReadDir(filepath.Join(m.BinDir(), "agent_processes"))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Fatalf("left over: %s", e.Name())
		}
	}
	res, err = m.Install(t.Context(), "claude", InstallRequest{})
	if err != nil || !res.AlreadyInstalled || len(res.Artifacts) != 0 {
		t.Fatalf("%+v %v", res, err)
	}
	// Reinstall with explicit versions.
	res, err = m.Install(t.Context(), "claude", InstallRequest{Reinstall: true, AgentVersion: "2.0.0", AgentProcessVersion: "0.50.1"})
	if err != nil || res.Artifacts[0].Version != "2.0.0" || res.Artifacts[1].Version != "0.50.1" {
		t.Fatalf("%+v %v", res, err)
	}
	if info, _ := m.Info("claude", true); info.Version != "2.0.0" {
		t.Fatalf("version not refreshed: %+v", info)
	}
}

func TestInstallFromRegistryEntry(t *testing.T) {
	reg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"version":"1","agents":[{"id":"pi-acp","version":"0.0.30","distribution":{"npx":{"package":"pi-acp@0.0.30","args":["--x"],"env":{"PI_FOO":"it's","X; touch /tmp/pwned #":"1"}}}}]}`))
	}))
	defer reg.Close()
	m, _ := newTestManager(t, reg.URL)
	res, err := m.Install(t.Context(), "pi", InstallRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if a := res.Artifacts[0]; a.Source != SourceRegistry || a.Version != "0.0.30" {
		t.Fatalf("%+v", res)
	}
	b, _ := os.ReadFile(m.LauncherPath("pi"))
	bin := filepath.Join(m.BinDir(), "agent_processes", "pi", "node_modules", ".bin")
	want := "#!/usr/bin/env sh\nset -e\nexport PI_FOO='it'\\''s'\nexport PATH='" + bin + "'\":$PATH\"\nexec '" + bin + "/pi-acp' '--x' \"$@\"\n"
	if string(b) != want {
		t.Fatalf("launcher:\n%s\nwant:\n%s", b, want)
	}
	if !isExecutable(filepath.Join(bin, "pi")) {
		t.Fatal("pi CLI not installed next to pi-acp")
	}
	// The version override applies to the registry's package too.
	res, err = m.Install(t.Context(), "pi", InstallRequest{Reinstall: true, AgentProcessVersion: "0.0.23"})
	if err != nil || res.Artifacts[0].Version != "0.0.23" {
		t.Fatalf("%+v %v", res, err)
	}
	info, _ := m.Info("pi", true)
	if info.Version != "0.0.23" || info.Path != m.LauncherPath("pi") {
		t.Fatalf("%+v", info)
	}
}

func TestRegistryEntryThatFailsFallsBackToPin(t *testing.T) {
	reg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"agents":[{"id":"cursor-agent-acp","version":"9.9.9","distribution":{"npx":{"package":"@blowmage/cursor-agent-acp@9.9.9"}}},
		 {"id":"codex-acp","version":"1.0.0","distribution":{"binary":{"linux-x86_64":{"archive":"http://127.0.0.1:1/x.zip","cmd":"./codex-acp"},"linux-aarch64":{"archive":"http://127.0.0.1:1/x.zip","cmd":"./codex-acp"}}}}]}`))
	}))
	defer reg.Close()
	m, dir := newTestManager(t, reg.URL)
	_ = os.WriteFile(filepath.Join(dir, "fail-_blowmage_cursor-agent-acp_9.9.9"), nil, 0o644)
	var detail string
	res, err := m.InstallWithProgress(t.Context(), "cursor", InstallRequest{}, func(ev ProgressEvent) {
		if ev.Step == StepAgentProcess && ev.Status == "done" {
			detail = ev.Detail
		}
	})
	if err != nil || res.Artifacts[0].Source != SourceFallback || res.Artifacts[0].Version != "0.7.1" {
		t.Fatalf("%+v %v", res, err)
	}
	res, err = m.InstallWithProgress(t.Context(), "codex", InstallRequest{}, func(ev ProgressEvent) {
		if ev.Step == StepAgentProcess && ev.Status == "done" {
			detail = ev.Detail
		}
	})
	if err != nil || res.Artifacts[1].Source != SourceFallback || !strings.Contains(detail, "registry binary failed") {
		t.Fatalf("%+v %v %q", res, err, detail)
	}
}

func installErr(t *testing.T, err error) string {
	t.Helper()
	var p *problem.Problem
	if !errors.As(err, &p) || p.Status != 500 {
		t.Fatalf("want install_failed, got %v", err)
	}
	return p.Details["stderr"].(string)
}

func TestFailedInstallsNameTheStepAndLeaveNothingInstalled(t *testing.T) {
	t.Run("verify", func(t *testing.T) {
		m, dir := newTestManager(t, "")
		_ = os.WriteFile(filepath.Join(dir, "helpfail"), nil, 0o644)
		_, err := m.Install(t.Context(), "cursor", InstallRequest{})
		msg := installErr(t, err)
		if !strings.Contains(msg, "step verify failed") || !strings.Contains(msg, "--help") || !strings.Contains(msg, "cursor-agent login") {
			t.Fatal(msg)
		}
		if m.Installed("cursor") {
			t.Fatal("installed after failed verify")
		}
		if _, err := os.Stat(m.LauncherPath("cursor") + ".verify"); !os.IsNotExist(err) {
			t.Fatal("temporary launcher left")
		}
	})
	t.Run("missing executable", func(t *testing.T) {
		m, dir := newTestManager(t, "")
		_ = os.WriteFile(filepath.Join(dir, "nobins"), nil, 0o644)
		_, err := m.Install(t.Context(), "codex", InstallRequest{})
		msg := installErr(t, err)
		if !strings.Contains(msg, "step native failed") || !strings.Contains(msg, "missing executable: node_modules/.bin/codex") {
			t.Fatal(msg)
		}
		if m.Installed("codex") {
			t.Fatal("installed")
		}
	})
	t.Run("npm offline", func(t *testing.T) {
		m, dir := newTestManager(t, "")
		_ = os.WriteFile(filepath.Join(dir, "offline"), nil, 0o644)
		_, err := m.Install(t.Context(), "amp", InstallRequest{})
		msg := installErr(t, err)
		for _, want := range []string{"step agent_process failed", "npm registry is unreachable", "amp-acp@0.7.0", "AMP_API_KEY", "amp-acp not written"} {
			if !strings.Contains(msg, want) {
				t.Fatalf("%q missing in %s", want, msg)
			}
		}
	})
	t.Run("no npm", func(t *testing.T) {
		m, _ := newTestManager(t, "")
		m.opts.NPM = filepath.Join(t.TempDir(), "npm")
		_, err := m.Install(t.Context(), "opencode", InstallRequest{})
		msg := installErr(t, err)
		if !strings.Contains(msg, "step native failed") || !strings.Contains(msg, "npm not found") {
			t.Fatal(msg)
		}
	})
	t.Run("reinstall failure uninstalls", func(t *testing.T) {
		m, dir := newTestManager(t, "")
		if _, err := m.Install(t.Context(), "cursor", InstallRequest{}); err != nil {
			t.Fatal(err)
		}
		_ = os.WriteFile(filepath.Join(dir, "offline"), nil, 0o644)
		if _, err := m.Install(t.Context(), "cursor", InstallRequest{Reinstall: true}); err == nil {
			t.Fatal("want error")
		}
		if m.Installed("cursor") {
			t.Fatal("a failed reinstall must not report installed")
		}
	})
}

func TestOpencodeRunsNativeACP(t *testing.T) {
	m, _ := newTestManager(t, "")
	res, err := m.Install(t.Context(), "opencode", InstallRequest{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(m.LauncherPath("opencode"))
	if !strings.HasSuffix(string(b), "exec '"+filepath.Join(m.BinDir(), "opencode")+"' 'acp' \"$@\"\n") {
		t.Fatalf("%s", b)
	}
	if len(res.Artifacts) != 2 || res.Artifacts[1].Version != "1.18.33" {
		t.Fatalf("%+v", res)
	}
}

func TestCommandLaunchRules(t *testing.T) {
	m, _ := newTestManager(t, "")
	m.opts.RequirePreinstall = true
	_, err := m.Command(t.Context(), "claude")
	var p *problem.Problem
	if !errors.As(err, &p) || p.Status != 404 || p.Code != problem.AgentNotInstalled {
		t.Fatalf("%v", err)
	}
	// A hand-placed launcher runs as is.
	if err := writeExecutable(m.LauncherPath("claude"), []byte("#!/bin/sh\nexit 0\n")); err != nil {
		t.Fatal(err)
	}
	cmd, err := m.Command(t.Context(), "claude")
	if err != nil {
		t.Fatal(err)
	}
	hasSandbox := false
	for _, kv := range cmd.Env {
		hasSandbox = hasSandbox || kv == "IS_SANDBOX=1"
	}
	if hasSandbox != (os.Geteuid() == 0) {
		t.Fatalf("IS_SANDBOX=1 must be set exactly when root: %v", cmd.Env)
	}
	base := m.opts.Env
	m.opts.Env = append(base, "IS_SANDBOX=0")
	cmd, _ = m.Command(t.Context(), "claude")
	for _, kv := range cmd.Env {
		if kv == "IS_SANDBOX=1" {
			t.Fatal("an explicit IS_SANDBOX=0 must be kept")
		}
	}
	if os.Geteuid() == 0 {
		// Claude Code only honours "1"; "yes" (seen in real sandboxes) is
		// normalised, the last entry wins in exec.
		m.opts.Env = append(base, "IS_SANDBOX=yes")
		cmd, _ = m.Command(t.Context(), "claude")
		if cmd.Env[len(cmd.Env)-1] != "IS_SANDBOX=1" {
			t.Fatalf("IS_SANDBOX=yes not normalised: %v", cmd.Env)
		}
	}
	m.opts.Env = base
	// Cursor without the cursor-agent CLI: a clear, actionable error.
	if err := writeExecutable(m.LauncherPath("cursor"), []byte("#!/bin/sh\nexit 0\n")); err != nil {
		t.Fatal(err)
	}
	_, err = m.Command(t.Context(), "cursor")
	if err == nil || !strings.Contains(err.Error(), "cursor-agent` is not on PATH") || !strings.Contains(err.Error(), "https://cursor.com/install") {
		t.Fatalf("%v", err)
	}
}

func TestHTTPInstallBodyAndResponse(t *testing.T) {
	m, _ := newTestManager(t, "")
	mux := http.NewServeMux()
	for _, r := range m.Routes() {
		mux.HandleFunc(r.Method+" "+r.Pattern, r.Handler)
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()
	post := func(path, body string) (int, string) {
		resp, err := http.Post(srv.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	status, body := post("/v1/agents/cursor/install", `{"agentProcessVersion":"0.7.0"}`)
	var res struct {
		AlreadyInstalled *bool `json:"already_installed"`
		Artifacts        []Artifact
	}
	if status != 200 || json.Unmarshal([]byte(body), &res) != nil || res.AlreadyInstalled == nil || *res.AlreadyInstalled ||
		res.Artifacts[0].Kind != "agent_process" || res.Artifacts[0].Source != "fallback" || res.Artifacts[0].Version != "0.7.0" {
		t.Fatal(status, body)
	}
	if status, body = post("/v1/agents/cursor/install", `{}`); body != `{"already_installed":true,"artifacts":[]}` {
		t.Fatal(status, body)
	}
	resp, err := http.Get(srv.URL + "/v1/agents/cursor?config=true&no_cache=true")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var info Info
	_ = json.NewDecoder(resp.Body).Decode(&info)
	if !info.Installed || info.Version != "0.7.0" || info.Path != m.LauncherPath("cursor") {
		t.Fatalf("%+v", info)
	}
}

func TestWithVersion(t *testing.T) {
	for in, want := range map[[2]string]string{
		{"pi-acp@0.0.30", "0.0.23"}:                   "pi-acp@0.0.23",
		{"@scope/pkg@1.2.3", "2.0.0"}:                 "@scope/pkg@2.0.0",
		{"@scope/pkg", "2.0.0"}:                       "@scope/pkg@2.0.0",
		{"@scope/pkg@1", ""}:                          "@scope/pkg@1",
		{"plain", "3"}:                                "plain@3",
		{"@zed-industries/codex-acp@^0.16", "0.16.0"}: "@zed-industries/codex-acp@0.16.0",
	} {
		if got := withVersion(in[0], in[1]); got != want {
			t.Errorf("withVersion(%q,%q) = %q", in[0], in[1], got)
		}
	}
}

// TestConcurrentInstallsAcrossManagers: two managers on one data directory
// stand for two processes (flock locks belong to the open file, so they
// exclude each other exactly as separate processes would). The agent is
// installed once; the second install finds it installed.
func TestConcurrentInstallsAcrossManagers(t *testing.T) {
	a, npmDir := newTestManager(t, "")
	b := NewManager(a.opts)
	results := make(chan InstallResult, 2)
	errs := make(chan error, 2)
	for _, m := range []*Manager{a, b} {
		go func() {
			res, err := m.Install(t.Context(), "codex", InstallRequest{})
			results <- res
			errs <- err
		}()
	}
	already := 0
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		if (<-results).AlreadyInstalled {
			already++
		}
	}
	installed, _ := os.ReadFile(filepath.Join(npmDir, "installed"))
	if already != 1 || strings.Count(string(installed), "\n") != 2 {
		t.Fatalf("already installed %d times; npm ran for %q", already, installed)
	}
}

// TestInstallWaitsForAnotherProcessBoundedByContext: while another process
// holds the install lock, an install waits, gives up with its context and a
// message naming the lock, and succeeds once the lock is released.
func TestInstallWaitsForAnotherProcessBoundedByContext(t *testing.T) {
	a, _ := newTestManager(t, "")
	b := NewManager(a.opts)
	unlock, err := a.agentLock(t.Context(), "codex")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := b.Install(ctx, "codex", InstallRequest{})
		done <- err
	}()
	cancel()
	if msg := installErr(t, <-done); !strings.Contains(msg, "another process installing codex") || !strings.Contains(msg, ".install-locks") {
		t.Fatal(msg)
	}
	if b.Installed("codex") {
		t.Fatal("installed while locked")
	}
	unlock()
	if _, err := b.Install(t.Context(), "codex", InstallRequest{}); err != nil || !b.Installed("codex") {
		t.Fatalf("after unlock: %v", err)
	}
}
