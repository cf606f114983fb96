package process

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sandbox-agent-go/sandbox-agent/internal/server"
	"github.com/sandbox-agent-go/sandbox-agent/internal/testutil/wait"
)

// term is a test terminal client.
type term struct {
	t   testing.TB
	c   *websocket.Conn
	ctx context.Context
	out bytes.Buffer // binary output received so far
}

func (e *testEnv) wsURL(id, query string) string {
	return "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/v1/processes/" + id + "/terminal/ws" + query
}

func (e *testEnv) dial(id, query string) *term {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	e.t.Cleanup(cancel)
	c, res, err := websocket.Dial(ctx, e.wsURL(id, query), nil)
	if err != nil {
		status := 0
		if res != nil {
			status = res.StatusCode
		}
		e.t.Fatalf("dial: %v (status %d)", err, status)
	}
	e.t.Cleanup(func() { _ = c.CloseNow() })
	tm := &term{t: e.t, c: c, ctx: ctx}
	typ, data, err := c.Read(ctx)
	if err != nil || typ != websocket.MessageText {
		e.t.Fatalf("first frame: %v %v", typ, err)
	}
	if want := `{"processId":"` + id + `","type":"ready"}`; string(data) != want {
		e.t.Fatalf("ready frame %s, want %s", data, want)
	}
	return tm
}

func (tm *term) send(frame string) {
	tm.t.Helper()
	if err := tm.c.Write(tm.ctx, websocket.MessageText, []byte(frame)); err != nil {
		tm.t.Fatal(err)
	}
}

// nextText reads until a text frame, collecting binary output on the way.
func (tm *term) nextText() string {
	tm.t.Helper()
	for {
		typ, data, err := tm.c.Read(tm.ctx)
		if err != nil {
			tm.t.Fatalf("read: %v (output so far %q)", err, tm.out.String())
		}
		if typ == websocket.MessageBinary {
			tm.out.Write(data)
			continue
		}
		return string(data)
	}
}

// waitOutput reads binary frames until the output contains want.
func (tm *term) waitOutput(want string) {
	tm.t.Helper()
	for !strings.Contains(tm.out.String(), want) {
		typ, data, err := tm.c.Read(tm.ctx)
		if err != nil {
			tm.t.Fatalf("waiting for %q: %v (output %q)", want, err, tm.out.String())
		}
		if typ != websocket.MessageBinary {
			tm.t.Fatalf("unexpected text frame %s while waiting for %q", data, want)
		}
		tm.out.Write(data)
	}
}

// expectClosed expects the server's close without status code (1005).
func (tm *term) expectClosed() {
	tm.t.Helper()
	for {
		typ, data, err := tm.c.Read(tm.ctx)
		if err == nil {
			if typ == websocket.MessageBinary {
				tm.out.Write(data)
				continue
			}
			tm.t.Fatalf("unexpected frame %s", data)
		}
		if st := websocket.CloseStatus(err); st != websocket.StatusNoStatusRcvd {
			tm.t.Fatalf("close: %v (status %d)", err, st)
		}
		return
	}
}

