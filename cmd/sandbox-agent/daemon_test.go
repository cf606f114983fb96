package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// daemonEnv runs the CLI with its own data directory.
type daemonEnv struct {
	t    *testing.T
	data string
	port int
}

func newDaemonEnv(t *testing.T) *daemonEnv {
	d := &daemonEnv{t: t, data: t.TempDir(), port: freePort(t)}
	t.Cleanup(func() {
		// Never leave a daemon behind, whatever the test did.
		if out, code := d.run("daemon", "stop"); code != 0 {
			t.Errorf("cleanup stop: %d %s", code, out)
		}
	})
	return d
}

func (d *daemonEnv) run(args ...string) (string, int) {
	d.t.Helper()
	return run(d.t, append(args, "--port", strconv.Itoa(d.port), "--data-dir", d.data)...)
}

func (d *daemonEnv) file(ext string) string {
	return filepath.Join(d.data, "daemon", fmt.Sprintf("daemon-127-0-0-1-%d.%s", d.port, ext))
}

var pidRE = regexp.MustCompile(`PID (\d+)`)

func pidOf(t *testing.T, out string) int {
	t.Helper()
	m := pidRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no PID in %q", out)
	}
	pid, _ := strconv.Atoi(m[1])
	return pid
}

func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && i+2 < len(b) && b[i+2] != 'Z'
}

