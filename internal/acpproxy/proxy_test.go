package acpproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/acp"
	"github.com/sandbox-agent-go/sandbox-agent/internal/server"
	"github.com/sandbox-agent-go/sandbox-agent/internal/sse"
	"github.com/sandbox-agent-go/sandbox-agent/internal/testutil/proctest"
)

type harness struct {
	t   *testing.T
	reg *Registry
	url string
}

func newHarness(t *testing.T, opts Options) *harness {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Launcher == nil {
		opts.Launcher = fakeLauncher{}
	}
	reg := New(opts)
	h, err := server.NewHandler(server.Config{}, reg.Routes())
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = reg.Close(ctx)
		ts.CloseClientConnections()
		ts.Close()
	})
	return &harness{t: t, reg: reg, url: ts.URL}
}

type resp struct {
	status int
	ctype  string
	body   string
}

func (h *harness) post(path, ctype, accept, body string) resp {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.url+path, strings.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	return h.do(req)
}

func (h *harness) do(req *http.Request) resp {
	h.t.Helper()
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return resp{r.StatusCode, r.Header.Get("Content-Type"), string(b)}
}

func (h *harness) rpc(server, agent, body string) resp {
	h.t.Helper()
	p := "/v1/acp/" + server
	if agent != "" {
		p += "?agent=" + agent
	}
	return h.post(p, "application/json", "application/json", body)
}

func problemType(t *testing.T, body string) string {
	t.Helper()
	var p struct{ Type string }
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatalf("not a problem document: %q", body)
	}
	return strings.TrimPrefix(p.Type, "urn:sandbox-agent:error:")
}

func TestPostValidation(t *testing.T) {
	h := newHarness(t, Options{})
	if r := h.rpc("s1", "fake", `{"jsonrpc":"2.0","id":1,"method":"init"}`); r.status != 200 {
		t.Fatalf("create: %+v", r)
	}
	tests := []struct {
		name         string
		path, ctype  string
		accept, body string
		status       int
		code         string
		detail       string
	}{
		{"wrong content type", "/v1/acp/s1", "text/plain", "", `{}`, 415, "unsupported_media_type", "unsupported media type: content-type must be application/json"},
		{"vendor json rejected", "/v1/acp/s1", "application/vnd.api+json", "", `{}`, 415, "unsupported_media_type", ""},
		{"bad accept", "/v1/acp/s1", "application/json", "text/event-stream", `{}`, 406, "not_acceptable", "not acceptable: accept must allow application/json"},
		{"bad json", "/v1/acp/s1", "application/json; charset=utf-8", "*/*", `{nope`, 400, "invalid_request", ""},
		{"unknown agent", "/v1/acp/s1?agent=nope", "application/json", "", `{}`, 400, "unsupported_agent", "unsupported agent: nope"},
		{"empty agent", "/v1/acp/s1?agent=", "application/json", "", `{}`, 400, "unsupported_agent", "unsupported agent: "},
		{"missing agent on first post", "/v1/acp/new", "application/json", "", `{}`, 400, "invalid_request", "invalid request: missing required 'agent' query parameter for first POST to /v1/acp/new"},
		{"agent mismatch", "/v1/acp/s1?agent=fake2", "application/json", "", `{}`, 409, "conflict", "conflict: server 's1' already exists for agent 'fake'; requested 'fake2'"},
		{"not an object", "/v1/acp/s1", "application/json", "", `[1,2]`, 400, "invalid_request", "invalid request: request body must be a JSON-RPC object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.post(tt.path, tt.ctype, tt.accept, tt.body)
			if r.status != tt.status || r.ctype != "application/problem+json" {
				t.Fatalf("got %d %s %s", r.status, r.ctype, r.body)
			}
			if got := problemType(t, r.body); got != tt.code {
				t.Fatalf("code %s, want %s", got, tt.code)
			}
			if tt.detail != "" && !strings.Contains(r.body, `"detail":`+strconv.Quote(tt.detail)) {
				t.Fatalf("detail: %s", r.body)
			}
		})
	}
	// Nothing invalid starts an agent: a parse error, a non-object (a
	// batch array included) or a request with a null id (upstream starts
	// the agent for the last two).
	for _, body := range []string{`{x`, `"str"`, `[{"jsonrpc":"2.0","id":1,"method":"initialize"}]`, `{"jsonrpc":"2.0","id":null,"method":"initialize"}`} {
		if r := h.post("/v1/acp/invalid?agent=fake", "application/json", "", body); r.status != 400 || problemType(t, r.body) != "invalid_request" {
			t.Fatalf("%s: %+v", body, r)
		}
	}
	ids := []string{}
	for _, s := range h.reg.List() {
		ids = append(ids, s.ServerID)
	}
	if strings.Join(ids, ",") != "s1" {
		t.Fatalf("servers %v", ids)
	}
}

