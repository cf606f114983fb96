package sessionstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/goleak"

	sandboxagent "github.com/sandbox-agent-go/sandbox-agent"
	"github.com/sandbox-agent-go/sandbox-agent/multiplayer/backend"
	"github.com/sandbox-agent-go/sandbox-agent/multiplayer/backend/memory"
	natsbackend "github.com/sandbox-agent-go/sandbox-agent/multiplayer/backend/nats"
	"github.com/sandbox-agent-go/sandbox-agent/multiplayer/backend/sqlite"
	"github.com/sandbox-agent-go/sandbox-agent/multiplayer/sessionstore"
	"github.com/sandbox-agent-go/sandbox-agent/persist/storetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// driver opens one Backend for a whole test; every subtest claims its own
// actor on it.
type driver struct {
	name string
	open func(t *testing.T) backend.Backend
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

var drivers = []driver{
	{"memory", func(t *testing.T) backend.Backend {
		b := memory.New()
		t.Cleanup(func() { _ = b.Close() })
		return b
	}},
	{"sqlite", func(t *testing.T) backend.Backend {
		b, err := sqlite.Open(testContext(t), sqlite.Options{Dir: t.TempDir(), Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return b
	}},
	{"nats", openNATS},
}

// openNATS runs an embedded JetStream server for the test and opens one node
// on it. The long lease keeps a loaded machine from fencing mid-test.
func openNATS(t *testing.T) backend.Backend {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	b, err := natsbackend.Open(testContext(t), natsbackend.Options{URLs: []string{s.ClientURL()}, LeaseTTL: 30 * time.Second, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

var actors atomic.Int64

// claim creates a fresh actor on b and owns it.
func claim(t *testing.T, b backend.Backend) backend.Owner {
	t.Helper()
	ctx := testContext(t)
	a, _, err := b.GetOrCreate(ctx, "sessions", []string{fmt.Sprint(actors.Add(1))}, nil)
	if err != nil {
		t.Fatal(err)
	}
	o, err := b.Claim(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = o.Release(context.Background()) })
	return o
}

func TestConformance(t *testing.T) {
	for _, d := range drivers {
		t.Run(d.name, func(t *testing.T) {
			b := d.open(t)
			storetest.Run(t, func(t *testing.T) sandboxagent.SessionStore {
				return sessionstore.New(claim(t, b))
			})
		})
	}
}

func event(payload string) sandboxagent.SessionEvent {
	return sandboxagent.SessionEvent{ConnectionID: "conn", Sender: sandboxagent.SessionEventSenderAgent, Payload: json.RawMessage(payload)}
}

func insert(t *testing.T, s sandboxagent.SessionStore, sid string, ev sandboxagent.SessionEvent) sandboxagent.SessionEvent {
	t.Helper()
	got, err := s.InsertEvent(testContext(t), sid, ev)
	if err != nil {
		t.Fatalf("InsertEvent(%s): %v", sid, err)
	}
	return got
}

func indexes(t *testing.T, s sandboxagent.SessionStore, sid string, limit int) []int64 {
	t.Helper()
	var out []int64
	cursor := ""
	for {
		page, err := s.ListEvents(testContext(t), sandboxagent.ListEventsRequest{SessionID: sid, Cursor: cursor, Limit: limit})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range page.Items {
			out = append(out, ev.EventIndex)
		}
		if page.NextCursor == "" {
			return out
		}
		cursor = page.NextCursor
	}
}

// TestNewOwner checks that what one Owner's store wrote is there for the
// next Owner's store (release, claim again), that the new store continues
// the index sequence, and that the released Owner's store can no longer
// write: its errors wrap backend.ErrFenced.
func TestNewOwner(t *testing.T) {
	for _, d := range drivers {
		t.Run(d.name, func(t *testing.T) {
			ctx := testContext(t)
			b := d.open(t)
			o1 := claim(t, b)
			s1 := sessionstore.New(o1)
			rec := sandboxagent.SessionRecord{ID: "sess/1 ü", Agent: "claude", CreatedAt: 5, Modes: json.RawMessage(`null`)}
			if err := s1.UpdateSession(ctx, rec); err != nil {
				t.Fatal(err)
			}
			first := insert(t, s1, rec.ID, event(`{"n":1}`))
			insert(t, s1, rec.ID, event(`{"n":2}`))
			if err := o1.Release(ctx); err != nil {
				t.Fatal(err)
			}

			o2, err := b.Claim(ctx, o1.Actor().ID)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = o2.Release(context.Background()) })
			s2 := sessionstore.New(o2)
			got, ok, err := s2.GetSession(ctx, rec.ID)
			if err != nil || !ok || got.Agent != "claude" || string(got.Modes) != "null" {
				t.Fatalf("GetSession on the new owner = %+v, %v, %v", got, ok, err)
			}
			page, err := s2.ListSessions(ctx, sandboxagent.ListPageRequest{})
			if err != nil || len(page.Items) != 1 || page.Items[0].ID != rec.ID {
				t.Fatalf("ListSessions on the new owner = %+v, %v", page, err)
			}
			if again := insert(t, s2, rec.ID, sandboxagent.SessionEvent{ID: first.ID, ConnectionID: "x", Sender: sandboxagent.SessionEventSenderClient, Payload: json.RawMessage(`{}`)}); again.EventIndex != 1 || string(again.Payload) != `{"n":1}` {
				t.Errorf("re-insert of event 1 on the new owner = %+v; want the stored event", again)
			}
			if next := insert(t, s2, rec.ID, event(`{"n":3}`)); next.EventIndex != 3 {
				t.Errorf("next index on the new owner = %d, want 3", next.EventIndex)
			}
			if got := indexes(t, s2, rec.ID, 2); !slices.Equal(got, []int64{1, 2, 3}) {
				t.Errorf("indexes on the new owner = %v, want [1 2 3]", got)
			}

			// The old owner's store is fenced.
			if err := s1.UpdateSession(ctx, sandboxagent.SessionRecord{ID: "late", Agent: "a", CreatedAt: 1}); !errors.Is(err, backend.ErrFenced) {
				t.Errorf("UpdateSession through a released owner: err = %v, want ErrFenced", err)
			}
			if _, err := s1.InsertEvent(ctx, rec.ID, event(`{"late":true}`)); !errors.Is(err, backend.ErrFenced) {
				t.Errorf("InsertEvent through a released owner: err = %v, want ErrFenced", err)
			}
			if _, ok, err := s2.GetSession(ctx, "late"); err != nil || ok {
				t.Errorf("the fenced update landed: ok=%v err=%v", ok, err)
			}
			if got := indexes(t, s2, rec.ID, 0); !slices.Equal(got, []int64{1, 2, 3}) {
				t.Errorf("indexes after the fenced insert = %v, want [1 2 3]", got)
			}
		})
	}
}

// countingKV counts the items the store reads, to check that paging a long
// log does not read it whole.
type countingKV struct {
	sessionstore.KV
	read atomic.Int64
}

func (c *countingKV) Get(ctx context.Context, ns, key string) ([]byte, error) {
	v, err := c.KV.Get(ctx, ns, key)
	if err == nil {
		c.read.Add(1)
	}
	return v, err
}

func (c *countingKV) List(ctx context.Context, ns, after string, limit int) ([]backend.Item, error) {
	items, err := c.KV.List(ctx, ns, after, limit)
	c.read.Add(int64(len(items)))
	return items, err
}

func TestListEventsReadsOnlyThePage(t *testing.T) {
	ctx := testContext(t)
	o := claim(t, drivers[0].open(t))
	const n = 600
	fill := sessionstore.New(o)
	for i := range n {
		insert(t, fill, "long", event(fmt.Sprintf(`{"i":%d}`, i)))
	}
	for _, tc := range []struct {
		name    string
		prepare func(s sandboxagent.SessionStore)
		cursor  string
		want    []int64
		maxRead int64
	}{
		// The first list of a fresh store loads the log's metadata (1) and
		// checks for events past it (0 found), then reads the page + 1.
		{"dense middle", nil, "500", []int64{501, 502, 503, 504, 505}, 1 + 6},
		{"dense end", nil, "598", []int64{599, 600}, 1 + 2},
		{"past the end", nil, "600", nil, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kv := &countingKV{KV: o}
			s := sessionstore.New(kv)
			page, err := s.ListEvents(ctx, sandboxagent.ListEventsRequest{SessionID: "long", Cursor: tc.cursor, Limit: 5})
			if err != nil {
				t.Fatal(err)
			}
			var got []int64
			for _, ev := range page.Items {
				got = append(got, ev.EventIndex)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("indexes = %v, want %v", got, tc.want)
			}
			if r := kv.read.Load(); r > tc.maxRead {
				t.Errorf("read %d items for a page of %d; want at most %d", r, len(got), tc.maxRead)
			}
		})
	}
}

// TestSparsePaging pages a log whose explicit indexes leave gaps, so the
// store cannot compute where an offset lands and walks the keys instead.
func TestSparsePaging(t *testing.T) {
	s := sessionstore.New(claim(t, drivers[0].open(t)))
	for _, i := range []int64{40, 7, 1000, 3, 12, 999, 5} {
		ev := event(`{}`)
		ev.EventIndex = i
		insert(t, s, "sparse", ev)
	}
	for range 3 {
		insert(t, s, "sparse", event(`{}`)) // 1001, 1002, 1003
	}
	want := []int64{3, 5, 7, 12, 40, 999, 1000, 1001, 1002, 1003}
	for _, limit := range []int{1, 2, 3, 4, 0} {
		if got := indexes(t, s, "sparse", limit); !slices.Equal(got, want) {
			t.Errorf("limit %d: indexes = %v, want %v", limit, got, want)
		}
	}
	// Filling the gaps makes the log dense again (indexes exactly 1..n).
	for i := int64(1); i <= 1003; i++ {
		if slices.Contains(want, i) {
			continue
		}
		ev := event(`{}`)
		ev.EventIndex = i
		insert(t, s, "sparse", ev)
	}
	page, err := s.ListEvents(testContext(t), sandboxagent.ListEventsRequest{SessionID: "sparse", Cursor: "1000", Limit: 2})
	if err != nil || len(page.Items) != 2 || page.Items[0].EventIndex != 1001 || page.NextCursor != "1002" {
		t.Errorf("dense page at 1000 = %+v, %v", page, err)
	}
}

// TestCrashLeftovers writes what an insert interrupted by a crash leaves
// behind straight into storage, and checks that a new store recovers:
// an event past the recorded maximum is counted in, and an event-id
// reference whose event never landed does not block the id.
func TestCrashLeftovers(t *testing.T) {
	ctx := testContext(t)
	o := claim(t, drivers[0].open(t))
	s1 := sessionstore.New(o)
	insert(t, s1, "s", event(`{"n":1}`))
	insert(t, s1, "s", event(`{"n":2}`))

	// Crash after writing event 3 but before its metadata.
	orphan, _ := json.Marshal(sandboxagent.SessionEvent{ID: "ev-3", EventIndex: 3, SessionID: "s", CreatedAt: 1, ConnectionID: "c", Sender: sandboxagent.SessionEventSenderAgent, Payload: json.RawMessage(`{"n":3}`)})
	if err := o.Put(ctx, "sa.eventids", "ev-3", []byte(`{"sessionId":"s","eventIndex":3}`)); err != nil {
		t.Fatal(err)
	}
	if err := o.Put(ctx, "sa.events/s", fmt.Sprintf("%019d", 3), orphan); err != nil {
		t.Fatal(err)
	}
	// Crash after writing the reference of "ev-x" (session "other") only.
	if err := o.Put(ctx, "sa.eventids", "ev-x", []byte(`{"sessionId":"other","eventIndex":1}`)); err != nil {
		t.Fatal(err)
	}
	// A reference whose index another event took after the crash.
	if err := o.Put(ctx, "sa.eventids", "ev-y", []byte(`{"sessionId":"s","eventIndex":1}`)); err != nil {
		t.Fatal(err)
	}

	s2 := sessionstore.New(o)
	if got := indexes(t, s2, "s", 2); !slices.Equal(got, []int64{1, 2, 3}) {
		t.Errorf("indexes = %v, want [1 2 3]", got)
	}
	if next := insert(t, s2, "s", event(`{}`)); next.EventIndex != 4 {
		t.Errorf("next index = %d, want 4 (past the orphaned event)", next.EventIndex)
	}
	ev := event(`{}`)
	ev.ID = "ev-x"
	if got := insert(t, s2, "s", ev); got.EventIndex != 5 {
		t.Errorf("id of a dangling reference: stored at %d, want 5", got.EventIndex)
	}
	ev.ID = "ev-y"
	if got := insert(t, s2, "elsewhere", ev); got.EventIndex != 1 {
		t.Errorf("id of a reference to another event: stored at %d, want 1", got.EventIndex)
	}
	ev.ID = "ev-3"
	if got := insert(t, s2, "s", ev); got.EventIndex != 3 || string(got.Payload) != `{"n":3}` {
		t.Errorf("re-insert of the orphaned event = %+v; want the stored one", got)
	}
}

// TestUpdateMovesSession checks that changing a record's CreatedAt moves it
// in the list order, on the store that did it and on a fresh one.
func TestUpdateMovesSession(t *testing.T) {
	ctx := testContext(t)
	o := claim(t, drivers[0].open(t))
	s := sessionstore.New(o)
	for i, id := range []string{"a", "b", "c"} {
		if err := s.UpdateSession(ctx, sandboxagent.SessionRecord{ID: id, Agent: "x", CreatedAt: int64(10 * (i + 1))}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.UpdateSession(ctx, sandboxagent.SessionRecord{ID: "a", Agent: "x", CreatedAt: 25}); err != nil {
		t.Fatal(err)
	}
	for name, store := range map[string]sandboxagent.SessionStore{"same store": s, "fresh store": sessionstore.New(o)} {
		page, err := store.ListSessions(ctx, sandboxagent.ListPageRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range page.Items {
			ids = append(ids, r.ID)
		}
		if !slices.Equal(ids, []string{"b", "a", "c"}) {
			t.Errorf("%s: order = %v, want [b a c]", name, ids)
		}
	}
}

// TestConcurrentSessions inserts into many sessions at once while listing,
// for the race detector; each session's indexes must come out 1..n.
func TestConcurrentSessions(t *testing.T) {
	s := sessionstore.New(claim(t, drivers[0].open(t)))
	ctx := testContext(t)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 8 {
		wg.Go(func() {
			sid := fmt.Sprintf("s%d", w%4)
			for range 25 {
				if _, err := s.InsertEvent(ctx, sid, event(`{}`)); err != nil {
					errs <- err
					return
				}
				if _, err := s.ListEvents(ctx, sandboxagent.ListEventsRequest{SessionID: sid, Limit: 3}); err != nil {
					errs <- err
					return
				}
				if err := s.UpdateSession(ctx, sandboxagent.SessionRecord{ID: sid, Agent: "a", CreatedAt: int64(w)}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i := range 4 {
		got := indexes(t, s, fmt.Sprintf("s%d", i), 7)
		if len(got) != 50 || got[0] != 1 || got[49] != 50 {
			t.Errorf("session s%d: indexes %v, want 1..50", i, got)
		}
	}
}
