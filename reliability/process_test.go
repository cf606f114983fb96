package reliability

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/internal/testutil/proctest"
)

// procCreate starts a managed process and returns its pid (its process
// group id).
func procCreate(t *testing.T, s *server, body string) (id string, pgid int) {
	t.Helper()
	code, b := s.do(http.MethodPost, "/v1/processes", "application/json", strings.NewReader(body))
	var in struct {
		ID  string
		Pid int
	}
	if err := json.Unmarshal(b, &in); code != 200 || err != nil || in.Pid == 0 {
		t.Fatalf("create %s: %d %s", body, code, b)
	}
	return in.ID, in.Pid
}

// procWaitGroupsGone waits (bounded: orphans are reaped by PID 1) until no
// live process is left in any of the groups.
func procWaitGroupsGone(t *testing.T, pgids ...int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for _, pg := range pgids {
		for len(proctest.GroupMembers(pg)) > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("process group %d still has %v", pg, proctest.GroupMembers(pg))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// procStalledClient sends a raw GET for path (plus header lines) and never
// reads: with a small receive buffer the server's writes block as soon as
// the kernel buffers are full.
func procStalledClient(t *testing.T, addr, path string, headers ...string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.(*net.TCPConn).SetReadBuffer(4 << 10)
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n", path, addr, strings.Join(headers, "")); err != nil {
		t.Fatal(err)
	}
}

// procOutputSeq is the newest log sequence of process id (one sequence
// per read of at most 16 KiB).
func procOutputSeq(t *testing.T, s *server, id string) uint64 {
	t.Helper()
	code, b := s.do(http.MethodGet, "/v1/processes/"+id+"/logs?tail=1", "", nil)
	var l struct{ Entries []struct{ Sequence uint64 } }
	if err := json.Unmarshal(b, &l); code != 200 || err != nil {
		t.Fatalf("logs of %s: %d %s", id, code, b)
	}
	if len(l.Entries) == 0 {
		return 0
	}
	return l.Entries[0].Sequence
}

// TestRunPendingAtShutdownGets503: a /v1/processes/run still running at
// SIGTERM is answered 503 server_shutting_down (it was a 200 with an empty
// body), the server exits 0 at once and the run's group is gone.
func TestRunPendingAtShutdownGets503(t *testing.T) {
	s := start(t, opts{})
	type answer struct {
		code int
		body []byte
	}
	got := make(chan answer, 1)
	go func() {
		code, b := s.do(http.MethodPost, "/v1/processes/run", "application/json", strings.NewReader(`{"command":"sleep","args":["30"],"timeoutMs":60000}`))
		got <- answer{code, b}
	}()
	var child int
	deadline := time.Now().Add(5 * time.Second)
	for child == 0 {
		if kids := proctest.Children(s.cmd.Process.Pid); len(kids) > 0 {
			child = kids[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the run's child did not start")
		}
		time.Sleep(5 * time.Millisecond)
	}
	code, took := s.stop(syscall.SIGTERM, 2*time.Second)
	a := <-got
	if a.code != http.StatusServiceUnavailable || problemCode(a.body) != "server_shutting_down" {
		t.Errorf("pending run at shutdown: %d %q", a.code, a.body)
	}
	if code != 0 {
		t.Errorf("exit %d after %v\n%s", code, took, s.Log())
	}
	procWaitGroupsGone(t, child)
}

// TestShutdownWithStalledStreamReaders: SIGTERM while a follow-logs SSE
// client and a terminal WebSocket client have stopped reading a flooding
// process: the server exits 0 within 2 s and every group is gone. Before,
// the process manager's Close waited for the blocked stream writes until
// the 10 s shutdown deadline and the server exited 1.
func TestShutdownWithStalledStreamReaders(t *testing.T) {
	s := start(t, opts{})
	flood := `{"command":"yes","args":["` + strings.Repeat("y", 200) + `"]`
	logsID, logsPG := procCreate(t, s, flood+`}`)
	ttyID, ttyPG := procCreate(t, s, flood+`,"tty":true}`)
	procStalledClient(t, s.Addr, "/v1/processes/"+logsID+"/logs?follow=true")
	procStalledClient(t, s.Addr, "/v1/processes/"+ttyID+"/terminal/ws",
		"Connection: Upgrade\r\n", "Upgrade: websocket\r\n", "Sec-WebSocket-Version: 13\r\n",
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")
	// Far more output than any socket buffer holds (4096 reads of up to
	// 16 KiB each): both streams are blocked on their clients from here on.
	for _, id := range []string{logsID, ttyID} {
		base := procOutputSeq(t, s, id)
		deadline := time.Now().Add(10 * time.Second)
		for procOutputSeq(t, s, id)-base < 4096 {
			if time.Now().After(deadline) {
				t.Fatalf("%s produced too little output", id)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	code, took := s.stop(syscall.SIGTERM, 2*time.Second)
	if code != 0 {
		t.Fatalf("exit %d after %v\n%s", code, took, s.Log())
	}
	procWaitGroupsGone(t, logsPG, ttyPG)
}

// procFollowToEnd reads process id's follow-logs stream to its end and
// returns the answer's headers and the log bytes it carried. The stream
// ends once the process has exited and its output is drained, which is
// also when its ring is counted against the exited-log budget: no polling.
func procFollowToEnd(t *testing.T, s *server, id string) (http.Header, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/v1/processes/"+id+"/logs?follow=true", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("follow %s: %d", id, resp.StatusCode)
	}
	n := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		data, ok := bytes.CutPrefix(sc.Bytes(), []byte("data: "))
		if !ok {
			continue
		}
		var e struct{ Data string }
		if err := json.Unmarshal(data, &e); err != nil {
			t.Fatalf("follow %s: %v in %q", id, err, data)
		}
		raw, err := base64.StdEncoding.DecodeString(e.Data)
		if err != nil {
			t.Fatal(err)
		}
		n += len(raw)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("follow %s did not end cleanly: %v", id, err)
	}
	return resp.Header, n
}

// procLogsJSON is the non-follow logs answer of process id.
func procLogsJSON(t *testing.T, s *server, id string) (dropped string, logsDropped bool, entries, size int) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, s.URL+"/v1/processes/"+id+"/logs", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var l struct {
		Entries     []struct{ Data string }
		LogsDropped bool
	}
	if err := json.NewDecoder(resp.Body).Decode(&l); resp.StatusCode != 200 || err != nil {
		t.Fatalf("logs of %s: %d %v", id, resp.StatusCode, err)
	}
	for _, e := range l.Entries {
		raw, err := base64.StdEncoding.DecodeString(e.Data)
		if err != nil {
			t.Fatal(err)
		}
		size += len(raw)
	}
	return resp.Header.Get("X-Sandbox-Agent-Logs-Dropped"), l.LogsDropped, len(l.Entries), size
}

// TestExitedProcessLogBudget: with a 1 MiB exited-log budget (flag or
// variable), eight exited processes that each wrote 300,000 bytes keep the
// logs of the newest three only (900,000 bytes; a fourth would pass the
// budget). A dropped log says so: header X-Sandbox-Agent-Logs-Dropped: true
// and "logsDropped": true with no entries (its follow stream ends at once,
// with the header), while the process entry itself stays (exited, exit code
// 0). Before, every exited process kept its whole ring (up to 10 MiB each)
// until deleted: 100 such processes held 1 GiB.
func TestExitedProcessLogBudget(t *testing.T) {
	const n, each, keep = 8, 300000, 3
	for _, tc := range []struct {
		name string
		o    opts
	}{
		{"flag", opts{Args: []string{"--process-log-budget", "1048576"}}},
		{"env", opts{Env: []string{"SANDBOX_AGENT_PROCESS_LOG_BUDGET=1048576"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := start(t, tc.o)
			ids := make([]string, n)
			for i := range ids {
				ids[i], _ = procCreate(t, s, `{"command":"head","args":["-c","`+strconv.Itoa(each)+`","/dev/zero"]}`)
				// Exited and retired (in this order) before the next starts.
				if _, got := procFollowToEnd(t, s, ids[i]); got != each {
					t.Fatalf("process %d streamed %d bytes, want %d", i, got, each)
				}
			}
			for i, id := range ids {
				hdr, field, entries, size := procLogsJSON(t, s, id)
				if i < n-keep {
					if hdr != "true" || !field || entries != 0 {
						t.Errorf("old process %d: header %q logsDropped %v, %d entries; want dropped", i, hdr, field, entries)
					}
					if h, got := procFollowToEnd(t, s, id); h.Get("X-Sandbox-Agent-Logs-Dropped") != "true" || got != 0 {
						t.Errorf("old process %d follow: header %q, %d bytes", i, h.Get("X-Sandbox-Agent-Logs-Dropped"), got)
					}
				} else if hdr != "" || field || size != each {
					t.Errorf("new process %d: header %q logsDropped %v, %d bytes; want all %d kept", i, hdr, field, size, each)
				}
				code, b := s.do(http.MethodGet, "/v1/processes/"+id, "", nil)
				if code != 200 || !strings.Contains(string(b), `"status":"exited"`) || !strings.Contains(string(b), `"exitCode":0`) {
					t.Errorf("process %d entry: %d %s", i, code, b)
				}
			}
			if code, took := s.stop(syscall.SIGTERM, 2*time.Second); code != 0 {
				t.Fatalf("exit %d after %v\n%s", code, took, s.Log())
			}
		})
	}
}

// TestProcessLogBudgetUsageErrors: a budget that is not a positive number
// of bytes is a usage error (exit 2), not a server that keeps nothing.
func TestProcessLogBudgetUsageErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		env  []string
	}{
		{"zero", []string{"--process-log-budget", "0"}, nil},
		{"negative", []string{"--process-log-budget", "-1"}, nil},
		{"variable zero", nil, []string{"SANDBOX_AGENT_PROCESS_LOG_BUDGET=0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, append([]string{"server", "--port", "0", "--no-token"}, tc.args...)...)
			cmd.Env = append(os.Environ(), "HOME="+dir, "SANDBOX_AGENT_DATA_DIR="+dir+"/data")
			cmd.Env = append(cmd.Env, tc.env...)
			out, err := cmd.CombinedOutput()
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "invalid --process-log-budget") {
				t.Fatalf("want exit 2 naming --process-log-budget; got %v:\n%s", err, out)
			}
		})
	}
}