func TestDispatchKeepsIDsAndBytes(t *testing.T) {
	h := newHarness(t, Options{})
	tests := []struct {
		name, body string
		status     int
		want       string
	}{
		{"id zero", `{"jsonrpc":"2.0","id":0,"method":"x","params":{"a":1}}`, 200, `{"id":0,"jsonrpc":"2.0","result":{"echoed":{"a":1}}}`},
		{"string id", `{"jsonrpc":"2.0","id":"0","method":"x"}`, 200, `"id":"0"`},
		{"uuid id", `{"jsonrpc":"2.0","id":"0195f3c4-7a2b-7c1d-9e8f-0123456789ab","method":"x"}`, 200, `"id":"0195f3c4-7a2b-7c1d-9e8f-0123456789ab"`},
		{"multi-line body", "{\n \"jsonrpc\": \"2.0\",\n \"id\": 7,\n \"method\": \"x\"\n}", 200, `"id":7`},
		{"notification", `{"jsonrpc":"2.0","method":"session/cancel","params":{"sessionId":"x"}}`, 202, ``},
		{"client response", `{"jsonrpc":"2.0","id":99,"result":{"outcome":{"outcome":"cancelled"}}}`, 202, ``},
		{"empty object", `{}`, 202, ``},
	}
	h.rpc("d", "fake", `{"jsonrpc":"2.0","method":"hello"}`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.rpc("d", "", tt.body)
			if r.status != tt.status {
				t.Fatalf("status %d body %s", r.status, r.body)
			}
			if tt.status == 202 && (r.body != "" || r.ctype != "") {
				t.Fatalf("202 must be empty: %q %q", r.ctype, r.body)
			}
			if tt.status == 200 && r.ctype != "application/json" {
				t.Fatalf("ctype %s", r.ctype)
			}
			if !strings.Contains(r.body, tt.want) {
				t.Fatalf("body %s, want %s", r.body, tt.want)
			}
		})
	}
}

// sseClient reads one SSE stream.
type sseClient struct {
	resp *http.Response
	r    *sse.Reader
}

func (h *harness) stream(ctx context.Context, id string, hdr map[string]string) (*sseClient, resp) {
	h.t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.url+"/v1/acp/"+id, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	if r.StatusCode != 200 {
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return nil, resp{r.StatusCode, r.Header.Get("Content-Type"), string(b)}
	}
	h.t.Cleanup(func() { r.Body.Close() })
	return &sseClient{resp: r, r: sse.NewReader(r.Body)}, resp{status: 200, ctype: r.Header.Get("Content-Type")}
}

type msg struct {
	id     uint64
	method string
	data   string
}

func (c *sseClient) next(t *testing.T) msg {
	t.Helper()
	ev, err := c.r.Next()
	if err != nil {
		t.Fatalf("sse: %v", err)
	}
	var m struct{ Method string }
	_ = json.Unmarshal(ev.Data, &m)
	id := uint64(0)
	if ev.HasID {
		id, _ = strconv.ParseUint(ev.ID, 10, 64)
	}
	if ev.Event != "message" {
		t.Fatalf("event %q", ev.Event)
	}
	return msg{id: id, method: m.Method, data: string(ev.Data)}
}

