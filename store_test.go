package sandboxagent_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	sandboxagent "github.com/sandbox-agent-go/sandbox-agent"
	"github.com/sandbox-agent-go/sandbox-agent/internal/testutil/testbin"
	"github.com/sandbox-agent-go/sandbox-agent/persist/storetest"
)

// TestMain is the package's only TestMain (it lives here because the store
// was the first part of the package with tests): every test in package
// sandboxagent must leave no goroutines behind.
func TestMain(m *testing.M) {
	// testbin.Main builds the binary the in-package server helpers launch
	// as the mock agent, removes it afterwards and checks for leaks.
	os.Exit(testbin.Main(m, sandboxagent.AgentBinary))
}

func TestMemoryStoreConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) sandboxagent.SessionStore {
		return sandboxagent.NewMemoryStore(sandboxagent.MemoryStoreOptions{})
	})
}

func TestMemoryStoreEvictsOldestSessionsWithTheirEvents(t *testing.T) {
	ctx := context.Background()
	s := sandboxagent.NewMemoryStore(sandboxagent.MemoryStoreOptions{MaxSessions: 3})
	// CreatedAt order: b(1) a(2) c(2) d(3); "a" < "c" breaks the tie.
	for _, r := range []sandboxagent.SessionRecord{
		{ID: "c", CreatedAt: 2}, {ID: "b", CreatedAt: 1}, {ID: "a", CreatedAt: 2},
	} {
		if err := s.UpdateSession(ctx, r); err != nil {
			t.Fatal(err)
		}
		if _, err := s.InsertEvent(ctx, r.ID, storeTestEvent(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.UpdateSession(ctx, sandboxagent.SessionRecord{ID: "d", CreatedAt: 3}); err != nil {
		t.Fatal(err)
	}
	if got := storeTestListedIDs(t, s); !slices.Equal(got, []string{"a", "c", "d"}) {
		t.Fatalf("after the 4th session: %v, want [a c d] (b evicted)", got)
	}
	if page, _ := s.ListEvents(ctx, sandboxagent.ListEventsRequest{SessionID: "b"}); len(page.Items) != 0 {
		t.Errorf("evicted session kept %d events", len(page.Items))
	}
	if page, _ := s.ListEvents(ctx, sandboxagent.ListEventsRequest{SessionID: "a"}); len(page.Items) != 1 {
		t.Errorf("surviving session has %d events, want 1", len(page.Items))
	}
	// A record older than all others is evicted right away, as upstream does.
	if err := s.UpdateSession(ctx, sandboxagent.SessionRecord{ID: "old", CreatedAt: 0}); err != nil {
		t.Fatal(err)
	}
	if got := storeTestListedIDs(t, s); !slices.Equal(got, []string{"a", "c", "d"}) {
		t.Errorf("after inserting an older record: %v, want [a c d]", got)
	}
	// Overwriting an existing record does not evict.
	if err := s.UpdateSession(ctx, sandboxagent.SessionRecord{ID: "a", CreatedAt: 2, Agent: "x"}); err != nil {
		t.Fatal(err)
	}
	if got := storeTestListedIDs(t, s); !slices.Equal(got, []string{"a", "c", "d"}) {
		t.Errorf("after an overwrite: %v, want [a c d]", got)
	}
}

func TestMemoryStoreDropsOldestEventsAndNeverReusesIndexes(t *testing.T) {
	ctx := context.Background()
	s := sandboxagent.NewMemoryStore(sandboxagent.MemoryStoreOptions{MaxEventsPerSession: 3})
	var ids []string
	for i := range 5 {
		ev, err := s.InsertEvent(ctx, "s", storeTestEvent(fmt.Sprintf(`{"i":%d}`, i)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ev.ID)
	}
	page, err := s.ListEvents(ctx, sandboxagent.ListEventsRequest{SessionID: "s"})
	if err != nil {
		t.Fatal(err)
	}
	if got := storeTestIndexes(page.Items); !slices.Equal(got, []int64{3, 4, 5}) {
		t.Fatalf("retained indexes %v, want [3 4 5]", got)
	}
	// Index 1 was dropped with its event, so it may be written again
	// explicitly; automatic indexes keep counting from the highest ever.
	if ev, err := s.InsertEvent(ctx, "s", sandboxagent.SessionEvent{EventIndex: 1, Sender: sandboxagent.SessionEventSenderAgent, Payload: json.RawMessage(`{}`)}); err != nil || ev.EventIndex != 1 {
		t.Fatalf("explicit index 1 after eviction: %+v, %v", ev, err)
	}
	ev, err := s.InsertEvent(ctx, "s", storeTestEvent(`{}`))
	if err != nil || ev.EventIndex != 6 {
		t.Fatalf("next automatic index = %d (%v), want 6", ev.EventIndex, err)
	}
	page, _ = s.ListEvents(ctx, sandboxagent.ListEventsRequest{SessionID: "s"})
	if got := storeTestIndexes(page.Items); !slices.Equal(got, []int64{1, 5, 6}) {
		t.Errorf("retained indexes %v, want [1 5 6] (oldest inserted dropped first, listed in index order)", got)
	}
	// A dropped event's ID is free again.
	if _, err := s.InsertEvent(ctx, "other", sandboxagent.SessionEvent{ID: ids[0], Sender: sandboxagent.SessionEventSenderAgent, Payload: json.RawMessage(`{}`)}); err != nil {
		t.Errorf("reusing a dropped event ID: %v", err)
	}
}

func TestMemoryStoreDefaults(t *testing.T) {
	ctx := context.Background()
	for _, opts := range []sandboxagent.MemoryStoreOptions{{}, {MaxSessions: -1, MaxEventsPerSession: -5}} {
		s := sandboxagent.NewMemoryStore(opts)
		for i := range sandboxagent.DefaultMemoryStoreMaxSessions + 1 {
			if err := s.UpdateSession(ctx, sandboxagent.SessionRecord{ID: fmt.Sprintf("s%04d", i), CreatedAt: int64(i)}); err != nil {
				t.Fatal(err)
			}
		}
		for range sandboxagent.DefaultMemoryStoreMaxEventsPerSession + 1 {
			if _, err := s.InsertEvent(ctx, "s0001", storeTestEvent(`{}`)); err != nil {
				t.Fatal(err)
			}
		}
		n := 0
		for cursor := ""; ; {
			page, err := s.ListSessions(ctx, sandboxagent.ListPageRequest{Cursor: cursor, Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			n += len(page.Items)
			if cursor = page.NextCursor; cursor == "" {
				break
			}
		}
		if n != sandboxagent.DefaultMemoryStoreMaxSessions {
			t.Errorf("%+v: %d sessions kept, want %d", opts, n, sandboxagent.DefaultMemoryStoreMaxSessions)
		}
		page, err := s.ListEvents(ctx, sandboxagent.ListEventsRequest{SessionID: "s0001", Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Items) != sandboxagent.DefaultMemoryStoreMaxEventsPerSession || page.Items[0].EventIndex != 2 {
			t.Errorf("%+v: %d events kept starting at %d, want %d starting at 2", opts, len(page.Items), page.Items[0].EventIndex, sandboxagent.DefaultMemoryStoreMaxEventsPerSession)
		}
	}
}

func TestListPageRequestOffset(t *testing.T) {
	for cursor, want := range map[string]int{
		"": 0, "0": 0, "3": 3, "42": 42, " \t7": 7, "3abc": 3, "1.9": 1, "+4": 4,
		"-1": 0, "-0": 0, "abc": 0, "NaN": 0, "Infinity": 0, "-": 0, "0x10": 0, "1e3": 1,
		"99999999999999999999999": math.MaxInt,
	} {
		if got := (sandboxagent.ListPageRequest{Cursor: cursor}).Offset(); got != want {
			t.Errorf("Offset(%q) = %d, want %d", cursor, got, want)
		}
	}
	for limit, want := range map[int]int{-1: 100, 0: 100, 1: 1, 100: 100, 5000: 5000} {
		if got := (sandboxagent.ListPageRequest{Limit: limit}).PageSize(); got != want {
			t.Errorf("PageSize(%d) = %d, want %d", limit, got, want)
		}
	}
	if got := sandboxagent.NextCursor(3, 3, true); got != "6" {
		t.Errorf("NextCursor(3, 3, true) = %q", got)
	}
	if got := sandboxagent.NextCursor(3, 3, false); got != "" {
		t.Errorf("NextCursor(3, 3, false) = %q", got)
	}
}

// TestStoreJSONShapes pins the JSON field names to the TypeScript SDK's
// SessionRecord / SessionEvent / ListPage shapes.
func TestStoreJSONShapes(t *testing.T) {
	destroyed := int64(1700000001000)
	rec := sandboxagent.SessionRecord{
		ID: "local", Agent: "claude", AgentSessionID: "agent-s", LastConnectionID: "conn",
		CreatedAt: 1700000000000, DestroyedAt: &destroyed, SandboxID: "e2b/abc",
		SessionInit:   json.RawMessage(`{"cwd":"/","mcpServers":[]}`),
		ConfigOptions: json.RawMessage(`[]`),
		Modes:         json.RawMessage(`null`),
	}
	wantRec := `{"id":"local","agent":"claude","agentSessionId":"agent-s","lastConnectionId":"conn","createdAt":1700000000000,"destroyedAt":1700000001000,"sandboxId":"e2b/abc","sessionInit":{"cwd":"/","mcpServers":[]},"configOptions":[],"modes":null}`
	storeTestCheckJSON(t, rec, wantRec)
	storeTestCheckJSON(t, sandboxagent.SessionRecord{ID: "x", Agent: "a", CreatedAt: 1},
		`{"id":"x","agent":"a","agentSessionId":"","lastConnectionId":"","createdAt":1}`)

	var back sandboxagent.SessionRecord
	if err := json.Unmarshal([]byte(wantRec), &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(rec, back); diff != "" {
		t.Errorf("SessionRecord JSON round trip (-want +got):\n%s", diff)
	}

	ev := sandboxagent.SessionEvent{ID: "e", EventIndex: 3, SessionID: "local", CreatedAt: 5, ConnectionID: "conn", Sender: sandboxagent.SessionEventSenderAgent, Payload: json.RawMessage(`{"jsonrpc":"2.0"}`)}
	storeTestCheckJSON(t, ev, `{"id":"e","eventIndex":3,"sessionId":"local","createdAt":5,"connectionId":"conn","sender":"agent","payload":{"jsonrpc":"2.0"}}`)
	storeTestCheckJSON(t, sandboxagent.ListPage[sandboxagent.SessionEvent]{Items: []sandboxagent.SessionEvent{}}, `{"items":[]}`)
	storeTestCheckJSON(t, sandboxagent.ListPage[int]{Items: []int{1}, NextCursor: "1"}, `{"items":[1],"nextCursor":"1"}`)
	storeTestCheckJSON(t, sandboxagent.ListEventsRequest{SessionID: "s", Cursor: "2", Limit: 3}, `{"sessionId":"s","cursor":"2","limit":3}`)
	storeTestCheckJSON(t, sandboxagent.ListPageRequest{}, `{}`)
}

func TestSessionEventNormalize(t *testing.T) {
	ev, err := sandboxagent.SessionEvent{Sender: sandboxagent.SessionEventSenderClient, Payload: json.RawMessage(`{}`)}.Normalize("s")
	if err != nil {
		t.Fatal(err)
	}
	if ev.ID == "" || ev.SessionID != "s" || ev.CreatedAt == 0 || ev.EventIndex != 0 {
		t.Errorf("Normalize filled %+v", ev)
	}
	if _, err := (sandboxagent.SessionEvent{Sender: "x", Payload: json.RawMessage(`{}`)}).Normalize("s"); !errors.Is(err, sandboxagent.ErrStoreInvalidInput) {
		t.Errorf("bad sender: %v", err)
	}
	if !sandboxagent.SessionEventSenderAgent.Valid() || sandboxagent.SessionEventSender("").Valid() {
		t.Error("SessionEventSender.Valid")
	}
}

func TestMemoryStoreConcurrentMixedUse(t *testing.T) {
	// Readers, writers and evictions at once; meant for -race.
	ctx := context.Background()
	s := sandboxagent.NewMemoryStore(sandboxagent.MemoryStoreOptions{MaxSessions: 8, MaxEventsPerSession: 16})
	done := make(chan struct{})
	for g := range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 200 {
				sid := fmt.Sprintf("s%d", (g+i)%12)
				_ = s.UpdateSession(ctx, sandboxagent.SessionRecord{ID: sid, CreatedAt: int64(i), SessionInit: json.RawMessage(`{}`)})
				if _, err := s.InsertEvent(ctx, sid, storeTestEvent(`{"x":1}`)); err != nil {
					t.Error(err)
					return
				}
				if _, err := s.ListEvents(ctx, sandboxagent.ListEventsRequest{SessionID: sid, Limit: 5}); err != nil {
					t.Error(err)
					return
				}
				if _, err := s.ListSessions(ctx, sandboxagent.ListPageRequest{Limit: 3}); err != nil {
					t.Error(err)
					return
				}
				if _, _, err := s.GetSession(ctx, sid); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for range 8 {
		<-done
	}
}

func BenchmarkMemoryStoreInsertEvent(b *testing.B) {
	storetest.BenchmarkInsertEvent(b, sandboxagent.NewMemoryStore(sandboxagent.MemoryStoreOptions{}))
}

func storeTestEvent(payload string) sandboxagent.SessionEvent {
	return sandboxagent.SessionEvent{ConnectionID: "c", Sender: sandboxagent.SessionEventSenderAgent, Payload: json.RawMessage(payload)}
}

func storeTestIndexes(events []sandboxagent.SessionEvent) []int64 {
	var out []int64
	for _, e := range events {
		out = append(out, e.EventIndex)
	}
	return out
}

func storeTestListedIDs(t *testing.T, s sandboxagent.SessionStore) []string {
	t.Helper()
	page, err := s.ListSessions(context.Background(), sandboxagent.ListPageRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range page.Items {
		ids = append(ids, r.ID)
	}
	return ids
}

func storeTestCheckJSON(t *testing.T, v any, want string) {
	t.Helper()
	got, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("json.Marshal(%T) =\n  %s\nwant\n  %s", v, got, want)
	}
}
