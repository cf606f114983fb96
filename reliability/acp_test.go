package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/internal/sse"
	"github.com/sandbox-agent-go/sandbox-agent/internal/testutil/proctest"
)

// Issue 9, ACP: the stdin outbox, stream ordering and resume, invalid
// messages refused before spawn, the live-server cap, thread use per agent
// and shutdown with agents busy, all against the real binary and its
// built-in mock agent.

// acpAgentPID is the pid (and process group) of the agent under serverID,
// from the server's "agent process started" log line. The log is read
// asynchronously from the server's stderr, hence the bounded poll.
func acpAgentPID(t *testing.T, s *server, serverID string) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for line := range strings.SplitSeq(s.Log(), "\n") {
			var m struct {
				Msg      string `json:"msg"`
				ServerID string `json:"server_id"`
				PID      int    `json:"pid"`
			}
			if json.Unmarshal([]byte(line), &m) == nil && m.Msg == "agent process started" && m.ServerID == serverID && m.PID > 0 {
				return m.PID
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no start logged for %s\n%s", serverID, s.Log())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// acpEvent is one SSE event of an ACP stream.
type acpEvent struct {
	id   string
	data string
}

// acpStream reads one ACP server's SSE stream in the background; next
// returns its events in order, each within a deadline.
type acpStream struct {
	t      *testing.T
	events chan acpEvent
	errc   chan error
}

func acpOpenStream(t *testing.T, s *server, serverID string, hdr ...string) *acpStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/v1/acp/"+serverID, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		t.Fatalf("stream %s: %d %s", serverID, resp.StatusCode, b)
	}
	st := &acpStream{t: t, events: make(chan acpEvent), errc: make(chan error, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		r := sse.NewReader(resp.Body)
		for {
			ev, err := r.Next()
			if err != nil {
				st.errc <- err
				return
			}
			id := ""
			if ev.HasID {
				id = ev.ID
			}
			select {
			case st.events <- acpEvent{id: id, data: string(ev.Data)}:
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		resp.Body.Close()
		<-done
	})
	return st
}

func (st *acpStream) next() acpEvent {
	st.t.Helper()
	select {
	case ev := <-st.events:
		return ev
	case err := <-st.errc:
		st.t.Fatalf("stream ended: %v", err)
	case <-time.After(10 * time.Second):
		st.t.Fatal("no stream event within 10s")
	}
	return acpEvent{}
}

// acpEnvelope is the part of a JSON-RPC message the tests look at.
type acpEnvelope struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
	Result json.RawMessage `json:"result"`
	Error  json.RawMessage `json:"error"`
}

func acpDecode(t *testing.T, data string) acpEnvelope {
	t.Helper()
	var e acpEnvelope
	if err := json.Unmarshal([]byte(data), &e); err != nil {
		t.Fatalf("stream data %q: %v", data, err)
	}
	return e
}

// acpListed is the server ids GET /v1/acp lists.
func acpListed(t *testing.T, s *server) []string {
	t.Helper()
	code, b := s.do(http.MethodGet, "/v1/acp", "", nil)
	var l struct {
		Servers []struct {
			ServerID string `json:"serverId"`
		} `json:"servers"`
	}
	if code != 200 || json.Unmarshal(b, &l) != nil {
		t.Fatalf("list: %d %s", code, b)
	}
	var ids []string
	for _, sv := range l.Servers {
		ids = append(ids, sv.ServerID)
	}
	return ids
}

const acpNewSession = `{"jsonrpc":"2.0","id":%d,"method":"session/new","params":{"cwd":"/tmp","mcpServers":[]}}`

// TestACPStoppedAgentLosesNoMessage: while the agent is SIGSTOPped, a
// 500 KB notification and then session/new (id 50) time out writing to
// its stdin. Each answer says what happened (504 agent_input_queued: the
// message is queued), and after SIGCONT the queued messages really reach
// the agent, in order and intact: id 50 is answered on the stream, as is a
// later id 51. Before the outbox, the timed-out message was reported
// queued but dropped, so id 50 was never answered.
func TestACPStoppedAgentLosesNoMessage(t *testing.T) {
	s := start(t, opts{Args: []string{"--acp-request-timeout", "1s"}})
	s.initACP("stopped")
	pid := acpAgentPID(t, s, "stopped")
	st := acpOpenStream(t, s, "stopped")
	if e := acpDecode(t, st.next().data); string(e.ID) != "1" {
		t.Fatalf("first event %+v, want the initialize response", e)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// The agent must not stay stopped whatever fails below.
	resumed := false
	defer func() {
		if !resumed {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}()
	big := `{"jsonrpc":"2.0","method":"_test/pad","params":{"pad":"` + strings.Repeat("x", 500<<10) + `"}}`
	for _, m := range []struct{ name, body string }{
		{"500 KB notification", big},
		{"session/new id 50 behind it", fmt.Sprintf(acpNewSession, 50)},
	} {
		code, b := s.acp("stopped", m.body)
		if code != http.StatusGatewayTimeout || problemCode(b) != "agent_input_queued" {
			t.Fatalf("%s: %d %s, want 504 agent_input_queued", m.name, code, b)
		}
	}
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed = true
	if code, b := s.acp("stopped", fmt.Sprintf(acpNewSession, 51)); code != 200 || !strings.Contains(string(b), `"sessionId"`) {
		t.Fatalf("session/new id 51: %d %s", code, b)
	}
	// The mock answers requests concurrently, so its answers may come in
	// either order; the stdin order shows in the framing: id 50 was queued
	// behind a line cut mid-write, and is parsed and answered intact.
	answered := map[string]bool{}
	for !answered["50"] || !answered["51"] {
		e := acpDecode(t, st.next().data)
		if e.Error != nil {
			t.Fatalf("the agent saw a broken message: %s", e.Error)
		}
		if e.Method == "" {
			answered[string(e.ID)] = true
		}
	}
}

// TestACPResumeBeyondTheEnd: a Last-Event-ID past the stream's last event
// (ids from an earlier incarnation of the server id) gets an _adapter/gap
// reset and then every retained message, instead of waiting forever for
// ids that will never come.
func TestACPResumeBeyondTheEnd(t *testing.T) {
	s := start(t, opts{})
	s.initACP("resume")
	if code, b := s.acp("resume", fmt.Sprintf(acpNewSession, 2)); code != 200 {
		t.Fatalf("session/new: %d %s", code, b)
	}
	st := acpOpenStream(t, s, "resume", "Last-Event-ID", "1000")
	gap := acpDecode(t, st.next().data)
	var p struct {
		AfterEventID uint64 `json:"afterEventId"`
		NextEventID  uint64 `json:"nextEventId"`
		Reset        bool   `json:"reset"`
	}
	if gap.Method != "_adapter/gap" || json.Unmarshal(gap.Params, &p) != nil || !p.Reset || p.AfterEventID != 1000 || p.NextEventID != 1 {
		t.Fatalf("first event %s %s, want an _adapter/gap reset after 1000, next 1", gap.Method, gap.Params)
	}
	for _, want := range []string{"1", "2"} {
		ev := st.next()
		if e := acpDecode(t, ev.data); string(e.ID) != want || ev.id != want {
			t.Fatalf("event %s: %+v, want the response to id %s", ev.id, e, want)
		}
	}
}

// TestACPInvalidMessagesRefusedBeforeSpawn: a request with "id": null is
// refused at once (it used to wait the whole request timeout for a
// response that cannot be matched), and neither it nor a JSON-RPC batch
// array to a new server id starts an agent.
func TestACPInvalidMessagesRefusedBeforeSpawn(t *testing.T) {
	s := start(t, opts{})
	tests := []struct{ name, body string }{
		{"null id", `{"jsonrpc":"2.0","id":null,"method":"initialize","params":{"protocolVersion":1}}`},
		{"batch", `[{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":1}}]`},
		{"empty batch", `[]`},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("%s/v1/acp/invalid-%d?agent=mock", s.URL, i), strings.NewReader(tc.body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("not answered at once: %v", err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 400 || problemCode(b) != "invalid_request" {
				t.Fatalf("%d %s, want 400 invalid_request", resp.StatusCode, b)
			}
			if ids := acpListed(t, s); len(ids) != 0 {
				t.Fatalf("an agent was started: %v", ids)
			}
		})
	}
}

// acpThreads is the Threads line of /proc/<pid>/status.
func acpThreads(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no Threads in /proc status")
	return 0
}

// TestACPManyAgentsFewThreads: 300 live agents cost the server no OS
// thread each. Each agent used to have a goroutine blocked in wait4 (one
// thread per agent); the pidfd reaper waits on the netpoller instead.
func TestACPManyAgentsFewThreads(t *testing.T) {
	const n = 300
	s := start(t, opts{Args: []string{"--max-acp-servers", strconv.Itoa(n)}})
	s.initACP("threads-0")
	base := acpThreads(t, s.cmd.Process.Pid)
	// A few at a time: the host has few CPUs, and each start is a process.
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := 1; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			// s.acp would call t.Fatal off the test goroutine; report instead.
			req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("%s/v1/acp/threads-%d?agent=mock", s.URL, i), strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":1,"clientCapabilities":{}}}`))
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				errs <- fmt.Sprintf("threads-%d: %d %s", i, resp.StatusCode, b)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	if ids := acpListed(t, s); len(ids) != n {
		t.Fatalf("%d servers live, want %d", len(ids), n)
	}
	if got := acpThreads(t, s.cmd.Process.Pid); got > base+20 {
		t.Fatalf("%d threads with %d agents, %d with one: more than 20 extra", got, n, base)
	}
	if code, took := s.stop(syscall.SIGTERM, 10*time.Second); code != 0 {
		t.Fatalf("exit %d after %s", code, took)
	}
}

// TestACPServerCap: --max-acp-servers bounds live agent processes; the
// next new server id gets 503 too_many_servers and starts nothing.
func TestACPServerCap(t *testing.T) {
	s := start(t, opts{Args: []string{"--max-acp-servers", "3"}})
	for i := range 3 {
		s.initACP(fmt.Sprintf("cap-%d", i))
	}
	code, b := s.acp("cap-3", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":1}}`)
	if code != http.StatusServiceUnavailable || problemCode(b) != "too_many_servers" {
		t.Fatalf("4th server: %d %s, want 503 too_many_servers", code, b)
	}
	if ids := acpListed(t, s); len(ids) != 3 {
		t.Fatalf("live servers %v, want 3", ids)
	}
}

// acpSendQueue is the send queue (tx_queue, bytes) of the server's end of
// the TCP connection to client address cli, from /proc/net/tcp.
func acpSendQueue(t *testing.T, srv, cli *net.TCPAddr) int {
	t.Helper()
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	hex := func(a *net.TCPAddr) string {
		ip := a.IP.To4()
		return fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], a.Port)
	}
	local, remote := hex(srv), hex(cli)
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && f[1] == local && f[2] == remote {
			tx, _, _ := strings.Cut(f[4], ":")
			n, _ := strconv.ParseInt(tx, 16, 64)
			return int(n)
		}
	}
	return 0
}

// TestACPShutdownWithBusyAgents: SIGTERM while a SLOW prompt is pending
// and an SSE reader has stopped reading a FLOODing agent's stream: the
// pending POST is answered 503 server_shutting_down, the server exits 0
// within 2 s, and no agent process is left.
func TestACPShutdownWithBusyAgents(t *testing.T) {
	s := start(t, opts{})
	s.initACP("busy")
	pgid := acpAgentPID(t, s, "busy")
	var sessions []string
	for id := 2; id <= 3; id++ {
		code, b := s.acp("busy", fmt.Sprintf(acpNewSession, id))
		var r struct {
			Result struct {
				SessionID string `json:"sessionId"`
			} `json:"result"`
		}
		if code != 200 || json.Unmarshal(b, &r) != nil || r.Result.SessionID == "" {
			t.Fatalf("session/new: %d %s", code, b)
		}
		sessions = append(sessions, r.Result.SessionID)
	}

	// The stalled reader: a small receive buffer, and it never reads.
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
	}}
	stalled, err := d.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	if _, err := io.WriteString(stalled, "GET /v1/acp/busy HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"); err != nil {
		t.Fatal(err)
	}

	type answer struct {
		code int
		body []byte
		err  error
	}
	prompt := func(id int, sess, text string) <-chan answer {
		ch := make(chan answer, 1)
		body := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"session/prompt","params":{"sessionId":%q,"prompt":[{"type":"text","text":%q}]}}`, id, sess, text)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/v1/acp/busy", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				ch <- answer{err: err}
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			ch <- answer{resp.StatusCode, b, err}
		}()
		return ch
	}
	slow := prompt(10, sessions[0], "SLOW")
	flood := prompt(11, sessions[1], "FLOOD 1000000")

	// Observe (the server is another process) that its writes to the
	// stalled reader back up: its send queue holds what the client does
	// not take, so the stream's writer is blocked or about to be.
	srvAddr := stalled.RemoteAddr().(*net.TCPAddr)
	cliAddr := stalled.LocalAddr().(*net.TCPAddr)
	deadline := time.Now().Add(10 * time.Second)
	for acpSendQueue(t, srvAddr, cliAddr) < 32<<10 {
		if time.Now().After(deadline) {
			t.Fatalf("the stalled reader's send queue did not fill\n%s", s.Log())
		}
		time.Sleep(10 * time.Millisecond)
	}

	code, took := s.stop(syscall.SIGTERM, 2*time.Second)
	if code != 0 {
		t.Fatalf("exit %d after %s\n%s", code, took, s.Log())
	}
	for name, ch := range map[string]<-chan answer{"SLOW": slow, "FLOOD": flood} {
		a := <-ch
		if a.err != nil || a.code != http.StatusServiceUnavailable || problemCode(a.body) != "server_shutting_down" {
			t.Errorf("%s prompt: %d %s %v, want 503 server_shutting_down", name, a.code, a.body, a.err)
		}
	}
	deadline = time.Now().Add(2 * time.Second)
	for len(proctest.GroupMembers(pgid)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("agent group %d still has %v after the exit", pgid, proctest.GroupMembers(pgid))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