func healthStatus(t *testing.T, port int, token string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/v1/agents", port), nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestDaemonLifecycle(t *testing.T) {
	d := newDaemonEnv(t)
	if out, code := d.run("daemon", "status"); code != 0 || strings.TrimSpace(out) != "Daemon not running" {
		t.Fatalf("status before start: %d %q", code, out)
	}
	out, code := d.run("daemon", "start")
	if code != 0 || !strings.HasPrefix(out, "daemon started (PID ") || !strings.Contains(out, d.file("log")) {
		t.Fatalf("start: %d %q", code, out)
	}
	pid := pidOf(t, out)
	if b, _ := os.ReadFile(d.file("pid")); strings.TrimSpace(string(b)) != strconv.Itoa(pid) {
		t.Fatalf("pid file %q, want %d", b, pid)
	}
	// start returned after the health check: the server answers now.
	if st := healthStatus(t, d.port, ""); st != 200 {
		t.Fatalf("GET /v1/agents: %d", st)
	}
	if out, _ := d.run("daemon", "start"); !strings.HasPrefix(out, "daemon already running (PID "+strconv.Itoa(pid)) {
		t.Fatalf("second start: %q", out)
	}
	out, _ = d.run("daemon", "status")
	if !strings.HasPrefix(out, fmt.Sprintf("Daemon running (PID %d, build %s, logs: ", pid, version)) || strings.Contains(out, "outdated") {
		t.Fatalf("status: %q", out)
	}

	// Another build started it: status says so and --upgrade replaces it.
	if err := os.WriteFile(d.file("version"), []byte("0.0.1-old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, _ := d.run("daemon", "status"); !strings.Contains(out, "build 0.0.1-old") || !strings.HasSuffix(strings.TrimSpace(out), "[outdated, restart recommended]") {
		t.Fatalf("outdated status: %q", out)
	}
	if out, _ := d.run("daemon", "start"); !strings.Contains(out, "already running") {
		t.Fatalf("start without --upgrade: %q", out)
	}
	out, code = d.run("daemon", "start", "--upgrade")
	if code != 0 || !strings.HasPrefix(out, "daemon started") {
		t.Fatalf("upgrade: %d %q", code, out)
	}
	pid2 := pidOf(t, out)
	if pid2 == pid || alive(pid) {
		t.Fatalf("upgrade kept the old daemon: old %d (alive %v), new %d", pid, alive(pid), pid2)
	}

	out, code = d.run("daemon", "stop")
	if code != 0 || out != fmt.Sprintf("stopping daemon (PID %d)...\ndaemon stopped\n", pid2) {
		t.Fatalf("stop: %d %q", code, out)
	}
	if alive(pid2) {
		t.Fatal("daemon still alive after stop")
	}
	if st := healthStatus(t, d.port, ""); st != 0 {
		t.Fatalf("port still answers: %d", st)
	}
	for _, ext := range []string{"pid", "version"} {
		if _, err := os.Stat(d.file(ext)); !os.IsNotExist(err) {
			t.Errorf("%s file left: %v", ext, err)
		}
	}
	if b, _ := os.ReadFile(d.file("log")); !strings.Contains(string(b), "server listening") {
		t.Errorf("log has no server output: %q", b)
	}
	if out, _ := d.run("daemon", "stop"); strings.TrimSpace(out) != "daemon is not running" {
		t.Fatalf("second stop: %q", out)
	}
}

func TestDaemonStalePIDFile(t *testing.T) {
	d := newDaemonEnv(t)
	// A PID that is certainly not our daemon: a process that has exited,
	// and one that lives but is something else.
	done := exec.Command("true")
	if err := done.Run(); err != nil {
		t.Fatal(err)
	}
	other := exec.Command("sleep", "60")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = other.Process.Kill(); _ = other.Wait() }()
	for _, pid := range []int{done.Process.Pid, other.Process.Pid} {
		if err := os.MkdirAll(filepath.Dir(d.file("pid")), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(d.file("pid"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, _ := d.run("daemon", "status"); strings.TrimSpace(out) != "Daemon not running" {
			t.Fatalf("status with PID %d: %q", pid, out)
		}
		if out, _ := d.run("daemon", "stop"); strings.TrimSpace(out) != "daemon is not running (stale PID file)" {
			t.Fatalf("stop with PID %d: %q", pid, out)
		}
		if _, err := os.Stat(d.file("pid")); !os.IsNotExist(err) {
			t.Fatal("stale PID file kept")
		}
	}
	if !alive(other.Process.Pid) {
		t.Fatal("stop signalled an unrelated process")
	}
}

func TestDaemonStartFailuresLeaveNothing(t *testing.T) {
	d := newDaemonEnv(t)
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", d.port))
	if err != nil {
		t.Fatal(err)
	}
	out, code := d.run("daemon", "start")
	ln.Close()
	if code != 1 || !strings.Contains(out, fmt.Sprintf("127.0.0.1:%d is already in use by another process", d.port)) {
		t.Fatalf("start on a busy port: %d %q", code, out)
	}
	// An address the server cannot bind (TEST-NET-3, not on this host):
	// it exits, and the error quotes its log.
	out, code = d.run("daemon", "start", "--host", "203.0.113.7")
	if code != 1 || !strings.Contains(out, "the server exited during start (exit code 1)") || !strings.Contains(out, "cannot assign requested address") {
		t.Fatalf("start on a foreign address: %d %q", code, out)
	}
	for _, f := range []string{d.file("pid"), strings.Replace(d.file("pid"), "127-0-0-1", "203-0-113-7", 1)} {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Fatalf("PID file %s left after a failed start", f)
		}
	}
	if out, _ := d.run("daemon", "status"); strings.TrimSpace(out) != "Daemon not running" {
		t.Fatalf("status: %q", out)
	}
}

// TestDaemonWithToken: the daemon's server requires the token, which is on
// no command line (neither the daemon's with --token-file nor the server's).
func TestDaemonWithToken(t *testing.T) {
	for _, tc := range []struct {
		name string
		args func(t *testing.T) []string
	}{
		{"flag", func(*testing.T) []string { return []string{"--token", "s3cret"} }},
		{"file", func(t *testing.T) []string {
			f := filepath.Join(t.TempDir(), "token")
			if err := os.WriteFile(f, []byte("s3cret\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			return []string{"--token-file", f}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDaemonEnv(t)
			out, code := d.run(append([]string{"daemon", "start"}, tc.args(t)...)...)
			if code != 0 {
				t.Fatalf("start: %d %q", code, out)
			}
			if st := healthStatus(t, d.port, ""); st != http.StatusUnauthorized {
				t.Fatalf("without token: %d", st)
			}
			if st := healthStatus(t, d.port, "s3cret"); st != 200 {
				t.Fatalf("with token: %d", st)
			}
			pid := pidOf(t, out)
			cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
			if err != nil || strings.Contains(string(cmdline), "s3cret") {
				t.Fatalf("server command line %q (%v) shows the token", cmdline, err)
			}
			// SIGTERM is the stop path; the process must be gone, not a zombie.
			if out, _ := d.run("daemon", "stop"); !strings.Contains(out, "daemon stopped") {
				t.Fatalf("stop: %q", out)
			}
			if err := syscall.Kill(pid, 0); err == nil && alive(pid) {
				t.Fatal("daemon alive after stop")
			}
		})
	}
	d := newDaemonEnv(t)
	if out, code := d.run("daemon", "start", "--token", "a", "--token-file", "/nonexistent"); code == 0 || !strings.Contains(out, "exclude each other") {
		t.Fatalf("--token with --token-file: %d %q", code, out)
	}
}

// TestDaemonInheritsEnvRequestLog: SANDBOX_AGENT_LOG_HTTP reaches the
// daemon's server, whose log then has the start's own health checks.
func TestDaemonInheritsEnvRequestLog(t *testing.T) {
	d := newDaemonEnv(t)
	cmd := exec.Command(bin, "daemon", "start", "--port", strconv.Itoa(d.port), "--data-dir", d.data)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "SANDBOX_AGENT_LOG_HTTP=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("start: %v %s", err, out)
	}
	if out, _ := d.run("daemon", "stop"); !strings.Contains(out, "daemon stopped") {
		t.Fatalf("stop: %q", out)
	}
	log, _ := os.ReadFile(d.file("log"))
	if !strings.Contains(string(log), `msg="http request" method=GET path=/v1/health status=200`) {
		t.Fatalf("no request line in the daemon log:\n%s", log)
	}
}

// TestDaemonRelativeDataDir: the daemon runs from /, so a relative
// --data-dir is resolved against the caller's directory first.
func TestDaemonRelativeDataDir(t *testing.T) {
	port := strconv.Itoa(freePort(t))
	base := t.TempDir()
	start := exec.Command(bin, "daemon", "start", "--port", port, "--data-dir", "rel")
	start.Dir, start.Env = base, append(os.Environ(), "HOME="+t.TempDir())
	if out, err := start.CombinedOutput(); err != nil || !strings.Contains(string(out), filepath.Join(base, "rel", "daemon")) {
		t.Fatalf("start: %v %s", err, out)
	}
	t.Cleanup(func() {
		_ = exec.Command(bin, "daemon", "stop", "--port", port, "--data-dir", filepath.Join(base, "rel")).Run()
	})
	// The server got the absolute directory.
	pid, _ := os.ReadFile(filepath.Join(base, "rel", "daemon", "daemon-127-0-0-1-"+port+".pid"))
	cmdline, _ := os.ReadFile("/proc/" + strings.TrimSpace(string(pid)) + "/cmdline")
	if !strings.Contains(string(cmdline), "--data-dir\x00"+filepath.Join(base, "rel")+"\x00") {
		t.Errorf("server command line %q", cmdline)
	}
	stop := exec.Command(bin, "daemon", "stop", "--port", port, "--data-dir", filepath.Join(base, "rel"))
	if out, err := stop.CombinedOutput(); err != nil || !strings.Contains(string(out), "daemon stopped") {
		t.Fatalf("stop: %v %s", err, out)
	}
}