func TestStreamReplayResumeAndErrors(t *testing.T) {
	h := newHarness(t, Options{})
	ctx := t.Context()
	if _, r := h.stream(ctx, "nope", nil); r.status != 404 || problemType(t, r.body) != "session_not_found" || !strings.Contains(r.body, `"sessionId":"nope"`) {
		t.Fatalf("unknown: %+v", r)
	}
	if _, r := h.stream(ctx, "nope", map[string]string{"Accept": "application/json"}); r.status != 406 {
		t.Fatalf("accept checked before existence: %+v", r)
	}
	h.rpc("s", "fake", `{"jsonrpc":"2.0","id":1,"method":"a"}`)
	h.rpc("s", "", `{"jsonrpc":"2.0","id":2,"method":"garbage"}`)
	for _, bad := range []string{"abc", "-1"} {
		if _, r := h.stream(ctx, "s", map[string]string{"Last-Event-ID": bad}); r.status != 400 {
			t.Fatalf("Last-Event-ID %s: %+v", bad, r)
		}
	}
	c, r := h.stream(ctx, "s", map[string]string{"Accept": "text/event-stream"})
	if r.ctype != "text/event-stream" {
		t.Fatalf("ctype %s", r.ctype)
	}
	want := []string{"fake/echo", "", acp.MethodInvalidStdout, ""}
	for i, w := range want {
		m := c.next(t)
		if m.id != uint64(i+1) || m.method != w {
			t.Fatalf("event %d: %+v", i, m)
		}
		if w == acp.MethodInvalidStdout && !strings.Contains(m.data, `"raw":"this is not json"`) {
			t.Fatalf("invalid stdout payload %s", m.data)
		}
	}
	// Resume after id 3 replays only id 4, then live messages follow.
	c2, _ := h.stream(ctx, "s", map[string]string{"Last-Event-ID": " 3 "})
	if m := c2.next(t); m.id != 4 {
		t.Fatalf("resume: %+v", m)
	}
	h.rpc("s", "", `{"jsonrpc":"2.0","method":"note"}`)
	for _, cl := range []*sseClient{c, c2} {
		if m := cl.next(t); m.id != 5 || m.method != "fake/notified" {
			t.Fatalf("live: %+v", m)
		}
	}
}

func TestHeartbeat(t *testing.T) {
	h := newHarness(t, Options{Heartbeat: 10 * time.Millisecond})
	h.rpc("hb", "fake", `{"jsonrpc":"2.0","method":"x"}`)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, h.url+"/v1/acp/hb", nil)
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	buf := make([]byte, 0, 4096)
	tmp := make([]byte, 512)
	for !bytes.Contains(buf, []byte(": heartbeat\n\n")) {
		n, err := r.Body.Read(tmp)
		if err != nil {
			t.Fatal(err)
		}
		buf = append(buf, tmp[:n]...)
	}
}

func TestAgentExitFailsPendingAtOnce(t *testing.T) {
	h := newHarness(t, Options{RequestTimeout: time.Hour})
	h.rpc("x", "fake", `{"jsonrpc":"2.0","method":"n"}`)
	c, _ := h.stream(t.Context(), "x", nil)
	c.next(t)
	hang := make(chan resp, 1)
	go func() { hang <- h.rpc("x", "", `{"jsonrpc":"2.0","id":1,"method":"hang"}`) }()
	if m := c.next(t); m.method != "fake/hanging" { // the hang request is pending now
		t.Fatalf("%+v", m)
	}
	r := h.rpc("x", "", `{"jsonrpc":"2.0","id":2,"method":"die"}`)
	for _, got := range []resp{r, <-hang} {
		if got.status != 500 || problemType(t, got.body) != "agent_process_exited" ||
			!strings.Contains(got.body, `"exitCode":3`) || !strings.Contains(got.body, `"stderr":"dying now"`) {
			t.Fatalf("pending: %+v", got)
		}
	}
	m := c.next(t)
	if m.method != acp.MethodAgentExited || !strings.Contains(m.data, `"code":3`) || !strings.Contains(m.data, `"success":false`) {
		t.Fatalf("exit message %+v", m)
	}
	if r := h.rpc("x", "", `{"jsonrpc":"2.0","id":3,"method":"a"}`); r.status != 502 || problemType(t, r.body) != "stream_error" {
		t.Fatalf("after exit: %+v", r)
	}
	if len(h.reg.List()) != 1 {
		t.Fatal("an exited server stays registered until DELETE")
	}
}

