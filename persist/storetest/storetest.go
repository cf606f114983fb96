// Package storetest is the conformance suite for sandboxagent.SessionStore
// implementations. A driver's tests call Run with a constructor that returns
// a fresh, empty store per call:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) sandboxagent.SessionStore {
//			s := mydriver.New(...)
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// Drivers whose stores can share one database should also call
// ConcurrentInsert with two store instances on the same database, and may call
// BenchmarkInsertEvent from a benchmark.
package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	sandboxagent "github.com/sandbox-agent-go/sandbox-agent"
)

// NewStoreFunc returns a new, empty store. It registers its own cleanup.
type NewStoreFunc func(t *testing.T) sandboxagent.SessionStore

// Run runs the whole conformance suite as subtests of t. newStore is called
// once per subtest and must return an empty store isolated from the others.
func Run(t *testing.T, newStore NewStoreFunc) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s sandboxagent.SessionStore)
	}{
		{"GetMissing", testGetMissing},
		{"UpsertOverwrite", testUpsertOverwrite},
		{"DestroyedAt", testDestroyedAt},
		{"JSONFieldsNilVsNull", testJSONFieldsNilVsNull},
		{"ListSessionsOrderAndPaging", testListSessionsOrderAndPaging},
		{"ListSessionsDefaultLimit", testListSessionsDefaultLimit},
		{"BadCursorAndLimit", testBadCursorAndLimit},
		{"EventsOrderAndPaging", testEventsOrderAndPaging},
		{"EventsDefaultLimit", testEventsDefaultLimit},
		{"EventIndexStartsAtOne", testEventIndexStartsAtOne},
		{"ExplicitEventIndex", testExplicitEventIndex},
		{"DuplicateEventID", testDuplicateEventID},
		{"EventsWithoutSessionRecord", testEventsWithoutSessionRecord},
		{"InvalidInput", testInvalidInput},
		{"PayloadRoundTrip", testPayloadRoundTrip},
		{"ReturnsCopies", testReturnsCopies},
		{"ContextCanceled", testContextCanceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
	t.Run("ConcurrentInsert", func(t *testing.T) {
		ConcurrentInsert(t, newStore(t))
	})
}

// ConcurrentInsert inserts events into one session from many goroutines,
// spread over the given stores (which must share one database), and checks
// that the assigned indexes are exactly 1..n. It also checks that writers on
// different sessions keep separate sequences.
func ConcurrentInsert(t *testing.T, stores ...sandboxagent.SessionStore) {
	t.Helper()
	if len(stores) == 0 {
		t.Fatal("ConcurrentInsert needs at least one store")
	}
	const (
		workers   = 16
		perWorker = 20
		sessions  = 2
	)
	ctx := testContext(t)
	prefix := "conc-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	var wg sync.WaitGroup
	errs := make(chan error, workers*sessions)
	for sess := range sessions {
		sid := fmt.Sprintf("%s-%d", prefix, sess)
		for w := range workers {
			store := stores[w%len(stores)]
			wg.Go(func() {
				for i := range perWorker {
					payload := fmt.Sprintf(`{"worker":%d,"i":%d}`, w, i)
					ev, err := store.InsertEvent(ctx, sid, newEvent(payload))
					if err != nil {
						errs <- fmt.Errorf("worker %d insert %d: %w", w, i, err)
						return
					}
					if ev.EventIndex < 1 {
						errs <- fmt.Errorf("worker %d insert %d: returned index %d", w, i, ev.EventIndex)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	for sess := range sessions {
		sid := fmt.Sprintf("%s-%d", prefix, sess)
		for i, store := range stores {
			events := listAllEvents(t, store, sid, 37)
			if len(events) != workers*perWorker {
				t.Fatalf("store %d session %s: %d events, want %d", i, sid, len(events), workers*perWorker)
			}
			for j, ev := range events {
				if ev.EventIndex != int64(j+1) {
					t.Fatalf("store %d session %s: event %d has index %d, want %d (indexes must be unique and contiguous)", i, sid, j, ev.EventIndex, j+1)
				}
			}
		}
	}
}

// BenchmarkInsertEvent measures InsertEvent with store-assigned indexes:
// "single" appends to one session from one goroutine, "parallel100" appends
// from b.RunParallel goroutines spread over 100 sessions. Both report
// events/s.
func BenchmarkInsertEvent(b *testing.B, store sandboxagent.SessionStore) {
	payload := json.RawMessage(`{"jsonrpc":"2.0","method":"session/update","params":{"sessionId":"agent-1","update":{"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":"hello from the benchmark"}}}}`)
	prefix := "bench-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	ctx := context.Background()
	b.Run("single", func(b *testing.B) {
		sid := prefix + "-single"
		b.ReportAllocs()
		start := time.Now()
		for b.Loop() {
			if _, err := store.InsertEvent(ctx, sid, sandboxagent.SessionEvent{ConnectionID: "conn", Sender: sandboxagent.SessionEventSenderAgent, Payload: payload}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
	})
	b.Run("parallel100", func(b *testing.B) {
		var mu sync.Mutex
		next := 0
		// 100 concurrent writers (whatever GOMAXPROCS), one session each.
		b.SetParallelism(max(1, 100/runtime.GOMAXPROCS(0)))
		b.ReportAllocs()
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			mu.Lock()
			g := next
			next++
			mu.Unlock()
			sid := fmt.Sprintf("%s-p%d", prefix, g%100)
			for pb.Next() {
				if _, err := store.InsertEvent(ctx, sid, sandboxagent.SessionEvent{ConnectionID: "conn", Sender: sandboxagent.SessionEventSenderClient, Payload: payload}); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
	})
}

func testGetMissing(t *testing.T, s sandboxagent.SessionStore) {
	ctx := testContext(t)
	rec, ok, err := s.GetSession(ctx, "missing")
	if err != nil || ok {
		t.Fatalf("GetSession(missing) = %+v, %v, %v; want not found and no error", rec, ok, err)
	}
	if !cmp.Equal(rec, sandboxagent.SessionRecord{}) {
		t.Errorf("GetSession(missing) returned a non-zero record %+v", rec)
	}
	page, err := s.ListSessions(ctx, sandboxagent.ListPageRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 0 || page.NextCursor != "" {
		t.Errorf("ListSessions on an empty store = %+v", page)
	}
	if page.Items == nil {
		t.Error("ListSessions returned nil Items; want an empty slice")
	}
	events, err := s.ListEvents(ctx, sandboxagent.ListEventsRequest{SessionID: "missing"})
	if err != nil {
		t.Fatal(err)
	}
	if len(events.Items) != 0 || events.NextCursor != "" || events.Items == nil {
		t.Errorf("ListEvents(missing) = %#v; want empty non-nil Items", events)
	}
}

func testUpsertOverwrite(t *testing.T, s sandboxagent.SessionStore) {
	ctx := testContext(t)
	first := sandboxagent.SessionRecord{
		ID:               "s1",
		Agent:            "claude",
		AgentSessionID:   "agent-session-1",
		LastConnectionID: "conn-1",
		CreatedAt:        1_700_000_000_123,
		SandboxID:        "e2b/abc",
		SessionInit:      json.RawMessage(`{"cwd":"/work","mcpServers":[]}`),
		ConfigOptions:    json.RawMessage(`[{"id":"model","currentValue":"a","options":[{"value":"a"},{"value":"b"}]}]`),
		Modes:            json.RawMessage(`{"currentModeId":"normal","availableModes":[{"id":"normal","name":"Normal"}]}`),
	}
	mustUpdate(t, s, first)
	mustGet(t, s, first)

	destroyed := int64(1_700_000_999_000)
	second := sandboxagent.SessionRecord{
		ID:               "s1",
		Agent:            "codex",
		AgentSessionID:   "agent-session-2",
		LastConnectionID: "conn-2",
		CreatedAt:        1_700_000_000_456,
		DestroyedAt:      &destroyed,
		SessionInit:      json.RawMessage(`{"cwd":"/other","mcpServers":[{"name":"x"}]}`),
	}
	mustUpdate(t, s, second)
	mustGet(t, s, second)

	page, err := s.ListSessions(ctx, sandboxagent.ListPageRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]sandboxagent.SessionRecord{second}, page.Items, jsonComparer); diff != "" {
		t.Errorf("ListSessions after overwrite (-want +got):\n%s", diff)
	}
}

func testDestroyedAt(t *testing.T, s sandboxagent.SessionStore) {
	zero, set := int64(0), int64(1_700_000_000_999)
	recs := []sandboxagent.SessionRecord{
		{ID: "nil", Agent: "a", CreatedAt: 1},
		{ID: "zero", Agent: "a", CreatedAt: 2, DestroyedAt: &zero},
		{ID: "set", Agent: "a", CreatedAt: 3, DestroyedAt: &set},
	}
	for _, r := range recs {
		mustUpdate(t, s, r)
	}
	for _, r := range recs {
		mustGet(t, s, r)
	}
	// Clearing DestroyedAt on overwrite must clear it in the store.
	mustUpdate(t, s, sandboxagent.SessionRecord{ID: "set", Agent: "a", CreatedAt: 3})
	mustGet(t, s, sandboxagent.SessionRecord{ID: "set", Agent: "a", CreatedAt: 3})
}

func testJSONFieldsNilVsNull(t *testing.T, s sandboxagent.SessionStore) {
	null := json.RawMessage("null")
	recs := []sandboxagent.SessionRecord{
		{ID: "absent", Agent: "a", CreatedAt: 1},
		{ID: "null", Agent: "a", CreatedAt: 2, SessionInit: null, ConfigOptions: null, Modes: null},
		{ID: "empty", Agent: "a", CreatedAt: 3, SessionInit: json.RawMessage(`{}`), ConfigOptions: json.RawMessage(`[]`), Modes: json.RawMessage(`{}`)},
	}
	for _, r := range recs {
		mustUpdate(t, s, r)
	}
	for _, r := range recs {
		got := mustGet(t, s, r)
		for name, f := range map[string][2]json.RawMessage{
			"SessionInit":   {r.SessionInit, got.SessionInit},
			"ConfigOptions": {r.ConfigOptions, got.ConfigOptions},
			"Modes":         {r.Modes, got.Modes},
		} {
			if (f[0] == nil) != (f[1] == nil) {
				t.Errorf("session %s: %s = %q, want %q (nil and JSON null must stay apart)", r.ID, name, f[1], f[0])
			}
		}
	}
}

func testListSessionsOrderAndPaging(t *testing.T, s sandboxagent.SessionStore) {
	ctx := testContext(t)
	// Inserted out of order; two pairs share a CreatedAt and are ordered by
	// ID (byte-wise: "B" < "a").
	recs := []sandboxagent.SessionRecord{
		{ID: "f", Agent: "x", CreatedAt: 300},
		{ID: "a", Agent: "x", CreatedAt: 200},
		{ID: "c", Agent: "x", CreatedAt: 100},
		{ID: "B", Agent: "x", CreatedAt: 200},
		{ID: "e", Agent: "x", CreatedAt: 50},
		{ID: "d", Agent: "x", CreatedAt: 100},
	}
	for _, r := range recs {
		mustUpdate(t, s, r)
	}
	wantIDs := []string{"e", "c", "d", "B", "a", "f"}

	p1, err := s.ListSessions(ctx, sandboxagent.ListPageRequest{Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	if got := sessionIDs(p1.Items); !slices.Equal(got, wantIDs[:3]) || p1.NextCursor != "3" {
		t.Fatalf("page 1 = %v cursor %q; want %v cursor \"3\"", got, p1.NextCursor, wantIDs[:3])
	}
	p2, err := s.ListSessions(ctx, sandboxagent.ListPageRequest{Cursor: p1.NextCursor, Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	if got := sessionIDs(p2.Items); !slices.Equal(got, wantIDs[3:]) || p2.NextCursor != "" {
		t.Fatalf("page 2 = %v cursor %q; want %v and no cursor", got, p2.NextCursor, wantIDs[3:])
	}
	p3, err := s.ListSessions(ctx, sandboxagent.ListPageRequest{Cursor: "2", Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if got := sessionIDs(p3.Items); !slices.Equal(got, wantIDs[2:4]) || p3.NextCursor != "4" {
		t.Fatalf("cursor 2 limit 2 = %v cursor %q; want %v cursor \"4\"", got, p3.NextCursor, wantIDs[2:4])
	}
	p4, err := s.ListSessions(ctx, sandboxagent.ListPageRequest{Cursor: "6", Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(p4.Items) != 0 || p4.NextCursor != "" || p4.Items == nil {
		t.Fatalf("cursor at end = %#v; want empty page without cursor", p4)
	}
}

func testListSessionsDefaultLimit(t *testing.T, s sandboxagent.SessionStore) {
	ctx := testContext(t)
	const n = sandboxagent.DefaultStoreListLimit + 1
	for i := range n {
		mustUpdate(t, s, sandboxagent.SessionRecord{ID: fmt.Sprintf("s%03d", i), Agent: "x", CreatedAt: int64(i)})
	}
	p1, err := s.ListSessions(ctx, sandboxagent.ListPageRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p1.Items) != sandboxagent.DefaultStoreListLimit || p1.NextCursor != strconv.Itoa(sandboxagent.DefaultStoreListLimit) {
		t.Fatalf("default page: %d items cursor %q; want %d and %q", len(p1.Items), p1.NextCursor, sandboxagent.DefaultStoreListLimit, strconv.Itoa(sandboxagent.DefaultStoreListLimit))
	}
	p2, err := s.ListSessions(ctx, sandboxagent.ListPageRequest{Cursor: p1.NextCursor})
	if err != nil {
		t.Fatal(err)
	}
	if got := sessionIDs(p2.Items); !slices.Equal(got, []string{"s100"}) || p2.NextCursor != "" {
		t.Fatalf("second default page = %v cursor %q", got, p2.NextCursor)
	}
}

func testBadCursorAndLimit(t *testing.T, s sandboxagent.SessionStore) {
	ctx := testContext(t)
	for i := range 4 {
		mustUpdate(t, s, sandboxagent.SessionRecord{ID: fmt.Sprintf("s%d", i), Agent: "x", CreatedAt: int64(i)})
	}
	all := []string{"s0", "s1", "s2", "s3"}
	for _, c := range []struct {
		req        sandboxagent.ListPageRequest
		want       []string
		wantCursor string
	}{
		{sandboxagent.ListPageRequest{Cursor: "abc", Limit: 2}, all[:2], "2"},
		{sandboxagent.ListPageRequest{Cursor: "-5", Limit: 2}, all[:2], "2"},
		{sandboxagent.ListPageRequest{Cursor: "", Limit: 2}, all[:2], "2"},
		{sandboxagent.ListPageRequest{Cursor: "1.5", Limit: 2}, all[1:3], "3"},
		{sandboxagent.ListPageRequest{Cursor: " 2abc", Limit: 1}, all[2:3], "3"},
		{sandboxagent.ListPageRequest{Cursor: "+1", Limit: 1}, all[1:2], "2"},
		{sandboxagent.ListPageRequest{Cursor: "-0", Limit: 1}, all[:1], "1"},
		{sandboxagent.ListPageRequest{Cursor: "1", Limit: 0}, all[1:], ""},
		{sandboxagent.ListPageRequest{Cursor: "1", Limit: -3}, all[1:], ""},
		{sandboxagent.ListPageRequest{Cursor: "3", Limit: 1}, all[3:], ""},
		{sandboxagent.ListPageRequest{Cursor: "1000"}, []string{}, ""},
		{sandboxagent.ListPageRequest{Cursor: "99999999999999999999999"}, []string{}, ""},
	} {
		page, err := s.ListSessions(ctx, c.req)
		if err != nil {
			t.Fatalf("%+v: %v", c.req, err)
		}
		if got := sessionIDs(page.Items); !slices.Equal(got, c.want) || page.NextCursor != c.wantCursor {
			t.Errorf("ListSessions(%+v) = %v cursor %q; want %v cursor %q", c.req, got, page.NextCursor, c.want, c.wantCursor)
		}
	}
}

func testEventsOrderAndPaging(t *testing.T, s sandboxagent.SessionStore) {
	ctx := testContext(t)
	var inserted []sandboxagent.SessionEvent
	for i := range 6 {
		inserted = append(inserted, mustInsert(t, s, "sess", newEvent(fmt.Sprintf(`{"n":%d}`, i))))
		// Interleave another session's events; they must not show up.
		mustInsert(t, s, "other", newEvent(`{"other":true}`))
	}
	p1, err := s.ListEvents(ctx, sandboxagent.ListEventsRequest{SessionID: "sess", Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	if got := eventIndexes(p1.Items); !slices.Equal(got, []int64{1, 2, 3}) || p1.NextCursor != "3" {
		t.Fatalf("page 1 = %v cursor %q; want [1 2 3] cursor \"3\"", got, p1.NextCursor)
	}
	p2, err := s.ListEvents(ctx, sandboxagent.ListEventsRequest{SessionID: "sess", Cursor: p1.NextCursor, Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	if got := eventIndexes(p2.Items); !slices.Equal(got, []int64{4, 5, 6}) || p2.NextCursor != "" {
		t.Fatalf("page 2 = %v cursor %q; want [4 5 6] and no cursor", got, p2.NextCursor)
	}
	if diff := cmp.Diff(inserted, append(p1.Items, p2.Items...), jsonComparer); diff != "" {
		t.Errorf("listed events differ from the ones InsertEvent returned (-inserted +listed):\n%s", diff)
	}

	// Explicit indexes inserted out of order are listed in index order.
	for _, idx := range []int64{30, 10, 20} {
		mustInsert(t, s, "sparse", sandboxagent.SessionEvent{EventIndex: idx, ConnectionID: "c", Sender: sandboxagent.SessionEventSenderAgent, Payload: json.RawMessage(`{}`)})
	}
	page, err := s.ListEvents(ctx, sandboxagent.ListEventsRequest{SessionID: "sparse"})
	if err != nil {
		t.Fatal(err)
	}
	if got := eventIndexes(page.Items); !slices.Equal(got, []int64{10, 20, 30}) {
		t.Errorf("sparse indexes listed as %v; want [10 20 30]", got)
	}
}

func testEventsDefaultLimit(t *testing.T, s sandboxagent.SessionStore) {
	ctx := testContext(t)
	const n = sandboxagent.DefaultStoreListLimit + 1
	for range n {
		mustInsert(t, s, "sess", newEvent(`{}`))
	}
	p1, err := s.ListEvents(ctx, sandboxagent.ListEventsRequest{SessionID: "sess", Cursor: "bogus", Limit: -1})
	if err != nil {
		t.Fatal(err)
	}
	if len(p1.Items) != sandboxagent.DefaultStoreListLimit || p1.NextCursor != "100" {
		t.Fatalf("default page: %d items cursor %q; want 100 and \"100\"", len(p1.Items), p1.NextCursor)
	}
	p2, err := s.ListEvents(ctx, sandboxagent.ListEventsRequest{SessionID: "sess", Cursor: p1.NextCursor})
	if err != nil {
		t.Fatal(err)
	}
	if got := eventIndexes(p2.Items); !slices.Equal(got, []int64{n}) || p2.NextCursor != "" {
		t.Fatalf("second page = %v cursor %q; want [%d]", got, p2.NextCursor, n)
	}
}

func testEventIndexStartsAtOne(t *testing.T, s sandboxagent.SessionStore) {
	before := time.Now().UnixMilli()
	ev := mustInsert(t, s, "sess", sandboxagent.SessionEvent{ConnectionID: "conn-1", Sender: sandboxagent.SessionEventSenderClient, Payload: json.RawMessage(`{"jsonrpc":"2.0","id":1,"method":"session/new"}`)})
	after := time.Now().UnixMilli()
	if ev.EventIndex != 1 {
		t.Errorf("first event index = %d, want 1", ev.EventIndex)
	}
	if ev.ID == "" {
		t.Error("InsertEvent did not assign an ID")
	}
	if ev.SessionID != "sess" {
		t.Errorf("SessionID = %q, want sess", ev.SessionID)
	}
	if ev.CreatedAt < before || ev.CreatedAt > after {
		t.Errorf("CreatedAt = %d, want between %d and %d", ev.CreatedAt, before, after)
	}
	ev2 := mustInsert(t, s, "sess", sandboxagent.SessionEvent{ID: "given-id", CreatedAt: 42, SessionID: "sess", ConnectionID: "conn-1", Sender: sandboxagent.SessionEventSenderAgent, Payload: json.RawMessage(`{"jsonrpc":"2.0","id":1,"result":{}}`)})
	if ev2.EventIndex != 2 || ev2.ID != "given-id" || ev2.CreatedAt != 42 {
		t.Errorf("second event = %+v; want index 2, the given ID and CreatedAt", ev2)
	}
	if ev.ID == ev2.ID {
		t.Error("two events share an ID")
	}
	other := mustInsert(t, s, "other", newEvent(`{}`))
	if other.EventIndex != 1 {
		t.Errorf("first event of another session has index %d, want 1", other.EventIndex)
	}
	got := listAllEvents(t, s, "sess", 0)
	if diff := cmp.Diff([]sandboxagent.SessionEvent{ev, ev2}, got, jsonComparer); diff != "" {
		t.Errorf("stored events (-want +got):\n%s", diff)
	}
}

func testExplicitEventIndex(t *testing.T, s sandboxagent.SessionStore) {
	ev := mustInsert(t, s, "sess", sandboxagent.SessionEvent{EventIndex: 10, ConnectionID: "c", Sender: sandboxagent.SessionEventSenderAgent, Payload: json.RawMessage(`{}`)})
	if ev.EventIndex != 10 {
		t.Fatalf("explicit index stored as %d, want 10", ev.EventIndex)
	}
	next := mustInsert(t, s, "sess", newEvent(`{}`))
	if next.EventIndex != 11 {
		t.Errorf("index after explicit 10 = %d, want 11", next.EventIndex)
	}
	low := mustInsert(t, s, "sess", sandboxagent.SessionEvent{EventIndex: 3, ConnectionID: "c", Sender: sandboxagent.SessionEventSenderAgent, Payload: json.RawMessage(`{}`)})
	if low.EventIndex != 3 {
		t.Errorf("explicit lower index stored as %d, want 3", low.EventIndex)
	}
	if after := mustInsert(t, s, "sess", newEvent(`{}`)); after.EventIndex != 12 {
		t.Errorf("index after a lower explicit one = %d, want 12", after.EventIndex)
	}
	ctx := testContext(t)
	_, err := s.InsertEvent(ctx, "sess", sandboxagent.SessionEvent{EventIndex: 10, ConnectionID: "c", Sender: sandboxagent.SessionEventSenderAgent, Payload: json.RawMessage(`{}`)})
	if !errors.Is(err, sandboxagent.ErrStoreConflict) {
		t.Errorf("duplicate explicit index: err = %v, want ErrStoreConflict", err)
	}
	// The same index in another session is fine.
	if other := mustInsert(t, s, "other", sandboxagent.SessionEvent{EventIndex: 10, ConnectionID: "c", Sender: sandboxagent.SessionEventSenderAgent, Payload: json.RawMessage(`{}`)}); other.EventIndex != 10 {
		t.Errorf("index 10 in another session stored as %d", other.EventIndex)
	}
	if got := eventIndexes(listAllEvents(t, s, "sess", 0)); !slices.Equal(got, []int64{3, 10, 11, 12}) {
		t.Errorf("indexes = %v, want [3 10 11 12]", got)
	}
}

func testDuplicateEventID(t *testing.T, s sandboxagent.SessionStore) {
	ctx := testContext(t)
	first := mustInsert(t, s, "sess", sandboxagent.SessionEvent{ID: "ev-1", ConnectionID: "c", Sender: sandboxagent.SessionEventSenderClient, Payload: json.RawMessage(`{"a":1}`)})
	again, err := s.InsertEvent(ctx, "sess", sandboxagent.SessionEvent{ID: "ev-1", ConnectionID: "c2", Sender: sandboxagent.SessionEventSenderAgent, Payload: json.RawMessage(`{"b":2}`)})
	if err != nil {
		t.Fatalf("re-inserting an event ID into the same session: %v (want the stored event)", err)
	}
	if diff := cmp.Diff(first, again, jsonComparer); diff != "" {
		t.Errorf("re-insert returned a different event (-first +again):\n%s", diff)
	}
	if _, err := s.InsertEvent(ctx, "elsewhere", sandboxagent.SessionEvent{ID: "ev-1", ConnectionID: "c", Sender: sandboxagent.SessionEventSenderClient, Payload: json.RawMessage(`{}`)}); !errors.Is(err, sandboxagent.ErrStoreConflict) {
		t.Errorf("event ID of another session: err = %v, want ErrStoreConflict", err)
	}
	if got := listAllEvents(t, s, "sess", 0); len(got) != 1 {
		t.Errorf("%d events stored, want 1", len(got))
	}
	if got := listAllEvents(t, s, "elsewhere", 0); len(got) != 0 {
		t.Errorf("%d events stored for the conflicting session, want 0", len(got))
	}
	if next := mustInsert(t, s, "sess", newEvent(`{}`)); next.EventIndex != 2 {
		t.Errorf("index after idempotent re-insert = %d, want 2", next.EventIndex)
	}
}

func testEventsWithoutSessionRecord(t *testing.T, s sandboxagent.SessionStore) {
	ev := mustInsert(t, s, "no-record", newEvent(`{"x":1}`))
	if ev.EventIndex != 1 {
		t.Errorf("index = %d, want 1", ev.EventIndex)
	}
	mustUpdate(t, s, sandboxagent.SessionRecord{ID: "no-record", Agent: "a", CreatedAt: 5})
	if got := listAllEvents(t, s, "no-record", 0); len(got) != 1 {
		t.Errorf("events after creating the record: %d, want 1", len(got))
	}
	if next := mustInsert(t, s, "no-record", newEvent(`{}`)); next.EventIndex != 2 {
		t.Errorf("index = %d, want 2", next.EventIndex)
	}
}

func testInvalidInput(t *testing.T, s sandboxagent.SessionStore) {
	ctx := testContext(t)
	good := newEvent(`{}`)
	for name, c := range map[string]struct {
		sid string
		ev  sandboxagent.SessionEvent
	}{
		"empty session id":   {"", good},
		"mismatched session": {"a", sandboxagent.SessionEvent{SessionID: "b", ConnectionID: "c", Sender: sandboxagent.SessionEventSenderAgent, Payload: json.RawMessage(`{}`)}},
		"unknown sender":     {"a", sandboxagent.SessionEvent{ConnectionID: "c", Sender: "server", Payload: json.RawMessage(`{}`)}},
		"empty sender":       {"a", sandboxagent.SessionEvent{ConnectionID: "c", Payload: json.RawMessage(`{}`)}},
		"negative index":     {"a", sandboxagent.SessionEvent{EventIndex: -1, ConnectionID: "c", Sender: sandboxagent.SessionEventSenderAgent, Payload: json.RawMessage(`{}`)}},
		"invalid payload":    {"a", sandboxagent.SessionEvent{ConnectionID: "c", Sender: sandboxagent.SessionEventSenderAgent, Payload: json.RawMessage(`{"a":`)}},
		"missing payload":    {"a", sandboxagent.SessionEvent{ConnectionID: "c", Sender: sandboxagent.SessionEventSenderAgent}},
	} {
		if _, err := s.InsertEvent(ctx, c.sid, c.ev); !errors.Is(err, sandboxagent.ErrStoreInvalidInput) {
			t.Errorf("InsertEvent with %s: err = %v, want ErrStoreInvalidInput", name, err)
		}
	}
	for name, rec := range map[string]sandboxagent.SessionRecord{
		"empty id":              {Agent: "a", CreatedAt: 1},
		"invalid sessionInit":   {ID: "x", SessionInit: json.RawMessage(`{`)},
		"invalid configOptions": {ID: "x", ConfigOptions: json.RawMessage(`nope`)},
		"invalid modes":         {ID: "x", Modes: json.RawMessage(`{"a":1}}`)},
	} {
		if err := s.UpdateSession(ctx, rec); !errors.Is(err, sandboxagent.ErrStoreInvalidInput) {
			t.Errorf("UpdateSession with %s: err = %v, want ErrStoreInvalidInput", name, err)
		}
	}
	if _, ok, err := s.GetSession(ctx, "x"); err != nil || ok {
		t.Errorf("an invalid record was stored: ok=%v err=%v", ok, err)
	}
	if got := listAllEvents(t, s, "a", 0); len(got) != 0 {
		t.Errorf("%d invalid events were stored", len(got))
	}
}

// payloads are JSON documents whose meaning must survive a round trip.
var payloads = []string{
	`{"jsonrpc":"2.0","id":7,"method":"session/prompt","params":{"sessionId":"abc","prompt":[{"type":"text","text":"hi"}]}}`,
	`{"jsonrpc":"2.0","id":"str-id","result":{"stopReason":"end_turn","_meta":null}}`,
	`{"unicode":"héllo wörld ✓ 😀 日本語","escapes":"quote \" backslash \\ tab \t newline \n","u2028":"\u2028\u2029","html":"<a href=\"x\">&amp;</a>"}`,
	`{"big":9007199254740993,"neg":-12345678901234567890,"float":3.141592653589793,"exp":1e-7,"zero":0,"nested":{"a":[1,[2,[3,{"b":[]}]]],"e":{}}}`,
	`{"bools":[true,false,null],"empty":"","spaces":"  leading and trailing  "}`,
	`  {"z":1,"a":2,"m":{"y":true,"b":false}}  `,
	`[1,"two",{"three":3}]`,
	`"just a string"`,
	`12.5`,
	`null`,
}

func testPayloadRoundTrip(t *testing.T, s sandboxagent.SessionStore) {
	for i, p := range payloads {
		ev := mustInsert(t, s, "sess", newEvent(p))
		if !jsonEqual(ev.Payload, json.RawMessage(p)) {
			t.Errorf("payload %d returned by InsertEvent as %s, want %s", i, ev.Payload, p)
		}
	}
	got := listAllEvents(t, s, "sess", 4)
	if len(got) != len(payloads) {
		t.Fatalf("%d events listed, want %d", len(got), len(payloads))
	}
	for i, ev := range got {
		if !jsonEqual(ev.Payload, json.RawMessage(payloads[i])) {
			t.Errorf("payload %d listed as %s, want the same JSON as %s", i, ev.Payload, payloads[i])
		}
		if ev.Sender != sandboxagent.SessionEventSenderAgent || ev.ConnectionID != "conn" {
			t.Errorf("event %d: sender %q connection %q", i, ev.Sender, ev.ConnectionID)
		}
	}
	// The same documents as session JSON fields.
	for i, p := range payloads {
		rec := sandboxagent.SessionRecord{ID: fmt.Sprintf("r%d", i), Agent: "a", CreatedAt: int64(i), SessionInit: json.RawMessage(p), ConfigOptions: json.RawMessage(p), Modes: json.RawMessage(p)}
		mustUpdate(t, s, rec)
		mustGet(t, s, rec)
	}
}

func testReturnsCopies(t *testing.T, s sandboxagent.SessionStore) {
	ctx := testContext(t)
	destroyed := int64(9)
	rec := sandboxagent.SessionRecord{ID: "s", Agent: "a", CreatedAt: 1, DestroyedAt: &destroyed, SessionInit: json.RawMessage(`{"cwd":"/a"}`)}
	mustUpdate(t, s, rec)
	// Mutating what was passed in must not reach the store.
	rec.SessionInit[2] = 'X'
	*rec.DestroyedAt = 10
	d := int64(9)
	got := mustGet(t, s, sandboxagent.SessionRecord{ID: "s", Agent: "a", CreatedAt: 1, DestroyedAt: &d, SessionInit: json.RawMessage(`{"cwd":"/a"}`)})
	// ...nor mutating what came out.
	*got.DestroyedAt = 11
	got.SessionInit[2] = 'Y'
	mustGet(t, s, sandboxagent.SessionRecord{ID: "s", Agent: "a", CreatedAt: 1, DestroyedAt: &d, SessionInit: json.RawMessage(`{"cwd":"/a"}`)})
	page, err := s.ListSessions(ctx, sandboxagent.ListPageRequest{})
	if err != nil {
		t.Fatal(err)
	}
	page.Items[0].SessionInit[2] = 'Z'
	mustGet(t, s, sandboxagent.SessionRecord{ID: "s", Agent: "a", CreatedAt: 1, DestroyedAt: &d, SessionInit: json.RawMessage(`{"cwd":"/a"}`)})

	in := newEvent(`{"k":"v"}`)
	out := mustInsert(t, s, "s", in)
	in.Payload[2] = 'X'
	out.Payload[2] = 'Y'
	events := listAllEvents(t, s, "s", 0)
	events[0].Payload[2] = 'Z'
	if got := listAllEvents(t, s, "s", 0); !jsonEqual(got[0].Payload, json.RawMessage(`{"k":"v"}`)) {
		t.Errorf("stored payload changed through a caller's slice: %s", got[0].Payload)
	}
}

func testContextCanceled(t *testing.T, s sandboxagent.SessionStore) {
	mustUpdate(t, s, sandboxagent.SessionRecord{ID: "s", Agent: "a", CreatedAt: 1})
	mustInsert(t, s, "s", newEvent(`{}`))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	check := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a canceled context: err = %v, want context.Canceled", op, err)
		}
	}
	_, _, err := s.GetSession(ctx, "s")
	check("GetSession", err)
	_, err = s.ListSessions(ctx, sandboxagent.ListPageRequest{})
	check("ListSessions", err)
	check("UpdateSession", s.UpdateSession(ctx, sandboxagent.SessionRecord{ID: "s2", Agent: "a", CreatedAt: 2}))
	_, err = s.ListEvents(ctx, sandboxagent.ListEventsRequest{SessionID: "s"})
	check("ListEvents", err)
	_, err = s.InsertEvent(ctx, "s", newEvent(`{}`))
	check("InsertEvent", err)

	// Nothing was written, and the store still works.
	if _, ok, err := s.GetSession(testContext(t), "s2"); err != nil || ok {
		t.Errorf("canceled UpdateSession wrote a record (ok=%v err=%v)", ok, err)
	}
	if got := listAllEvents(t, s, "s", 0); len(got) != 1 {
		t.Errorf("%d events after a canceled insert, want 1", len(got))
	}
}

// --- helpers ---

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func newEvent(payload string) sandboxagent.SessionEvent {
	return sandboxagent.SessionEvent{ConnectionID: "conn", Sender: sandboxagent.SessionEventSenderAgent, Payload: json.RawMessage(payload)}
}

func mustUpdate(t *testing.T, s sandboxagent.SessionStore, rec sandboxagent.SessionRecord) {
	t.Helper()
	if err := s.UpdateSession(testContext(t), rec); err != nil {
		t.Fatalf("UpdateSession(%s): %v", rec.ID, err)
	}
}

// mustGet reads want.ID and checks it equals want.
func mustGet(t *testing.T, s sandboxagent.SessionStore, want sandboxagent.SessionRecord) sandboxagent.SessionRecord {
	t.Helper()
	got, ok, err := s.GetSession(testContext(t), want.ID)
	if err != nil || !ok {
		t.Fatalf("GetSession(%s) = ok %v, err %v", want.ID, ok, err)
	}
	if diff := cmp.Diff(want, got, jsonComparer); diff != "" {
		t.Errorf("GetSession(%s) (-want +got):\n%s", want.ID, diff)
	}
	return got
}

func mustInsert(t *testing.T, s sandboxagent.SessionStore, sid string, ev sandboxagent.SessionEvent) sandboxagent.SessionEvent {
	t.Helper()
	got, err := s.InsertEvent(testContext(t), sid, ev)
	if err != nil {
		t.Fatalf("InsertEvent(%s): %v", sid, err)
	}
	return got
}

// listAllEvents pages through a session's events with the given page size
// (0: the default) and checks the cursors on the way.
func listAllEvents(t *testing.T, s sandboxagent.SessionStore, sid string, limit int) []sandboxagent.SessionEvent {
	t.Helper()
	var all []sandboxagent.SessionEvent
	cursor := ""
	for {
		page, err := s.ListEvents(testContext(t), sandboxagent.ListEventsRequest{SessionID: sid, Cursor: cursor, Limit: limit})
		if err != nil {
			t.Fatalf("ListEvents(%s, %q): %v", sid, cursor, err)
		}
		all = append(all, page.Items...)
		if page.NextCursor == "" {
			return all
		}
		if page.NextCursor != strconv.Itoa(len(all)) {
			t.Fatalf("ListEvents(%s) cursor %q after %d events", sid, page.NextCursor, len(all))
		}
		cursor = page.NextCursor
	}
}

func sessionIDs(recs []sandboxagent.SessionRecord) []string {
	ids := []string{}
	for _, r := range recs {
		ids = append(ids, r.ID)
	}
	return ids
}

func eventIndexes(events []sandboxagent.SessionEvent) []int64 {
	idx := []int64{}
	for _, e := range events {
		idx = append(idx, e.EventIndex)
	}
	return idx
}

// jsonComparer compares json.RawMessage values by JSON meaning, keeping nil
// (absent) apart from any document, including null.
var jsonComparer = cmp.Comparer(func(a, b json.RawMessage) bool {
	if (len(a) == 0) != (len(b) == 0) {
		return false
	}
	return len(a) == 0 || jsonEqual(a, b)
})

// jsonEqual reports whether a and b are the same JSON value: object key order
// and whitespace are ignored, numbers compare by exact decimal value, strings
// by their decoded text.
func jsonEqual(a, b json.RawMessage) bool {
	va, err := decodeJSON(a)
	if err != nil {
		return false
	}
	vb, err := decodeJSON(b)
	if err != nil {
		return false
	}
	return cmp.Equal(va, vb, cmp.Comparer(func(x, y json.Number) bool {
		rx, okx := new(big.Rat).SetString(string(x))
		ry, oky := new(big.Rat).SetString(string(y))
		return okx && oky && rx.Cmp(ry) == 0
	}))
}

func decodeJSON(m json.RawMessage) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(m))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}
