package process

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sandbox-agent-go/sandbox-agent/internal/server"
	"github.com/sandbox-agent-go/sandbox-agent/internal/sse"
	"github.com/sandbox-agent-go/sandbox-agent/internal/testutil/wait"
)

func TestRing(t *testing.T) {
	type op struct {
		stream streamKind
		size   int
	}
	tests := []struct {
		name     string
		limit    uint64
		ops      []op
		wantSeqs []uint64
		wantLast uint64
	}{
		{"fits", 20, []op{{streamStdout, 5}, {streamStderr, 5}}, []uint64{1, 2}, 2},
		{"evicts oldest", 20, []op{{streamStdout, 10}, {streamStdout, 10}, {streamStderr, 10}}, []uint64{2, 3}, 3},
		{"evicts several", 20, []op{{streamStdout, 5}, {streamStdout, 5}, {streamStdout, 5}, {streamStdout, 18}}, []uint64{4}, 4},
		{"oversized chunk dropped, sequence consumed", 20, []op{{streamStdout, 5}, {streamStdout, 21}, {streamStdout, 5}}, []uint64{1, 3}, 3},
		{"exact limit kept", 20, []op{{streamStdout, 20}}, []uint64{1}, 1},
		{"entry count bounded", 1024 * entryOverhead, func() []op {
			ops := make([]op, 1500)
			for i := range ops {
				ops[i] = op{streamStdout, 1}
			}
			return ops
		}(), func() []uint64 {
			var s []uint64
			for i := uint64(477); i <= 1500; i++ {
				s = append(s, i)
			}
			return s
		}(), 1500},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRing(tc.limit)
			for i, o := range tc.ops {
				r.append(o.stream, make([]byte, o.size), int64(i))
			}
			es, next := r.read(0, filterCombined, 1<<30, 1<<30)
			var seqs []uint64
			var total uint64
			for _, e := range es {
				seqs = append(seqs, e.seq)
				total += uint64(len(e.data))
			}
			if !slices.Equal(seqs, tc.wantSeqs) {
				t.Fatalf("seqs %v, want %v", seqs, tc.wantSeqs)
			}
			if next != tc.wantLast || r.lastSeq() != tc.wantLast {
				t.Fatalf("next %d last %d, want %d", next, r.lastSeq(), tc.wantLast)
			}
			if total > tc.limit {
				t.Fatalf("retained %d bytes > limit %d", total, tc.limit)
			}
		})
	}
}

func TestRingReadPaging(t *testing.T) {
	r := newRing(1 << 20)
	for i := range 10 {
		s := streamStdout
		if i%2 == 1 {
			s = streamStderr
		}
		r.append(s, []byte{byte('0' + i)}, 0)
	}
	// Page through stderr two at a time.
	var got []uint64
	cursor := uint64(0)
	for {
		es, next := r.read(cursor, filterStderr, 2, 1<<20)
		if len(es) == 0 {
			if next != 10 {
				t.Fatalf("final cursor %d", next)
			}
			break
		}
		for _, e := range es {
			got = append(got, e.seq)
		}
		cursor = next
	}
	if want := []uint64{2, 4, 6, 8, 10}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	es, next := r.tail(3, filterStdout, 2)
	if len(es) != 2 || es[0].seq != 7 || es[1].seq != 9 || next != 10 {
		t.Fatalf("tail: %v next %d", es, next)
	}
	if es, _ := r.tail(0, filterStdout, 0); len(es) != 0 {
		t.Fatalf("tail 0: %v", es)
	}
	// A cursor beyond the end stays where it is.
	if _, next := r.read(50, filterCombined, 10, 10); next != 50 {
		t.Fatalf("next %d", next)
	}
}

