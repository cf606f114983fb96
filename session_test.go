package sandboxagent

import (
	"context"
	"encoding/json"
	"errors"
	"iter"
	"strings"
	"sync"
	"testing"
	"time"
)

func allEvents(t *testing.T, c *Client, id string) []SessionEvent {
	t.Helper()
	var out []SessionEvent
	cursor := ""
	for {
		p, err := c.GetEvents(t.Context(), ListEventsRequest{SessionID: id, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p.Items...)
		if p.NextCursor == "" {
			return out
		}
		cursor = p.NextCursor
	}
}

func method(e SessionEvent) string {
	var m struct {
		Method string `json:"method"`
	}
	_ = json.Unmarshal(e.Payload, &m)
	return m.Method
}

func TestSessionPromptStreamsAndPersists(t *testing.T) {
	srv := startTestServer(t)
	c := connectTest(t, srv, nil)
	ctx := t.Context()
	s, err := c.CreateSession(ctx, CreateSessionRequest{ID: "s1", Agent: "mock", Cwd: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if s.AgentSessionID() == "" {
		t.Fatal("no agent session id")
	}
	// The waits below end with sub: an event that never came fails the
	// test instead of hanging it.
	sub, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	next, stop := iter.Pull2(s.Events(sub))
	defer stop()
	var mu sync.Mutex
	var seen []SessionEvent
	unsub := s.OnEvent(func(ev SessionEvent) {
		mu.Lock()
		seen = append(seen, ev)
		mu.Unlock()
	})
	defer unsub()
	res, err := s.Prompt(ctx, "hello world")
	if err != nil {
		t.Fatal(err)
	}
	// OnEvent saw the turn's last event (the prompt's result) before Prompt
	// returned.
	mu.Lock()
	last := seen[len(seen)-1]
	mu.Unlock()
	if !strings.Contains(string(last.Payload), `"stopReason"`) {
		t.Fatalf("last event when Prompt returned: %s", last.Payload)
	}
	if res.StopReason != "end_turn" {
		t.Fatalf("stop reason %q", res.StopReason)
	}
	// Every event of the turn was delivered before Prompt returned.
	var text strings.Builder
	var n int
	for n < 1000 {
		ev, err, ok := next()
		if !ok || err != nil {
			t.Fatalf("events ended after %d: %v (%v)", n, err, sub.Err())
		}
		n++
		var p struct {
			Params struct {
				Update struct {
					SessionUpdate string `json:"sessionUpdate"`
					Content       struct {
						Text string `json:"text"`
					} `json:"content"`
				} `json:"update"`
			} `json:"params"`
			Result *struct {
				StopReason string `json:"stopReason"`
			} `json:"result"`
		}
		_ = json.Unmarshal(ev.Payload, &p)
		if p.Params.Update.SessionUpdate == "agent_message_chunk" {
			text.WriteString(p.Params.Update.Content.Text)
		}
		if p.Result != nil && p.Result.StopReason != "" {
			break
		}
	}
	if !strings.Contains(text.String(), "Mock reply: hello world") {
		t.Fatalf("streamed text %q", text.String())
	}
	evs := allEvents(t, c, "s1")
	if method(evs[0]) != "session/new" || evs[0].Sender != SessionEventSenderClient || evs[1].Sender != SessionEventSenderAgent {
		t.Fatalf("first events %s %s", evs[0].Payload, evs[1].Payload)
	}
	for i, e := range evs {
		if e.EventIndex != int64(i+1) {
			t.Fatalf("event %d has index %d", i, e.EventIndex)
		}
	}
	rec, ok, _ := c.GetSession(ctx, "s1")
	if !ok || rec.AgentSessionID != s.AgentSessionID() || rec.Agent != "mock" || rec.ConfigOptions == nil {
		t.Fatalf("record %+v", rec)
	}
}

func TestPermissionRoundTripPersisted(t *testing.T) {
	srv := startTestServer(t)
	c := connectTest(t, srv, nil)
	ctx := t.Context()
	s, err := c.CreateSession(ctx, CreateSessionRequest{ID: "p", Agent: "mock", Cwd: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan PermissionRequest, 1)
	s.OnPermissionRequest(func(r PermissionRequest) {
		got <- r
		if err := s.RespondPermission(r.ID, PermissionAlways); err != nil {
			t.Error(err)
		}
	})
	if _, err := s.Prompt(ctx, "PERMISSION"); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if strings.Join(replies(r.AvailableReplies), ",") != "once,always,reject" {
		t.Fatalf("available %v", r.AvailableReplies)
	}
	var reply bool
	for _, e := range allEvents(t, c, "p") {
		if e.Sender == SessionEventSenderClient && strings.Contains(string(e.Payload), `"optionId":"allow_always"`) {
			reply = true
		}
	}
	if !reply {
		t.Fatal("permission reply not persisted")
	}
	if err := s.RespondPermission(r.ID, PermissionOnce); !errors.Is(err, ErrPermissionNotFound) {
		t.Fatalf("second reply: %v", err)
	}
}

func replies(r []PermissionReply) []string {
	out := make([]string, len(r))
	for i, x := range r {
		out[i] = string(x)
	}
	return out
}

func TestConfigOptionsAndValidation(t *testing.T) {
	srv := startTestServer(t)
	c := connectTest(t, srv, nil)
	ctx := t.Context()
	s, err := c.CreateSession(ctx, CreateSessionRequest{ID: "cfg", Agent: "mock", Cwd: t.TempDir(), Mode: "plan", Model: "mock-fast", ThoughtLevel: "high"})
	if err != nil {
		t.Fatal(err)
	}
	opts, err := s.ConfigOptions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cur := map[string]string{}
	for _, o := range opts {
		cur[o.ID] = o.CurrentValue
	}
	if cur["mode"] != "plan" || cur["model"] != "mock-fast" || cur["thought_level"] != "high" {
		t.Fatalf("current values %v", cur)
	}
	m, err := s.Modes(ctx)
	if err != nil || m.CurrentModeID != "plan" {
		t.Fatalf("modes %+v %v", m, err)
	}
	var ve *UnsupportedSessionValueError
	if err := s.SetModel(ctx, "gpt-9"); !errors.As(err, &ve) || ve.ConfigID != "model" {
		t.Fatalf("SetModel: %v", err)
	}
	var ce *UnsupportedSessionConfigOptionError
	if err := s.SetConfigOption(ctx, "nope", "x"); !errors.As(err, &ce) {
		t.Fatalf("SetConfigOption: %v", err)
	}
	if err := s.SetMode(ctx, "warp"); !errors.As(err, &ve) {
		t.Fatalf("SetMode: %v", err)
	}
	var re *RPCError
	if _, err := s.Call(ctx, "nope/x", nil); !errors.As(err, &re) || re.Code != -32601 {
		t.Fatalf("raw call: %v", err)
	}
}

func TestRestoreReplaysHistoryInNewClient(t *testing.T) {
	srv := startTestServer(t)
	store := NewMemoryStore(MemoryStoreOptions{})
	ctx := t.Context()
	c1 := connectTest(t, srv, func(o *Options) { o.Store = store })
	s1, err := c1.CreateSession(ctx, CreateSessionRequest{ID: "r", Agent: "mock", Cwd: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s1.Prompt(ctx, "first prompt"); err != nil {
		t.Fatal(err)
	}
	oldAgentSID := s1.AgentSessionID()
	_ = c1.Close(ctx)
	before := len(allEvents(t, c1, "r"))

	c2 := connectTest(t, srv, func(o *Options) { o.Store = store })
	s2, err := c2.ResumeSession(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	if s2.Record().LastConnectionID == s1.Record().LastConnectionID {
		t.Fatal("not restored on a new connection")
	}
	_ = oldAgentSID
	if _, err := s2.Prompt(ctx, "second prompt"); err != nil {
		t.Fatal(err)
	}
	evs := allEvents(t, c2, "r")
	var prompts []SessionEvent
	for _, e := range evs[before:] {
		if method(e) == "session/prompt" {
			prompts = append(prompts, e)
		}
	}
	if len(prompts) != 1 {
		t.Fatalf("%d prompts after restore", len(prompts))
	}
	var p struct {
		Params struct {
			Prompt []struct {
				Text string `json:"text"`
			} `json:"prompt"`
		} `json:"params"`
	}
	if err := json.Unmarshal(prompts[0].Payload, &p); err != nil {
		t.Fatal(err)
	}
	if len(p.Params.Prompt) != 2 || !strings.HasPrefix(p.Params.Prompt[0].Text, ReplayPrefix) ||
		!strings.Contains(p.Params.Prompt[0].Text, "first prompt") || p.Params.Prompt[1].Text != "second prompt" {
		t.Fatalf("prompt %+v", p.Params.Prompt)
	}
	// indexes continue without gaps or duplicates
	for i, e := range evs {
		if e.EventIndex != int64(i+1) {
			t.Fatalf("index %d at %d", e.EventIndex, i)
		}
	}
	// the replay is consumed once
	if _, err := s2.Prompt(ctx, "third"); err != nil {
		t.Fatal(err)
	}
	evs = allEvents(t, c2, "r")
	last := evs[len(evs)-1]
	for i := len(evs) - 1; i >= 0; i-- {
		if method(evs[i]) == "session/prompt" {
			last = evs[i]
			break
		}
	}
	if strings.Contains(string(last.Payload), "Previous session history") {
		t.Fatal("replay sent twice")
	}
}

func TestDestroySession(t *testing.T) {
	srv := startTestServer(t)
	c := connectTest(t, srv, nil)
	ctx := t.Context()
	if _, err := c.CreateSession(ctx, CreateSessionRequest{ID: "d", Agent: "mock", Cwd: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	if err := c.DestroySession(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	rec, _, _ := c.GetSession(ctx, "d")
	if rec.DestroyedAt == nil {
		t.Fatal("not marked destroyed")
	}
	if err := c.DestroySession(ctx, "nope"); !errors.Is(err, ErrSessionNotFound) {
		t.Fatalf("unknown: %v", err)
	}
	if _, err := c.ResumeSession(ctx, "nope"); !errors.Is(err, ErrSessionNotFound) {
		t.Fatalf("resume unknown: %v", err)
	}
}

func TestEventsQueueOverflowAndEnd(t *testing.T) {
	newSession := func(t *testing.T) *Session {
		c := &Client{ctx: t.Context(), sessions: map[string]*Session{}}
		return c.handle(SessionRecord{ID: "q", Agent: "mock"})
	}
	t.Run("overflow yields the queued events then the error", func(t *testing.T) {
		s := newSession(t)
		seq := s.Events(t.Context())
		for i := range eventsQueueLen + 2 {
			s.emit(SessionEvent{EventIndex: int64(i + 1)})
		}
		var n int64
		for ev, err := range seq {
			if err != nil {
				if !errors.Is(err, ErrEventsOverflow) || n != eventsQueueLen {
					t.Fatalf("after %d events: %v", n, err)
				}
				return
			}
			if n++; ev.EventIndex != n {
				t.Fatalf("event %d has index %d", n, ev.EventIndex)
			}
		}
		t.Fatalf("loop ended after %d events without ErrEventsOverflow", n)
	})
	t.Run("ctx end ends the loop and removes the listener", func(t *testing.T) {
		s := newSession(t)
		ctx, cancel := context.WithCancel(t.Context())
		seq := s.Events(ctx)
		s.emit(SessionEvent{EventIndex: 1})
		cancel()
		for ev, err := range seq {
			if err != nil || ev.EventIndex != 1 {
				t.Fatalf("event %+v %v", ev, err)
			}
		}
		s.mu.Lock()
		n := len(s.listeners)
		s.mu.Unlock()
		if n != 0 {
			t.Fatalf("%d listeners left", n)
		}
	})
}