func TestTerminalEndToEnd(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	in := e.create(map[string]any{"command": "sh", "tty": true, "env": map[string]string{"PS1": "$ "}})
	if !in.TTY {
		t.Fatalf("info %+v", in)
	}
	tm := e.dial(in.ID, "")

	// The quotes keep the echoed command line from matching: input typed
	// before the shell starts is echoed ahead of its prompt, so neither the
	// prompt nor a line break can be relied on before "hi".
	tm.send(`{"type":"input","data":"echo h''i\n"}`)
	tm.waitOutput("hi\r\n")
	tm.send(`{"type":"input","data":"ZWNobyAkVEVSTQo=","encoding":"base64"}`) // echo $TERM
	tm.waitOutput("xterm-256color\r\n")

	// Default geometry, then resize over the socket.
	tm.send(`{"type":"input","data":"stty size\n"}`)
	tm.waitOutput("24 80\r\n")
	tm.send(`{"type":"resize","cols":100,"rows":30}`)
	tm.send(`{"type":"input","data":"stty size\n"}`)
	tm.waitOutput("30 100\r\n")

	// Bad frames get an error frame; the socket stays open.
	badFrames := []struct {
		binary bool
		frame  string
		want   string
	}{
		{false, `nope`, "invalid terminal frame: "},
		{false, `{"type":"bogus"}`, "invalid terminal frame: unknown variant `bogus`, expected one of `input`, `resize`, `close`"},
		{false, `{"type":"input"}`, "invalid terminal frame: missing field `data`"},
		{false, `{"data":"x"}`, "invalid terminal frame: missing field `type`"},
		{false, `{"type":"resize","cols":1}`, "invalid terminal frame: missing field `rows`"},
		{false, `{"type":"input","data":"x","encoding":"hex"}`, "invalid request: encoding must be one of: base64, utf8, text"},
		{false, `{"type":"input","data":"abc\n","encoding":"base64"}`, "invalid request: invalid base64 input: Invalid symbol 10, offset 3."},
		{true, `raw bytes`, "binary input is not supported; use text JSON frames"},
	}
	for _, bf := range badFrames {
		typ := websocket.MessageText
		if bf.binary {
			typ = websocket.MessageBinary
		}
		if err := tm.c.Write(tm.ctx, typ, []byte(bf.frame)); err != nil {
			t.Fatal(err)
		}
		var msg struct{ Message, Type string }
		raw := tm.nextText()
		if err := json.Unmarshal([]byte(raw), &msg); err != nil || msg.Type != "error" || !strings.HasPrefix(msg.Message, bf.want) {
			t.Fatalf("frame %q: got %s, want message prefix %q", bf.frame, raw, bf.want)
		}
		if !strings.HasPrefix(raw, `{"message":`) {
			t.Fatalf("keys not sorted: %s", raw)
		}
	}

	// The HTTP resize endpoint reaches the same PTY.
	var size struct{ Cols, Rows int }
	e.call("POST", "/v1/processes/"+in.ID+"/terminal/resize", map[string]any{"cols": 120, "rows": 40}, 200, &size)
	if size.Cols != 120 || size.Rows != 40 {
		t.Fatalf("resize echo %+v", size)
	}
	tm.send(`{"type":"input","data":"stty size\n"}`)
	tm.waitOutput("40 120\r\n")

	// Exit: output first, then the exit frame, then close.
	tm.send(`{"type":"input","data":"echo bye; exit 5\n"}`)
	if got := tm.nextText(); got != `{"exitCode":5,"type":"exit"}` {
		t.Fatalf("exit frame %s (output %q)", got, tm.out.String())
	}
	if !strings.Contains(tm.out.String(), "bye\r\n") {
		t.Fatalf("output before exit %q", tm.out.String())
	}
	tm.expectClosed()

	// No EOF artefact in the logs; the default stream of a tty is pty.
	l := e.logs(in.ID, "")
	if l.Stream != "pty" || strings.Contains(joinData(l.Entries), "process stream error") || !strings.HasSuffix(joinData(l.Entries), "bye\r\n") {
		t.Fatalf("logs stream %q data %q", l.Stream, joinData(l.Entries))
	}
	if len(e.logs(in.ID, "?stream=combined").Entries) != 0 {
		t.Fatal("combined should be empty for a tty process")
	}
	// Connecting to the exited process: ready, exit, close.
	tm2 := e.dial(in.ID, "")
	if got := tm2.nextText(); got != `{"exitCode":5,"type":"exit"}` {
		t.Fatalf("exit frame %s", got)
	}
	tm2.expectClosed()
	if tm2.out.Len() != 0 {
		t.Fatalf("earlier output replayed: %q", tm2.out.String())
	}
}

func TestTerminalCloseFrame(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	in := e.create(map[string]any{"command": "cat", "tty": true})
	tm := e.dial(in.ID, "")
	tm.send(`{"type":"close"}`)
	tm.expectClosed()
	// The process keeps running; a new terminal can attach.
	if e.get(in.ID).Status != StatusRunning {
		t.Fatal("close frame must not stop the process")
	}
	tm2 := e.dial(in.ID, "")
	tm2.send(`{"type":"input","data":"ping\n"}`)
	tm2.waitOutput("ping\r\n")
	var after Info
	e.call("POST", "/v1/processes/"+in.ID+"/kill", nil, 200, &after)
	if got := tm2.nextText(); got != `{"exitCode":null,"type":"exit"}` {
		t.Fatalf("exit frame after kill %s", got)
	}
	tm2.expectClosed()
}

