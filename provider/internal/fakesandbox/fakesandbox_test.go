//go:build unix

package fakesandbox

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/internal/testutil/testbin"
)

var bin string

func TestMain(m *testing.M) { os.Exit(testbin.Main(m, &bin)) }

func newSandbox(t *testing.T, o Options) *Sandbox {
	t.Helper()
	sb, err := New(t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := sb.Destroy(ctx); err != nil {
			t.Error(err)
		}
	})
	return sb
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// eventually polls cond until it holds or ctx ends.
func eventually(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v", what, ctx.Err())
		case <-tick.C:
		}
	}
}

// groupAlive reports whether any process of the group still exists.
func groupAlive(pgid int) bool {
	return !errors.Is(syscall.Kill(-pgid, 0), syscall.ESRCH)
}

func TestRun(t *testing.T) {
	sb := newSandbox(t, Options{Env: map[string]string{"GREETING": "hi"}})
	ctx := testCtx(t)
	tests := []struct {
		name, cmd      string
		stdout, stderr string
		code           int
	}{
		{"stdout", "echo out", "out\n", "", 0},
		{"stderr and exit code", "echo err >&2; exit 3", "", "err\n", 3},
		{"environment", "echo $GREETING", "hi\n", "", 0},
		{"home is the sandbox's", `test "$HOME" = "$PWD" && echo "$HOME"`, sb.HostPath("/home/user") + "\n", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := sb.Run(ctx, Cmd{Command: tt.cmd})
			if err != nil {
				t.Fatal(err)
			}
			if string(r.Stdout) != tt.stdout || string(r.Stderr) != tt.stderr || r.ExitCode != tt.code {
				t.Fatalf("got %q %q %d, want %q %q %d", r.Stdout, r.Stderr, r.ExitCode, tt.stdout, tt.stderr, tt.code)
			}
		})
	}
}

func TestRunTimeoutKillsGroup(t *testing.T) {
	sb := newSandbox(t, Options{})
	ctx, cancel := context.WithTimeout(testCtx(t), 300*time.Millisecond)
	defer cancel()
	// The grandchild writes its pid so the test can see the whole group die.
	r, err := sb.Run(ctx, Cmd{Command: "sleep 60 & echo $! > pid; echo started; wait"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	if r.ExitCode != -1 || string(r.Stdout) != "started\n" {
		t.Fatalf("result %+v", r)
	}
	b, err := sb.ReadFile("pid")
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	eventually(testCtx(t), t, "grandchild killed", func() bool {
		return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
	})
}

func TestFiles(t *testing.T) {
	sb := newSandbox(t, Options{})
	outside := t.TempDir()
	if err := os.Symlink(outside, sb.HostPath("/home/user/link")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path string
		wantErr    error
	}{
		{"absolute", "/opt/bin/tool", nil},
		{"relative to home", "notes.txt", nil},
		{"dot dot", "/../../etc/x", ErrEscape},
		{"dot dot inside", "/home/../../x", ErrEscape},
		{"symlink out", "/home/user/link/x", ErrEscape},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := sb.WriteFile(tt.path, []byte(tt.name), 0o644)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("WriteFile err = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil {
				return
			}
			got, err := sb.ReadFile(tt.path)
			if err != nil || string(got) != tt.name {
				t.Fatalf("ReadFile = %q, %v", got, err)
			}
		})
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("wrote outside the sandbox: %v", ents)
	}
	r, err := sb.Run(testCtx(t), Cmd{Command: "cat /dev/null; cat " + sb.HostPath("/opt/bin/tool")})
	if err != nil || string(r.Stdout) != "absolute" {
		t.Fatalf("command sees %q, %v", r.Stdout, err)
	}
}

// agent starts the real sandbox-agent server inside sb behind a proxy and
// waits until it answers.
func agent(t *testing.T, sb *Sandbox, p *Proxy) (*Process, *httptest.Server) {
	t.Helper()
	if _, err := sb.Port(2468); err != nil {
		t.Fatal(err)
	}
	if err := sb.WriteFile("/usr/local/bin/sandbox-agent", mustRead(t, bin), 0o755); err != nil {
		t.Fatal(err)
	}
	proc, err := sb.Start(Cmd{Command: sb.HostPath("/usr/local/bin/sandbox-agent") + " server --no-token --port $SANDBOX_PORT_2468"})
	if err != nil {
		t.Fatal(err)
	}
	p.Route = func(*http.Request) (*Sandbox, int, bool) { return sb, 2468, true }
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return proc, srv
}

