package reliability

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
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

// procVmRSS is the resident memory of pid in bytes.
func procVmRSS(t *testing.T, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// TestExitedProcessLogBudget: 100 exited processes that each wrote 20 MB
// (each keeping a full 10 MiB ring) hold at most the 256 MiB budget: the
// oldest ones' logs are dropped (the answer says so), the newest kept, and
// the server's memory stays far below the 1 GiB they held before.
func TestExitedProcessLogBudget(t *testing.T) {
	s := start(t, opts{})
	const n = 100
	ids := make([]string, 0, n)
	for len(ids) < n {
		// A few at a time: running processes' rings (10 MiB each) are not
		// under the exited budget, and the point is the exited ones.
		batch := min(4, n-len(ids))
		var started []string
		for range batch {
			id, _ := procCreate(t, s, `{"command":"head","args":["-c","20000000","/dev/zero"]}`)
			started = append(started, id)
		}
		for _, id := range started {
			deadline := time.Now().Add(20 * time.Second)
			for {
				code, b := s.do(http.MethodGet, "/v1/processes/"+id, "", nil)
				if code != 200 {
					t.Fatalf("get %s: %d %s", id, code, b)
				}
				if strings.Contains(string(b), `"status":"exited"`) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s did not exit", id)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		ids = append(ids, started...)
	}
	// The last exits are retired once drained, just after they are seen exited.
	deadline := time.Now().Add(5 * time.Second)
	dropped := func(id string) bool {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, s.URL+"/v1/processes/"+id+"/logs?tail=1", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Get("X-Sandbox-Agent-Logs-Dropped") == "true"
	}
	for !dropped(ids[0]) {
		if time.Now().After(deadline) {
			t.Fatal("the oldest exited process kept its logs past the budget")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if dropped(ids[n-1]) {
		t.Error("the newest exited process lost its logs")
	}
	kept := 0
	for _, id := range ids {
		if !dropped(id) {
			kept++
		}
	}
	// About 25 rings of 10 MiB fit in 256 MiB.
	if kept < 20 || kept > 26 {
		t.Errorf("%d of %d exited processes kept their logs; want about 25", kept, n)
	}
	// Loose: the Go heap may grow to twice the live data between
	// collections and freed memory returns to the system lazily; 100 full
	// rings alone were 1000 MiB.
	t.Logf("server VmRSS %d MiB", procVmRSS(t, s.cmd.Process.Pid)>>20)
	if rss := procVmRSS(t, s.cmd.Process.Pid); rss > 900<<20 {
		t.Errorf("server VmRSS %d MiB with a 256 MiB exited-log budget", rss>>20)
	}
	if code, took := s.stop(syscall.SIGTERM, 2*time.Second); code != 0 {
		t.Fatalf("exit %d after %v\n%s", code, took, s.Log())
	}
}