func TestLossyUTF8(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"a\xffb", "a\uFFFDb"},
		{"\xe2\x82", "\uFFFD"},                 // truncated 3-byte sequence: one replacement
		{"\xe2\x82x", "\uFFFDx"},               // ... followed by ASCII
		{"\xf0\x9f\x98", "\uFFFD"},             // truncated 4-byte sequence
		{"\xed\xa0\x80", "\uFFFD\uFFFD\uFFFD"}, // surrogate: each byte invalid
		{"\xc0\xaf", "\uFFFD\uFFFD"},           // overlong
		{"\xef\xbf\xbd", "\uFFFD"},             // a real U+FFFD
		{"é\xe9", "é\uFFFD"},
	}
	for _, tc := range tests {
		if got := lossyUTF8([]byte(tc.in)); got != tc.want {
			t.Errorf("lossyUTF8(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestDecodeBase64(t *testing.T) {
	tests := []struct{ in, want, err string }{
		{"aGkK", "hi\n", ""},
		{"", "", ""},
		{"aGk=", "hi", ""},
		{"abc\n", "", "Invalid symbol 10, offset 3."},
		{"a=bc", "", "Invalid symbol 61, offset 1."},
		{"aGk", "", "Invalid input length: 3"},
		{"aGl=", "", "Invalid last symbol 108, offset 2."},
	}
	for _, tc := range tests {
		got, err := decodeBase64(tc.in)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("decodeBase64(%q) error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || string(got) != tc.want {
			t.Errorf("decodeBase64(%q) = %q, %v", tc.in, got, err)
		}
	}
}

func TestLogsFilters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	in := e.create(map[string]any{"command": "sh", "args": []string{"-c", "echo o1; echo e1 >&2; echo o2; echo e2 >&2"}})
	e.waitExited(in.ID)
	all := e.waitOutput(in.ID, "", "o2\n")
	wait.Until(t, 5*time.Second, "stderr logged", func() bool {
		all = e.logs(in.ID, "")
		return len(all.Entries) > 0 && strings.Contains(joinData(all.Entries), "e2\n")
	})
	if all.ProcessID != in.ID || all.Stream != "combined" {
		t.Fatalf("header %+v", all)
	}
	var stdout, stderr []logEntryJSON
	for i, en := range all.Entries {
		if en.Sequence != uint64(i+1) || en.Encoding != "base64" || en.TimestampMs == 0 {
			t.Fatalf("entry %d: %+v", i, en)
		}
		switch en.Stream {
		case "stdout":
			stdout = append(stdout, en)
		case "stderr":
			stderr = append(stderr, en)
		default:
			t.Fatalf("stream %q", en.Stream)
		}
	}
	if joinData(stdout) != "o1\no2\n" || joinData(stderr) != "e1\ne2\n" {
		t.Fatalf("stdout %q stderr %q", joinData(stdout), joinData(stderr))
	}
	last := all.Entries[len(all.Entries)-1]
	tests := []struct {
		query  string
		stream string
		want   []logEntryJSON
	}{
		{"?stream=stdout", "stdout", stdout},
		{"?stream=stderr", "stderr", stderr},
		{"?stream=combined", "combined", all.Entries},
		{"?stream=pty", "pty", []logEntryJSON{}},
		{"?tail=1", "combined", []logEntryJSON{last}},
		{"?tail=0", "combined", []logEntryJSON{}},
		{"?stream=stdout&tail=1", "stdout", stdout[len(stdout)-1:]},
		{"?since=1", "combined", all.Entries[1:]},
		{fmt.Sprintf("?since=%d", last.Sequence), "combined", []logEntryJSON{}},
		{"?since=1&tail=1", "combined", []logEntryJSON{last}},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			got := e.logs(in.ID, tc.query)
			if got.Stream != tc.stream {
				t.Fatalf("stream %q, want %q", got.Stream, tc.stream)
			}
			if diff := cmp.Diff(tc.want, got.Entries); diff != "" {
				t.Fatalf("entries (-want +got):\n%s", diff)
			}
		})
	}
	// Wire form: data is base64.
	raw := e.call("GET", "/v1/processes/"+in.ID+"/logs?tail=1&stream=stdout", nil, 200, nil)
	lastOut := stdout[len(stdout)-1]
	if !strings.Contains(string(raw), `"data":"`+base64.StdEncoding.EncodeToString(lastOut.Data)+`","encoding":"base64"}]}`) {
		t.Fatalf("wire %s", raw)
	}
	for _, q := range []string{"?stream=bogus", "?tail=x", "?since=-1", "?follow=1"} {
		res, raw := e.do("GET", "/v1/processes/"+in.ID+"/logs"+q, nil)
		if res.StatusCode != 400 || !strings.HasPrefix(string(raw), "Failed to deserialize query string: ") {
			t.Fatalf("%s: %d %s", q, res.StatusCode, raw)
		}
	}
	res, raw := e.do("GET", "/v1/processes/"+in.ID+"/logs?stream=bogus", nil)
	if want := "Failed to deserialize query string: unknown variant `bogus`, expected one of `stdout`, `stderr`, `combined`, `pty`"; string(raw) != want {
		t.Fatalf("%d %q", res.StatusCode, raw)
	}
}

// The ring keeps at most maxLogBytesPerProcess bytes, evicting the oldest.
func TestLogEviction(t *testing.T) {
	t.Parallel()
	c := DefaultConfig()
	c.MaxLogBytesPerProcess = 20
	e := newEnv(t, withConfig(c))
	in := e.create(map[string]any{"command": "cat"})
	for i, line := range []string{"aaaaaaaaa\n", "bbbbbbbbb\n", "ccccccccc\n"} {
		e.call("POST", "/v1/processes/"+in.ID+"/input", map[string]any{"data": line, "encoding": "text"}, 200, nil)
		wait.Until(t, 5*time.Second, "line logged", func() bool {
			l := e.logs(in.ID, "?tail=1")
			return len(l.Entries) == 1 && l.Entries[0].Sequence == uint64(i+1)
		})
	}
	l := e.logs(in.ID, "")
	if len(l.Entries) != 2 || l.Entries[0].Sequence != 2 || joinData(l.Entries) != "bbbbbbbbb\nccccccccc\n" {
		t.Fatalf("entries %+v", l.Entries)
	}
}

// followStream reads a follow=true SSE response in the background.
type followStream struct {
	res    *http.Response
	events chan sse.Event
	err    error // set before events is closed
	cancel context.CancelFunc
}