func TestRequestTimeout504(t *testing.T) {
	h := newHarness(t, Options{RequestTimeout: 100 * time.Millisecond})
	h.rpc("t", "fake", `{"jsonrpc":"2.0","method":"n"}`)
	r := h.rpc("t", "", `{"jsonrpc":"2.0","id":1,"method":"hang"}`)
	if r.status != 504 || problemType(t, r.body) != "timeout" {
		t.Fatalf("%+v", r)
	}
	// The server is still usable and the id can be reused.
	if r := h.rpc("t", "", `{"jsonrpc":"2.0","id":1,"method":"a"}`); r.status != 200 {
		t.Fatalf("after timeout: %+v", r)
	}
}

func TestPermissionRoundTrip(t *testing.T) {
	h := newHarness(t, Options{})
	h.rpc("p", "fake", `{"jsonrpc":"2.0","method":"n"}`)
	c, _ := h.stream(t.Context(), "p", nil)
	c.next(t)
	done := make(chan resp, 1)
	go func() { done <- h.rpc("p", "", `{"jsonrpc":"2.0","id":20,"method":"perm"}`) }()
	m := c.next(t)
	if m.method != "session/request_permission" || !strings.Contains(m.data, `"id":"perm-1"`) {
		t.Fatalf("%+v", m)
	}
	if r := h.rpc("p", "", `{"jsonrpc":"2.0","id":"perm-1","result":{"outcome":{"outcome":"selected","optionId":"allow"}}}`); r.status != 202 {
		t.Fatalf("%+v", r)
	}
	r := <-done
	if r.status != 200 || !strings.Contains(r.body, `"optionId":"allow"`) || !strings.Contains(r.body, `"id":20`) {
		t.Fatalf("%+v", r)
	}
	if m := c.next(t); !strings.Contains(m.data, `"id":20`) {
		t.Fatalf("response also on SSE: %+v", m)
	}
}

func TestDeleteKillsGroupAndEndsStreams(t *testing.T) {
	h := newHarness(t, Options{})
	r := h.rpc("del", "fake", `{"jsonrpc":"2.0","id":1,"method":"child"}`)
	var out struct{ Result struct{ Pid int } }
	if err := json.Unmarshal([]byte(r.body), &out); err != nil || out.Result.Pid == 0 {
		t.Fatalf("%+v", r)
	}
	inst, _ := h.reg.Get("del")
	pgid := inst.pgid
	c, _ := h.stream(t.Context(), "del", nil)
	c.next(t)
	req, _ := http.NewRequest(http.MethodDelete, h.url+"/v1/acp/del", nil)
	start := time.Now()
	d := h.do(req)
	elapsed := time.Since(start)
	if d.status != 204 {
		t.Fatalf("%+v", d)
	}
	t.Logf("DELETE took %v", elapsed)
	if m := proctest.GroupMembers(pgid); len(m) > 0 {
		t.Fatalf("process group still has live members: %v", m)
	}
	if proctest.Alive(out.Result.Pid) {
		t.Fatal("grandchild survived")
	}
	if _, err := c.r.Next(); err == nil {
		t.Fatal("stream should end on DELETE")
	}
	if d := h.do(req.Clone(t.Context())); d.status != 204 {
		t.Fatalf("unknown id: %+v", d)
	}
	if _, r := h.stream(t.Context(), "del", nil); r.status != 404 {
		t.Fatal("deleted server still streams")
	}
	// Recreating starts a fresh instance whose ids restart at 1.
	h.rpc("del", "fake", `{"jsonrpc":"2.0","method":"n"}`)
	c2, _ := h.stream(t.Context(), "del", nil)
	if m := c2.next(t); m.id != 1 {
		t.Fatalf("%+v", m)
	}
}