func mustRead(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func get(ctx context.Context, t *testing.T, url string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func healthy(ctx context.Context, t *testing.T, url string) {
	t.Helper()
	eventually(ctx, t, "server healthy", func() bool {
		code, _ := get(ctx, t, url+"/v1/health")
		return code == http.StatusOK
	})
}

func TestLifecycleThroughProxy(t *testing.T) {
	vendor502 := func(w http.ResponseWriter, _ *http.Request, err error) {
		code := http.StatusBadGateway
		if errors.Is(err, ErrNotFound) {
			code = http.StatusNotFound
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"message":"vendor says %d"}`, code)
	}
	ctx := testCtx(t)
	sb := newSandbox(t, Options{Creating: true})
	p := &Proxy{Unavailable: vendor502}
	proc, srv := agent(t, sb, p)

	// Slow boot: the server may be up, but the sandbox is not ready.
	if code, body := get(ctx, t, srv.URL+"/v1/health"); code != 502 || body != `{"message":"vendor says 502"}` {
		t.Fatalf("creating: %d %s", code, body)
	}
	if err := sb.MarkReady(); err != nil {
		t.Fatal(err)
	}
	healthy(ctx, t, srv.URL)

	// Warm pause: frozen, not answering, then back with the same process.
	if err := sb.Pause(ctx, Freeze); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(ctx, t, srv.URL+"/v1/health"); code != 502 {
		t.Fatalf("paused: %d", code)
	}
	if err := sb.Resume(); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(ctx, t, srv.URL+"/v1/health"); code != 200 {
		t.Fatalf("resumed: %d", code)
	}
	select {
	case <-proc.Done():
		t.Fatal("server exited across a warm pause")
	default:
	}

	// Cold stop: the server is gone; resumed, nothing listens (dial error
	// goes to the same hook).
	if err := sb.Pause(ctx, Kill); err != nil {
		t.Fatal(err)
	}
	<-proc.Done()
	// Members re-parented to init are reaped asynchronously.
	eventually(ctx, t, "group gone after cold stop", func() bool { return !groupAlive(proc.Pgid()) })
	if err := sb.Resume(); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(ctx, t, srv.URL+"/v1/health"); code != 502 {
		t.Fatalf("after cold stop: %d", code)
	}

	// Restart, then Destroy: no process left, lookups are not found.
	proc, err := sb.Start(Cmd{Command: sb.HostPath("/usr/local/bin/sandbox-agent") + " server --no-token --port $SANDBOX_PORT_2468"})
	if err != nil {
		t.Fatal(err)
	}
	healthy(ctx, t, srv.URL)
	if err := sb.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(ctx, t, "group gone after Destroy", func() bool { return !groupAlive(proc.Pgid()) })
	if _, err := os.Stat(sb.Root()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("sandbox dir left: %v", err)
	}
	if code, _ := get(ctx, t, srv.URL+"/v1/health"); code != 404 {
		t.Fatalf("deleted: %d", code)
	}
	for name, err := range map[string]error{
		"Start":  func() error { _, err := sb.Start(Cmd{Command: "true"}); return err }(),
		"Resume": sb.Resume(),
		"Pause":  sb.Pause(ctx, Freeze),
		"Read":   func() error { _, err := sb.ReadFile("/x"); return err }(),
	} {
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("%s after Destroy: %v", name, err)
		}
	}
}

// TestBackgroundSurvivesOthers checks a background command keeps running
// after the request that started it and while a foreground command in the
// same sandbox is killed at its timeout: each has its own process group.
func TestBackgroundSurvivesOthers(t *testing.T) {
	sb := newSandbox(t, Options{})
	p, err := sb.Start(Cmd{Command: "echo up; exec sleep 60"})
	if err != nil {
		t.Fatal(err)
	}
	eventually(testCtx(t), t, "output", func() bool { return string(p.Stdout()) == "up\n" })
	ctx, cancel := context.WithTimeout(testCtx(t), 100*time.Millisecond)
	defer cancel()
	if _, err := sb.Run(ctx, Cmd{Command: "exec sleep 60"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("foreground: %v", err)
	}
	select {
	case <-p.Done():
		t.Fatal("background command died with the foreground one")
	default:
	}
	if n := len(sb.Processes()); n != 1 {
		t.Fatalf("%d processes, want 1", n)
	}
	if err := p.Kill(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if r := p.Result(); r.ExitCode != -1 {
		t.Fatalf("killed exit code %d", r.ExitCode)
	}
}

// TestProxyStreams checks SSE is flushed per event and WebSocket-style
// upgrades pass through, with a plain server standing in for the one inside.
func TestProxyStreams(t *testing.T) {
	sb := newSandbox(t, Options{})
	port, err := sb.Port(8080)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	backend := &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/sse":
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "data: one\n\n")
			w.(http.Flusher).Flush()
			<-release // the second event only after the client saw the first
			fmt.Fprint(w, "data: two\n\n")
		case "/ws":
			if r.Header.Get("Upgrade") != "websocket" {
				http.Error(w, "no upgrade", 400)
				return
			}
			conn, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			fmt.Fprint(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
			brw.Flush()
			line, _ := brw.ReadString('\n')
			fmt.Fprint(brw, "echo "+line)
			brw.Flush()
		}
	})}}
	backend.Start()
	defer backend.Close()
	srv := httptest.NewServer(&Proxy{Route: func(*http.Request) (*Sandbox, int, bool) { return sb, 8080, true }})
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/sse")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || line != "data: one\n" {
		t.Fatalf("first event %q, %v", line, err)
	}
	close(release)
	rest, _ := io.ReadAll(br)
	if string(rest) != "\ndata: two\n\n" {
		t.Fatalf("rest %q", rest)
	}

	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(srv.URL, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprint(conn, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	cr := bufio.NewReader(conn)
	resp2, err := http.ReadResponse(cr, nil)
	if err != nil || resp2.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp2, err)
	}
	fmt.Fprint(conn, "hello\n")
	if line, err := cr.ReadString('\n'); err != nil || line != "echo hello\n" {
		t.Fatalf("upgraded echo %q, %v", line, err)
	}
}

func TestFaults(t *testing.T) {
	var fs Faults
	srv := httptest.NewServer(fs.Wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "ok")
	})))
	defer srv.Close()
	fs.FailNext(1, Fault{Status: 401, Body: `{"message":"bad key"}`})
	fs.FailNext(2, Fault{Status: 429, RetryAfter: 1500 * time.Millisecond})
	fs.FailNext(1, Fault{Status: 503})
	tests := []struct {
		status     int
		retryAfter string
		body       string
	}{
		{401, "", `{"message":"bad key"}`},
		{429, "2", ""},
		{429, "2", ""},
		{503, "", ""},
		{200, "", "ok"},
	}
	for i, tt := range tests {
		resp, err := http.Get(srv.URL + "/sandboxes/" + strconv.Itoa(i))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status || resp.Header.Get("Retry-After") != tt.retryAfter || string(b) != tt.body {
			t.Errorf("request %d: %d %q %q, want %+v", i, resp.StatusCode, resp.Header.Get("Retry-After"), b, tt)
		}
	}
	log := fs.Log()
	if len(log) != 5 || log[0].Path != "/sandboxes/0" || log[0].Status != 401 || log[4].Status != 0 {
		t.Fatalf("log %+v", log)
	}
}

func procState(pid int) byte {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0
	}
	return b[i+2]
}

// TestEscapedDaemonIsTracked: a process that left its command's group
// (setsid, as `sandbox-agent daemon start` does) is still the sandbox's: it
// is frozen by Pause, continued by Resume and killed by Destroy.
func TestEscapedDaemonIsTracked(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs /proc")
	}
	ctx := testCtx(t)
	sb := newSandbox(t, Options{})
	r, err := sb.Run(ctx, Cmd{Command: "setsid sleep 60 </dev/null >/dev/null 2>&1 & echo $!"})
	if err != nil || r.ExitCode != 0 {
		t.Fatalf("%v %+v", err, r)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(r.Stdout)))
	if err != nil {
		t.Fatal(err)
	}
	eventually(ctx, t, "setsid child", func() bool { return slices.Contains(sb.Leftovers(), pid) })
	if err := sb.Pause(ctx, Freeze); err != nil {
		t.Fatal(err)
	}
	eventually(ctx, t, "frozen", func() bool { return procState(pid) == 'T' })
	if err := sb.Resume(); err != nil {
		t.Fatal(err)
	}
	eventually(ctx, t, "continued", func() bool { return procState(pid) != 'T' })
	if err := sb.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	if left := sb.Leftovers(); len(left) != 0 || (procState(pid) != 0 && procState(pid) != 'Z') {
		t.Fatalf("left behind: %v (state %c)", left, procState(pid))
	}
}

// TestFilesByCommandPath: a path as commands print it ($HOME is a host
// path) names the same file as the sandbox path.
func TestFilesByCommandPath(t *testing.T) {
	ctx := testCtx(t)
	sb := newSandbox(t, Options{})
	r, err := sb.Run(ctx, Cmd{Command: `printf %s "$HOME"`})
	if err != nil {
		t.Fatal(err)
	}
	if err := sb.WriteFile(string(r.Stdout)+"/a.txt", []byte("hi"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := sb.ReadFile("/home/user/a.txt"); err != nil || string(b) != "hi" {
		t.Fatalf("%q %v", b, err)
	}
	if err := sb.WriteFile(sb.Root()+"/../x", nil, 0o644); !errors.Is(err, ErrEscape) {
		t.Fatalf("escape through the host prefix: %v", err)
	}
}