func (e *testEnv) follow(id, query string, hdr ...string) *followStream {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	sep := "?"
	if query != "" {
		sep = "&"
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/v1/processes/"+id+"/logs"+query+sep+"follow=true", nil)
	req.Header.Set("Accept", "text/event-stream")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		cancel()
		e.t.Fatal(err)
	}
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" || res.Header.Get("Cache-Control") != "no-cache" {
		cancel()
		res.Body.Close()
		e.t.Fatalf("follow: %d %v", res.StatusCode, res.Header)
	}
	s := &followStream{res: res, events: make(chan sse.Event, 64), cancel: cancel}
	go func() {
		defer close(s.events)
		r := sse.NewReader(res.Body)
		for {
			ev, err := r.Next()
			if err != nil {
				s.err = err
				return
			}
			s.events <- ev
		}
	}()
	e.t.Cleanup(func() {
		cancel()
		for range s.events {
		}
		res.Body.Close()
	})
	return s
}

func (s *followStream) next(t testing.TB) (sse.Event, logEntryJSON) {
	t.Helper()
	select {
	case ev, ok := <-s.events:
		if !ok {
			t.Fatalf("stream ended: %v", s.err)
		}
		var en logEntryJSON
		if err := json.Unmarshal(ev.Data, &en); err != nil {
			t.Fatalf("event data %s: %v", ev.Data, err)
		}
		if ev.Event != "log" || ev.ID != strconv.FormatUint(en.Sequence, 10) {
			t.Fatalf("event %q id %q for sequence %d", ev.Event, ev.ID, en.Sequence)
		}
		return ev, en
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
	}
	panic("unreachable")
}

// expectEnd waits for a clean end of stream.
func (s *followStream) expectEnd(t testing.TB) {
	t.Helper()
	select {
	case ev, ok := <-s.events:
		if ok {
			t.Fatalf("unexpected event %+v", ev)
		}
		if !errors.Is(s.err, io.EOF) {
			t.Fatalf("stream ended with %v, want clean EOF", s.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("stream did not end")
	}
}

func TestFollowLogs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	in := e.create(map[string]any{"command": "sh", "args": []string{"-c", `read a; echo "$a"; read b; echo "$b"`}})
	s := e.follow(in.ID, "")
	for i, line := range []string{"one", "two"} {
		e.call("POST", "/v1/processes/"+in.ID+"/input", map[string]any{"data": line + "\n", "encoding": "text"}, 200, nil)
		_, en := s.next(t)
		if en.Sequence != uint64(i+1) || string(en.Data) != line+"\n" || en.Stream != "stdout" {
			t.Fatalf("entry %+v", en)
		}
	}
	// Unlike upstream, the stream ends once the process exited and its
	// output is drained.
	s.expectEnd(t)

	// Replays: Last-Event-ID, since (the larger wins), tail; all end at once.
	tests := []struct {
		name  string
		query string
		hdr   []string
		want  []uint64
	}{
		{"full replay", "", nil, []uint64{1, 2}},
		{"Last-Event-ID", "", []string{"Last-Event-ID", "1"}, []uint64{2}},
		{"since wins over smaller Last-Event-ID", "?since=2", []string{"Last-Event-ID", "1"}, nil},
		{"Last-Event-ID wins over smaller since", "?since=0", []string{"Last-Event-ID", "2"}, nil},
		{"tail", "?tail=1", nil, []uint64{2}},
		{"stream filter", "?stream=stderr", nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := e.follow(in.ID, tc.query, tc.hdr...)
			var got []uint64
			for range tc.want {
				_, en := s.next(t)
				got = append(got, en.Sequence)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			s.expectEnd(t)
		})
	}
	res, raw := e.do("GET", "/v1/processes/"+in.ID+"/logs?follow=true", nil, "Last-Event-ID", "abc")
	if d, _ := problemDetail(t, raw); res.StatusCode != 400 || d != "invalid request: Last-Event-ID must be a positive integer" {
		t.Fatalf("bad Last-Event-ID: %d %s", res.StatusCode, raw)
	}
	res, _ = e.do("GET", "/v1/processes/nope/logs?follow=true", nil)
	if res.StatusCode != 404 {
		t.Fatalf("unknown: %d", res.StatusCode)
	}
}

func TestFollowHeartbeat(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *Options, _ *server.Config) { o.Heartbeat = 20 * time.Millisecond })
	in := e.create(map[string]any{"command": "cat"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/v1/processes/"+in.ID+"/logs?follow=true", nil)
	res, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	br := bufio.NewReader(res.Body)
	// Two consecutive bare comment keep-alives.
	for range 2 {
		line, err := br.ReadString('\n')
		if err != nil || line != ":\n" {
			t.Fatalf("line %q, %v", line, err)
		}
		if blank, _ := br.ReadString('\n'); blank != "\n" {
			t.Fatalf("blank %q", blank)
		}
	}
}

// Close ends follow streams of live processes.
func TestFollowEndsOnClose(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	in := e.create(map[string]any{"command": "cat"})
	s := e.follow(in.ID, "")
	if err := e.m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.expectEnd(t)
	assertGroupGone(t, *in.Pid)
}