func TestFloodManyReadersLoseNothing(t *testing.T) {
	const n = 100_000
	h := newHarness(t, Options{})
	h.rpc("f", "fake", `{"jsonrpc":"2.0","method":"n"}`) // id 1: fake/notified
	const readers = 3
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	for range readers {
		c, _ := h.stream(t.Context(), "f", nil)
		wg.Go(func() {
			next := uint64(1)
			for {
				ev, err := c.r.Next()
				if err != nil {
					errs <- err
					return
				}
				id, _ := strconv.ParseUint(ev.ID, 10, 64)
				if id != next {
					errs <- fmt.Errorf("got id %d, want %d", id, next)
					return
				}
				next++
				if bytes.Contains(ev.Data, []byte(`"result":{"n":`)) {
					if next-1 != n+2 {
						errs <- fmt.Errorf("response at id %d", next-1)
					}
					return
				}
			}
		})
	}
	if r := h.rpc("f", "", fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"flood","params":{"n":%d}}`, n)); r.status != 200 {
		t.Fatalf("%+v", r)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestGapSignalWhenResumingBeyondReplay(t *testing.T) {
	h := newHarness(t, Options{ReplayBuffer: 16})
	h.rpc("g", "fake", `{"jsonrpc":"2.0","id":1,"method":"flood","params":{"n":100}}`) // ids 1..101
	c, _ := h.stream(t.Context(), "g", map[string]string{"Last-Event-ID": "5"})
	m := c.next(t)
	if m.method != acp.MethodGap || m.id != 0 || !strings.Contains(m.data, `"afterEventId":5,"nextEventId":86,"missedEvents":80`) {
		t.Fatalf("gap: %+v", m)
	}
	if m := c.next(t); m.id != 86 {
		t.Fatalf("after gap: %+v", m)
	}
	// A fresh reader without Last-Event-ID replays the ring, no gap.
	c2, _ := h.stream(t.Context(), "g", nil)
	if m := c2.next(t); m.id != 86 {
		t.Fatalf("fresh: %+v", m)
	}
}

func TestListSorted(t *testing.T) {
	h := newHarness(t, Options{})
	for _, id := range []string{"b", "a%2Fb", "A"} {
		h.rpc(id, "fake", `{"jsonrpc":"2.0","method":"n"}`)
	}
	r := h.do(must(http.NewRequest(http.MethodGet, h.url+"/v1/acp", nil)))
	var out struct{ Servers []ServerInfo }
	if err := json.Unmarshal([]byte(r.body), &out); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range out.Servers {
		ids = append(ids, s.ServerID)
		if s.Agent != "fake" || s.CreatedAtMs == 0 {
			t.Fatalf("%+v", s)
		}
	}
	if strings.Join(ids, " ") != "A a/b b" {
		t.Fatalf("%v", ids)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestClientsVanishing(t *testing.T) {
	h := newHarness(t, Options{})
	h.rpc("v", "fake", `{"jsonrpc":"2.0","method":"n"}`)
	// A reader that disconnects mid-flood is unsubscribed and does not
	// hold the agent back; a POST whose client gives up is forgotten.
	ctx, cancel := context.WithCancel(t.Context())
	c, _ := h.stream(ctx, "v", nil)
	c.next(t)
	cancel()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, h.url+"/v1/acp/v", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"hang"}`))
	req.Header.Set("Content-Type", "application/json")
	pctx, pcancel := context.WithCancel(t.Context())
	req = req.WithContext(pctx)
	live, _ := h.stream(t.Context(), "v", map[string]string{"Last-Event-ID": "1"})
	errc := make(chan error, 1)
	go func() {
		_, err := http.DefaultClient.Do(req)
		errc <- err
	}()
	if m := live.next(t); m.method != "fake/hanging" {
		t.Fatalf("%+v", m)
	}
	pcancel()
	if err := <-errc; err == nil {
		t.Fatal("cancelled POST should fail on the client side")
	}
	inst, _ := h.reg.Get("v")
	for {
		inst.pendMu.Lock()
		n := len(inst.pending)
		inst.pendMu.Unlock()
		if n == 0 {
			break
		}
		runtime.Gosched()
	}
	if r := h.rpc("v", "", `{"jsonrpc":"2.0","id":2,"method":"flood","params":{"n":5000}}`); r.status != 200 {
		t.Fatalf("%+v", r)
	}
}

