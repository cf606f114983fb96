package process

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/internal/problem"
	"github.com/sandbox-agent-go/sandbox-agent/internal/server"
	"github.com/sandbox-agent-go/sandbox-agent/internal/testutil/wait"
)

// Issue 9 hardening: exited-log budget, stalled stream readers, shutdown
// answers and the children's base environment.

func withOptions(f func(*Options)) envOption {
	return func(o *Options, _ *server.Config) { f(o) }
}

// waitDrained waits until process id has exited and been retired into the
// exited-log budget (retirement happens before drained closes).
func (e *testEnv) waitDrained(id string) {
	e.t.Helper()
	p, err := e.m.lookup(id)
	if err != nil {
		e.t.Fatal(err)
	}
	select {
	case <-p.drained:
	case <-time.After(10 * time.Second):
		e.t.Fatalf("process %s not drained", id)
	}
}

func TestExitedLogBudgetDropsOldestFirst(t *testing.T) {
	const perProc, budget = 1 << 20, 3 << 20
	e := newEnv(t, withConfig(Config{MaxConcurrentProcesses: 8, DefaultRunTimeoutMs: 1000, MaxRunTimeoutMs: 1000,
		MaxOutputBytes: 1 << 20, MaxLogBytesPerProcess: perProc, MaxInputBytesPerRequest: 1 << 10}),
		withOptions(func(o *Options) { o.ExitedLogBudget = budget }))
	const n = 8
	ids := make([]string, n)
	for i := range ids {
		// 1.5 MB of output each: every ring is full (about 1 MiB) at exit.
		ids[i] = e.create(map[string]any{"command": "head", "args": []string{"-c", "1500000", "/dev/zero"}}).ID
		e.waitDrained(ids[i])
		if got := e.m.logs.bytes(); got > budget {
			t.Fatalf("after %d exits the exited logs keep %d bytes, budget %d", i+1, got, budget)
		}
	}
	if got := e.m.logs.bytes(); got < budget-perProc {
		t.Fatalf("exited logs keep %d bytes: the budget (%d) should be nearly used", got, budget)
	}
	for i, id := range ids {
		res, raw := e.do("GET", "/v1/processes/"+id+"/logs", nil)
		var l struct {
			Entries     []logEntryJSON `json:"entries"`
			LogsDropped bool           `json:"logsDropped"`
		}
		if err := json.Unmarshal(raw, &l); err != nil || res.StatusCode != 200 {
			t.Fatalf("logs of %s: %d %s", id, res.StatusCode, raw)
		}
		dropped := res.Header.Get(LogsDroppedHeader) == "true"
		if dropped != l.LogsDropped || dropped != (len(l.Entries) == 0) {
			t.Fatalf("logs of %s: header dropped %v, field %v, %d entries", id, dropped, l.LogsDropped, len(l.Entries))
		}
		// Oldest first: the first processes lose their logs, the newest keep them.
		if i < n-3 && !dropped {
			t.Errorf("process %d of %d kept its logs past the budget", i+1, n)
		}
		if i == n-1 && dropped {
			t.Errorf("the newest exited process lost its logs")
		}
		if info := e.get(id); info.Status != StatusExited {
			t.Errorf("process %s entry: %+v", id, info)
		}
	}
	for _, id := range ids {
		e.call("DELETE", "/v1/processes/"+id, nil, 204, nil)
	}
	if got := e.m.logs.bytes(); got != 0 {
		t.Fatalf("after deleting every process the exited logs keep %d bytes", got)
	}
}

// TestRunPendingAtCloseGets503: a run cut short by Close answers 503
// server_shutting_down (it was a 500 stream_error, and with the server's
// request context cancelled too, an empty 200).
func TestRunPendingAtCloseGets503(t *testing.T) {
	e := newEnv(t)
	type answer struct {
		status int
		body   []byte
	}
	got := make(chan answer, 1)
	go func() {
		res, raw := e.do("POST", "/v1/processes/run", map[string]any{"command": "sleep", "args": []string{"30.25"}})
		got <- answer{res.StatusCode, raw}
	}()
	wait.Until(t, 5*time.Second, "the run's child started", func() bool { return findChild("sleep\x0030.25") > 0 })
	ctx, cancel := contextWithTimeout(5 * time.Second)
	defer cancel()
	if err := e.m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	a := <-got
	if a.status != http.StatusServiceUnavailable || !bytes.Contains(a.body, []byte(string(problem.ServerShuttingDown))) {
		t.Fatalf("run pending at Close: %d %s", a.status, a.body)
	}
}

// findChild returns the pid of a child of this process whose cmdline is
// cmdline (NUL-separated, without the trailing NUL), or 0.
func findChild(cmdline string) int {
	ents, _ := os.ReadDir("/proc")
	for _, d := range ents {
		raw, err := os.ReadFile("/proc/" + d.Name() + "/cmdline")
		if err == nil && strings.TrimSuffix(string(raw), "\x00") == cmdline {
			var pid int
			if _, err := fmt.Sscan(d.Name(), &pid); err == nil {
				return pid
			}
		}
	}
	return 0
}

