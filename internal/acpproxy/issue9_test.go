package acpproxy

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStdinOutboxNeverLosesAcceptedMessages: with the agent not reading,
// a request that times out behind a stuck write is queued (504
// agent_input_queued) and reaches the agent, in order, once it reads; a
// message past the queue bound is refused (503 agent_input_full) and never
// written. Before the outbox, the queued request was answered "stays
// queued" and silently lost.
func TestStdinOutboxNeverLosesAcceptedMessages(t *testing.T) {
	h := newHarness(t, Options{RequestTimeout: time.Second, MaxQueuedBytes: 4096})
	r := h.rpc("ob", "fake", `{"jsonrpc":"2.0","id":1,"method":"pause"}`)
	var res struct{ Result struct{ PID int } }
	if r.status != 200 || json.Unmarshal([]byte(r.body), &res) != nil || res.Result.PID == 0 {
		t.Fatalf("%+v", r)
	}
	c, _ := h.stream(t.Context(), "ob", nil)
	if m := c.next(t); m.id != 1 {
		t.Fatalf("%+v", m)
	}
	big := `{"jsonrpc":"2.0","method":"big","params":{"pad":"` + strings.Repeat("x", 1<<20) + `"}}`
	steps := []struct {
		name, body string
		status     int
		code       string
	}{
		{"cut mid-line", big, 504, "agent_input_queued"},
		{"behind it", `{"jsonrpc":"2.0","id":50,"method":"m50"}`, 504, "agent_input_queued"},
		{"past the bound", `{"jsonrpc":"2.0","id":60,"method":"m60","params":{"pad":"` + strings.Repeat("y", 8192) + `"}}`, 503, "agent_input_full"},
	}
	for _, s := range steps {
		if r := h.rpc("ob", "", s.body); r.status != s.status || problemType(t, r.body) != s.code {
			t.Fatalf("%s: %d %s", s.name, r.status, r.body)
		}
	}
	if err := syscall.Kill(res.Result.PID, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	if r := h.rpc("ob", "", `{"jsonrpc":"2.0","id":51,"method":"m51"}`); r.status != 200 || !strings.Contains(r.body, `"id":51`) {
		t.Fatalf("%+v", r)
	}
	var seen []string
	for {
		m := c.next(t)
		if m.method == "" && strings.Contains(m.data, `"id":51`) {
			break
		}
		var p struct{ Params struct{ Method string } }
		_ = json.Unmarshal([]byte(m.data), &p)
		if m.method != "" {
			seen = append(seen, p.Params.Method)
		}
	}
	if want := []string{"big", "m50", "m51"}; !slices.Equal(seen, want) {
		t.Fatalf("agent saw %v, want %v", seen, want)
	}
}

func TestNewServersPastTheCapAreRefused(t *testing.T) {
	h := newHarness(t, Options{MaxServers: 2})
	init := `{"jsonrpc":"2.0","id":1,"method":"init"}`
	for _, id := range []string{"c1", "c2"} {
		if r := h.rpc(id, "fake", init); r.status != 200 {
			t.Fatalf("%s: %+v", id, r)
		}
	}
	if r := h.rpc("c3", "fake", init); r.status != 503 || problemType(t, r.body) != "too_many_servers" {
		t.Fatalf("past the cap: %+v", r)
	}
	if r := h.rpc("c1", "", `{"jsonrpc":"2.0","id":2,"method":"x"}`); r.status != 200 {
		t.Fatalf("existing servers still work: %+v", r)
	}
	req, _ := http.NewRequest(http.MethodDelete, h.url+"/v1/acp/c1", nil)
	if r := h.do(req); r.status != 204 {
		t.Fatalf("delete: %+v", r)
	}
	if r := h.rpc("c3", "fake", init); r.status != 200 {
		t.Fatalf("after a delete: %+v", r)
	}
}

// TestAgentPipesClosedOnExit: the reaper closes stdout and stderr instead
// of leaving them to GC finalizers.
func TestAgentPipesClosedOnExit(t *testing.T) {
	h := newHarness(t, Options{})
	h.rpc("px", "fake", `{"jsonrpc":"2.0","id":1,"method":"die"}`)
	inst, ok := h.reg.Get("px")
	if !ok {
		t.Fatal("no server")
	}
	<-inst.exitedCh
	for name, f := range map[string]*os.File{"stdout": inst.stdout, "stderr": inst.stderrR} {
		if err := f.Close(); !errors.Is(err, os.ErrClosed) {
			t.Fatalf("%s still open after the exit (Close: %v)", name, err)
		}
	}
}

// TestStreamAnswerWaitsForReadersFlush is the ordering invariant: a POST
// holding the response with seq n waits until every live reader has
// flushed n; leaving, closing and the slow-reader bound release it too.
func TestStreamAnswerWaitsForReadersFlush(t *testing.T) {
	tests := []struct {
		name    string
		slow    time.Duration
		release func(s *stream, r *reader, seq uint64)
	}{
		{"reader flushes", time.Hour, func(s *stream, r *reader, seq uint64) { s.markFlushed(r, seq) }},
		{"reader leaves", time.Hour, func(s *stream, r *reader, _ uint64) { s.unsubscribe(r) }},
		{"stream closes", time.Hour, func(s *stream, _ *reader, _ uint64) { s.close() }},
		{"slow-reader bound", 20 * time.Millisecond, func(*stream, *reader, uint64) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStream(16, 0, tt.slow)
			r, _ := s.subscribe(0, false, nil)
			seq, _ := s.publish([]byte(`{"id":1,"result":{}}`))
			done := make(chan struct{})
			go func() { s.waitFlushed(context.Background(), seq); close(done) }()
			if got, _ := s.next(r, nil, 16, 1<<20); len(got) != 1 {
				t.Fatalf("handed %d", len(got))
			}
			s.markFlushed(r, seq-1) // handed is not flushed: still waiting
			select {
			case <-done:
				t.Fatal("answered before the reader flushed the response")
			default:
			}
			tt.release(s, r, seq)
			<-done
		})
	}
	// A reader already past seq (resumed after it) and no reader at all
	// never wait.
	s := newStream(16, 0, time.Hour)
	seq, _ := s.publish([]byte(`{}`))
	s.waitFlushed(context.Background(), seq)
	s.subscribe(seq, true, nil)
	s.waitFlushed(context.Background(), seq)
}

// TestStreamResumeBeyondEndIsAReset: a Last-Event-ID past the stream's
// last id (the server id was recreated, or the server restarted) replays
// everything retained after a reset gap instead of waiting for ids that
// will never come.
func TestStreamResumeBeyondEndIsAReset(t *testing.T) {
	s := newStream(16, 0, time.Second)
	for range 3 {
		_, _ = s.publish([]byte(`{}`))
	}
	r, gap := s.subscribe(500, true, nil)
	if gap == nil || !gap.reset || gap.after != 500 || gap.next != 1 {
		t.Fatalf("gap %+v", gap)
	}
	if got, _ := s.next(r, nil, 16, 1<<20); len(got) != 3 || got[0].seq != 1 {
		t.Fatalf("replayed %+v", got)
	}
	if _, gap := s.subscribe(3, true, nil); gap != nil {
		t.Fatalf("resume at the end is no gap: %+v", gap)
	}
}