func TestAgentNotReadingStdinTimesOut(t *testing.T) {
	h := newHarness(t, Options{RequestTimeout: 200 * time.Millisecond})
	if r := h.rpc("st", "fake", `{"jsonrpc":"2.0","id":1,"method":"stall"}`); r.status != 200 {
		t.Fatalf("%+v", r)
	}
	big := `{"jsonrpc":"2.0","method":"note","params":{"pad":"` + strings.Repeat("x", 1<<20) + `"}}`
	r := h.rpc("st", "", big)
	if r.status != 504 || problemType(t, r.body) != "agent_input_queued" || !strings.Contains(r.body, "not reading") {
		t.Fatalf("%d %s", r.status, r.body)
	}
}

// TestTimedOutWriteKeepsFraming: a POST that times out while the agent is
// not reading gets 504, yet its line is delivered whole once the agent reads
// again, and the lines after it stay framed.
func TestTimedOutWriteKeepsFraming(t *testing.T) {
	// The paused agent cannot take the big line, so its write times out
	// whatever the timeout; the timeout only has to leave the agent (a
	// race-instrumented test binary parsing 1 MiB of JSON) time to answer
	// the request after it.
	h := newHarness(t, Options{RequestTimeout: 2 * time.Second})
	r := h.rpc("fr", "fake", `{"jsonrpc":"2.0","id":1,"method":"pause"}`)
	var res struct{ Result struct{ PID int } }
	if r.status != 200 || json.Unmarshal([]byte(r.body), &res) != nil || res.Result.PID == 0 {
		t.Fatalf("%+v", r)
	}
	c, _ := h.stream(t.Context(), "fr", nil)
	if m := c.next(t); m.id != 1 { // the pause response
		t.Fatalf("%+v", m)
	}
	// Larger than the pipe buffer, so the write cannot complete.
	big := `{"jsonrpc":"2.0","method":"big","params":{"pad":"` + strings.Repeat("x", 1<<20) + `"}}`
	if r := h.rpc("fr", "", big); r.status != 504 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if err := syscall.Kill(res.Result.PID, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	if r := h.rpc("fr", "", `{"jsonrpc":"2.0","id":2,"method":"after"}`); r.status != 200 || !strings.Contains(r.body, `"id":2`) {
		t.Fatalf("%+v", r)
	}
	var methods []string
	for {
		m := c.next(t)
		if m.method == "" && strings.Contains(m.data, `"id":2`) {
			break
		}
		var p struct{ Params struct{ Method string } }
		_ = json.Unmarshal([]byte(m.data), &p)
		methods = append(methods, m.method+":"+p.Params.Method)
	}
	// The fake agent skips lines it cannot parse: a torn line would be missing.
	if want := []string{"fake/notified:big", "fake/echo:after"}; !slices.Equal(methods, want) {
		t.Fatalf("agent saw %v, want %v", methods, want)
	}
}

// TestLinesIntactAcrossReadBufferSizes: lines shorter and longer than the
// first (small) read buffer and slab, before, across and after the switch
// to the large ones, arrive whole and in order.
func TestLinesIntactAcrossReadBufferSizes(t *testing.T) {
	h := newHarness(t, Options{})
	pads := []int{10, 5000, 20000, 100}                   // before any burst: small buffer, spans it
	pads = append(pads, slices.Repeat([]int{300}, 40)...) // the burst
	pads = append(pads, 70000, 3, 4090, 4100, 16400)      // after the switch
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "lines", "params": map[string]any{"pads": pads}})
	if r := h.rpc("ln", "fake", string(body)); r.status != 200 {
		t.Fatalf("%+v", r)
	}
	c, _ := h.stream(t.Context(), "ln", nil)
	for i, n := range pads {
		m := c.next(t)
		var p struct {
			Params struct {
				I   int
				Pad string
			}
		}
		if err := json.Unmarshal([]byte(m.data), &p); err != nil || m.method != "fake/line" || p.Params.I != i || len(p.Params.Pad) != n {
			t.Fatalf("line %d (pad %d): method %q i %d pad %d err %v", i, n, m.method, p.Params.I, len(p.Params.Pad), err)
		}
	}
}