// stalledEnv serves m with a handler that reports, on done, the path of
// every request whose handler returned.
func stalledEnv(t *testing.T, o Options) (*Manager, string, <-chan string) {
	t.Helper()
	m := NewManager(o)
	h, err := server.NewHandler(server.Config{}, m.Routes())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan string, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		done <- r.URL.Path
	}))
	t.Cleanup(func() {
		ctx, cancel := contextWithTimeout(10 * time.Second)
		defer cancel()
		if err := m.Close(ctx); err != nil {
			t.Errorf("Manager.Close: %v", err)
		}
		srv.CloseClientConnections()
		srv.Close()
	})
	return m, srv.Listener.Addr().String(), done
}

// stalledClient sends a raw request for path (extra header lines included)
// and never reads the answer; its receive buffer is small so the server's
// writes block as soon as the kernel buffers are full.
func stalledClient(t *testing.T, addr, path string, headers ...string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.(*net.TCPConn).SetReadBuffer(4 << 10)
	req := "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\n" + strings.Join(headers, "") + "\r\n"
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
}

var wsUpgrade = []string{"Connection: Upgrade\r\n", "Upgrade: websocket\r\n", "Sec-WebSocket-Version: 13\r\n",
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"}

// TestStalledStreamReaders: a follow-logs SSE reader or terminal WebSocket
// reader that never reads, while the process floods output, is cut off
// after the slow-reader timeout, and Close does not wait for it.
func TestStalledStreamReaders(t *testing.T) {
	for _, tc := range []struct {
		name    string
		tty     bool
		path    string
		headers []string
	}{
		{"follow logs", false, "/logs?follow=true", nil},
		{"terminal", true, "/terminal/ws", wsUpgrade},
	} {
		for _, closeFirst := range []bool{false, true} {
			name := tc.name + map[bool]string{false: " cut off by slow-reader timeout", true: " Close does not wait"}[closeFirst]
			t.Run(name, func(t *testing.T) {
				slow := 200 * time.Millisecond
				if closeFirst {
					slow = time.Hour // only Close can end the stream
				}
				m, addr, done := stalledEnv(t, Options{SlowReaderTimeout: slow, DrainGrace: 500 * time.Millisecond})
				info, err := m.Create(t.Context(), CreateRequest{Command: "yes", Args: []string{strings.Repeat("x", 200)}, TTY: tc.tty}, OwnerUser)
				if err != nil {
					t.Fatal(err)
				}
				p, _ := m.lookup(info.ID)
				stalledClient(t, addr, "/v1/processes/"+info.ID+tc.path, tc.headers...)
				// Far more output than the socket buffers hold: the stream's
				// writes are blocked on the stalled client from here on.
				base := p.logs.lastSeq()
				wait.Until(t, 10*time.Second, "64 MiB of output", func() bool { return p.logs.lastSeq()-base > 4096 })
				if closeFirst {
					ctx, cancel := contextWithTimeout(time.Second)
					defer cancel()
					begin := time.Now()
					if err := m.Close(ctx); err != nil {
						t.Fatalf("Close with a stalled %s reader: %v after %v", tc.name, err, time.Since(begin))
					}
				}
				select {
				case path := <-done:
					if !strings.HasSuffix(path, tc.path[:strings.IndexAny(tc.path+"?", "?")]) {
						t.Fatalf("unexpected request ended: %s", path)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("the stalled %s stream was not cut off", tc.name)
				}
				if !closeFirst && !p.isRunning() {
					t.Fatal("the process should still run: only its reader was cut off")
				}
			})
		}
	}
}

// TestChildrenBaseEnvironment: Options.Env, not the server's own
// environment, is what runs, processes and terminals start from.
func TestChildrenBaseEnvironment(t *testing.T) {
	t.Setenv("SERVER_ONLY_SECRET", "s3cret")
	e := newEnv(t, withOptions(func(o *Options) { o.Env = []string{"PATH=" + os.Getenv("PATH"), "BASE_ONLY=1"} }))
	check := func(what, out string) {
		t.Helper()
		if !strings.Contains(out, "BASE_ONLY=1") || strings.Contains(out, "SERVER_ONLY_SECRET") {
			t.Errorf("%s environment:\n%s", what, out)
		}
	}
	var run RunResponse
	e.call("POST", "/v1/processes/run", map[string]any{"command": "env", "env": map[string]string{"REQ": "2"}}, 200, &run)
	check("run", run.Stdout)
	if !strings.Contains(run.Stdout, "REQ=2") {
		t.Errorf("the request's env is overlaid: %s", run.Stdout)
	}
	for _, tty := range []bool{false, true} {
		in := e.create(map[string]any{"command": "env", "tty": tty})
		e.waitDrained(in.ID)
		check(fmt.Sprintf("process (tty %v)", tty), joinData(e.logs(in.ID, "").Entries))
	}
}