func TestTerminalRejections(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	pipe := e.create(map[string]any{"command": "cat"})
	tty := e.create(map[string]any{"command": "cat", "tty": true})
	tests := []struct {
		name   string
		id     string
		plain  bool // no upgrade headers
		status int
		body   string
	}{
		{"non-tty", pipe.ID, false, 409, "conflict: process is not running in tty mode"},
		{"unknown", "nope", false, 404, "not found: process nope"},
		{"no upgrade headers", tty.ID, true, 400, "Connection header did not include 'upgrade'"},
		{"no upgrade headers, unknown id", "nope", true, 400, "Connection header did not include 'upgrade'"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.plain {
				res, raw := e.do("GET", "/v1/processes/"+tc.id+"/terminal/ws", nil)
				if res.StatusCode != tc.status || string(raw) != tc.body || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/plain") {
					t.Fatalf("%d %q", res.StatusCode, raw)
				}
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, res, err := websocket.Dial(ctx, e.wsURL(tc.id, ""), nil)
			if err == nil {
				_ = c.CloseNow()
				t.Fatal("dial succeeded")
			}
			if res == nil || res.StatusCode != tc.status {
				t.Fatalf("dial: %v %v", res, err)
			}
		})
	}
	// HTTP resize errors.
	for _, tc := range []struct {
		id     string
		body   any
		status int
		detail string
	}{
		{pipe.ID, map[string]any{"cols": 1, "rows": 1}, 409, "conflict: process is not running in tty mode"},
		{"nope", map[string]any{"cols": 1, "rows": 1}, 404, "not found: process nope"},
		{tty.ID, map[string]any{"cols": 1}, 422, ""},
		{tty.ID, map[string]any{"cols": 70000, "rows": 1}, 422, ""},
		{tty.ID, map[string]any{"cols": 0, "rows": 0}, 200, ""},
	} {
		res, raw := e.do("POST", "/v1/processes/"+tc.id+"/terminal/resize", tc.body)
		if res.StatusCode != tc.status {
			t.Fatalf("resize %v: %d %s", tc.body, res.StatusCode, raw)
		}
		if tc.detail != "" {
			if d, _ := problemDetail(t, raw); d != tc.detail {
				t.Fatalf("detail %q", d)
			}
		}
	}
}