// BenchmarkACPRoundTrip: one POST /v1/acp request answered by an idle
// agent, through the whole proxy (HTTP, stdin write, stdout routing).
func BenchmarkACPRoundTrip(b *testing.B) {
	reg := New(Options{Logger: slog.New(slog.DiscardHandler), Launcher: fakeLauncher{}})
	hnd, err := server.NewHandler(server.Config{}, reg.Routes())
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(hnd)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = reg.Close(ctx)
		ts.Close()
	}()
	c := ts.Client()
	post := func(q, body string) {
		req, _ := http.NewRequest(http.MethodPost, ts.URL+"/v1/acp/bench"+q, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatal(resp.Status)
		}
	}
	post("?agent=fake", `{"jsonrpc":"2.0","id":0,"method":"initialize"}`)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		post("", `{"jsonrpc":"2.0","id":`+strconv.Itoa(i)+`,"method":"stall-free"}`)
	}
}

func TestOverlongStdoutLineIsReportedNotDropped(t *testing.T) {
	h := newHarness(t, Options{MaxLineBytes: 30})
	h.rpc("long", "fake", `{"jsonrpc":"2.0","method":"n"}`) // the agent answers with a ~70-byte notification
	c, _ := h.stream(t.Context(), "long", nil)
	m := c.next(t)
	if m.id != 1 || m.method != acp.MethodInvalidStdout || !strings.Contains(m.data, `"error":"line exceeds 30 bytes"`) {
		t.Fatalf("%+v", m)
	}
}

// TestStalledReaderIsCutOffAndResumesWithGap drives the whole path over
// HTTP: a reader that stops reading cannot hold the agent back for longer
// than the slow-reader timeout; its stream ends, and when it resumes with
// Last-Event-ID beyond the replay buffer it is told about the gap first.
func TestStalledReaderIsCutOffAndResumesWithGap(t *testing.T) {
	const n = 150_000 // ~12 MB of SSE, far more than loopback socket buffers hold
	h := newHarness(t, Options{ReplayBuffer: 64, SlowReaderTimeout: 50 * time.Millisecond})
	h.rpc("cut", "fake", `{"jsonrpc":"2.0","method":"n"}`)
	stalled, _ := h.stream(t.Context(), "cut", nil)
	if m := stalled.next(t); m.id != 1 {
		t.Fatalf("%+v", m)
	}
	// The stalled reader reads nothing while the agent floods.
	if r := h.rpc("cut", "", fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"flood","params":{"n":%d}}`, n)); r.status != 200 {
		t.Fatalf("flood: %+v", r)
	}
	last := uint64(1)
	for {
		ev, err := stalled.r.Next()
		if err != nil {
			break // cut off: the stream ended
		}
		id, _ := strconv.ParseUint(ev.ID, 10, 64)
		if id != last+1 {
			t.Fatalf("ids must stay contiguous before the cut: %d after %d", id, last)
		}
		last = id
	}
	total := uint64(n + 2) // notified + flood + response
	if last >= total {
		t.Fatalf("reader was never cut off (read up to %d of %d)", last, total)
	}
	resumed, _ := h.stream(t.Context(), "cut", map[string]string{"Last-Event-ID": strconv.FormatUint(last, 10)})
	m := resumed.next(t)
	if m.method != acp.MethodGap || !strings.Contains(m.data, fmt.Sprintf(`"afterEventId":%d`, last)) {
		t.Fatalf("resume must start with a gap notice: %+v", m)
	}
	var gap acp.GapParams
	var env struct{ Params acp.GapParams }
	_ = json.Unmarshal([]byte(m.data), &env)
	gap = env.Params
	if m := resumed.next(t); m.id != gap.NextEventID || gap.NextEventID != total-63 {
		t.Fatalf("after the gap: %+v (gap %+v)", m, gap)
	}
}