func TestTerminalAuth(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(_ *Options, c *server.Config) { c.AuthEnabled, c.Token = true, "secret" })
	// Create with the bearer header.
	req, _ := http.NewRequest("POST", e.srv.URL+"/v1/processes", strings.NewReader(`{"command":"cat","tty":true}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer secret")
	res, err := e.srv.Client().Do(req)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("create: %v %v", res, err)
	}
	var in Info
	_ = json.NewDecoder(res.Body).Decode(&in)
	res.Body.Close()

	for _, tc := range []struct {
		name   string
		query  string
		header string
		status int
	}{
		{"no token", "", "", 401},
		{"wrong token", "?access_token=nope", "", 401},
		{"access_token", "?access_token=secret", "", 101},
		{"bearer header", "", "Bearer secret", 101},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			opts := &websocket.DialOptions{HTTPHeader: http.Header{}}
			if tc.header != "" {
				opts.HTTPHeader.Set("Authorization", tc.header)
			}
			c, res, err := websocket.Dial(ctx, e.wsURL(in.ID, tc.query), opts)
			if res == nil || res.StatusCode != tc.status {
				t.Fatalf("dial: %v %v", res, err)
			}
			if err == nil {
				typ, data, err := c.Read(ctx)
				if err != nil || typ != websocket.MessageText || !strings.Contains(string(data), `"type":"ready"`) {
					t.Fatalf("ready: %s %v", data, err)
				}
				_ = c.CloseNow()
			}
		})
	}
	// access_token is not accepted on ordinary routes.
	res, raw := e.do("GET", "/v1/processes?access_token=secret", nil)
	if res.StatusCode != 401 {
		t.Fatalf("list with access_token: %d %s", res.StatusCode, raw)
	}
}

// Manager.Close kills every group (tty sessions, background children,
// exited processes' leftovers), ends terminals and follow streams.
func TestCloseLeavesNoProcessGroup(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *Options, _ *server.Config) { o.DrainGrace = time.Minute })
	var pgids []int
	for _, body := range []map[string]any{
		{"command": "sh", "args": []string{"-c", "sleep 30 & sleep 30 & wait"}},
		{"command": "sh", "args": []string{"-c", "trap '' TERM HUP; sleep 30 & wait"}},
		{"command": "sh", "tty": true},
		{"command": "sh", "args": []string{"-c", "sleep 30 & echo started"}}, // exits, leaves a child
	} {
		pgids = append(pgids, *e.create(body).Pid)
	}
	e.waitOutput("proc_4", "", "started\n")
	e.waitExited("proc_4")
	tm := e.dial("proc_3", "")
	s := e.follow("proc_1", "")
	s4 := e.follow("proc_4", "")
	s4.next(t) // replay of "started"

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s.expectEnd(t)
	s4.expectEnd(t)
	// The terminal ends (exit frame or an immediate close).
	for {
		typ, data, err := tm.c.Read(tm.ctx)
		if err != nil {
			break
		}
		if typ == websocket.MessageText && !strings.Contains(string(data), `"type":"exit"`) {
			t.Fatalf("unexpected frame %s", data)
		}
	}
	for _, pg := range pgids {
		assertGroupGone(t, pg)
	}
	// Closed managers refuse new work.
	res, _ := e.do("POST", "/v1/processes", map[string]any{"command": "true"})
	if res.StatusCode != http.StatusServiceUnavailable { // server_shutting_down
		t.Fatalf("create after close: %d", res.StatusCode)
	}
	if _, err := e.m.Run(context.Background(), RunRequest{Command: "true"}); err == nil {
		t.Fatal("run after close should fail")
	}
	if err := e.m.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// A job-control shell puts each job in its own process group; killing a tty
// process reaches the whole session.
func TestTTYKillReachesSessionJobs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name   string
		action func(id string)
	}{
		{"kill", func(id string) { e.call("POST", "/v1/processes/"+id+"/kill", nil, 200, nil) }},
		{"close", func(string) {
			if err := e.m.Close(context.Background()); err != nil {
				t.Error(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := e.create(map[string]any{"command": "sh", "args": []string{"-i"}, "tty": true})
			e.call("POST", "/v1/processes/"+in.ID+"/input", map[string]any{"data": "sleep 30 & echo JOB=$!.\n", "encoding": "text"}, 200, nil)
			re := regexp.MustCompile(`JOB=(\d+)\.`)
			var m []string
			wait.Until(t, 10*time.Second, "the job pid is printed", func() bool {
				m = re.FindStringSubmatch(joinData(e.logs(in.ID, "").Entries))
				return m != nil
			})
			job, _ := strconv.Atoi(m[1])
			var pgid int
			wait.Until(t, 5*time.Second, "job in the session", func() bool {
				pgid, _ = syscall.Getpgid(job)
				return slices.Contains(sessionMembers(*in.Pid), job) || pgid == *in.Pid
			})
			t.Logf("job %d in group %d (shell group %d)", job, pgid, *in.Pid)
			tc.action(in.ID)
			wait.Until(t, 10*time.Second, "job reaped", func() bool { return syscall.Kill(job, 0) == syscall.ESRCH })
			assertGroupGone(t, *in.Pid)
		})
	}
}

// The PTY master is non-blocking and poller-driven, so closing it (DELETE,
// Close) interrupts a reader even while something still holds the slave.
func TestPTYMasterIsPollable(t *testing.T) {
	sp, err := spawn(spawnSpec{command: "sleep", args: []string{"30"}, tty: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		signalTree(sp.pid, true, syscall.SIGKILL)
		_, _ = reap(sp.pid)
	}()
	rc, err := sp.master.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var flags uintptr
	_ = rc.Control(func(fd uintptr) { flags, _, _ = syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_GETFL, 0) })
	if flags&syscall.O_NONBLOCK == 0 {
		t.Fatal("master is blocking")
	}
	done := make(chan error, 1)
	go func() {
		_, err := sp.master.Read(make([]byte, 64))
		done <- err
	}()
	_ = sp.master.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("read after close succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not interrupt the blocked read")
	}
}
