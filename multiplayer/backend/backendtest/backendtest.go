// Package backendtest is the conformance suite every multiplayer/backend
// driver passes. A driver's test calls Run with a function that opens a
// fresh, empty deployment per call:
//
//	func TestConformance(t *testing.T) {
//		backendtest.Run(t, func(t *testing.T) backendtest.Deployment {
//			b, err := mydriver.Open(t.Context(), mydriver.Options{...})
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { b.Close() })
//			return backendtest.Deployment{Node: b}
//		})
//	}
//
// A driver that runs several nodes on one deployment sets Second, and the
// suite then checks that registry, ownership, storage and bus agree across
// nodes. A driver with ownership leases sets Expire, and the suite checks
// that an Owner whose lease ran out is fenced (the "paused old owner").
//
// What the suite holds drivers to, beyond the comments of package backend:
//   - Get, Lookup and Claim of an unknown or destroyed actor: ErrNotFound;
//     Events of one: no events (or ErrNotFound).
//   - Keys are compared by backend.CanonicalKey: "a/b" and ["a","b"], [""]
//     and [], and keys with '\', '.', '*', '>', spaces or non-ASCII stay
//     distinct. Actor.Key comes back as given (nil and empty are equal).
//   - An empty state is a saved state (ok true); an empty KV value is a
//     value. Delete of a missing key is not an error. List is in byte
//     order. Stored and returned byte slices are copies.
//   - Release and Destroy close the Owner's Lost; so does Close for every
//     Owner of the node. A Release through a superseded Owner returns nil
//     and leaves the live Owner alone.
//   - Every write through an Owner that is not live any more fails with
//     ErrFenced (a Destroyed actor's Owner: ErrFenced or ErrNotFound; a
//     closed node's: ErrClosed or ErrFenced) and changes nothing.
//   - A cancelled ctx makes GetOrCreate, Create, Claim, SaveState, Append,
//     Put and Request fail with an error wrapping context.Canceled, and
//     nothing is written. Request returns its ctx's error when ctx ends
//     before the answer, even if the handler answers later.
//   - After Close, every Backend and Bus method fails with ErrClosed; a
//     second Close returns nil or ErrClosed (so the driver's own cleanup
//     may Close again: the Close subtest closes Node itself).
//   - Once Subscribe has returned, a Publish on any node reaches it; once
//     Serve has returned, a Request on any node reaches it. Messages of
//     one publisher arrive in order; a cancelled subscription gets nothing
//     more.
//   - Times (Schedule.At) keep at least millisecond precision.
package backendtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/multiplayer/backend"
)

// Deployment is one fresh, empty deployment of a driver as the suite sees
// it. The function that returns it registers its own cleanups.
type Deployment struct {
	// Node is the deployment's first node.
	Node backend.Backend
	// Second opens another node of the same deployment (it sees Node's
	// actors and storage, and shares its bus). Nil when the driver allows
	// one node per deployment (backend/sqlite); the cross-node subtests
	// then run on Node alone.
	Second func(t *testing.T) backend.Backend
	// Expire makes o's ownership lease run out now, as if its node had
	// paused or been cut off: after it returns, a Claim of o's actor on
	// any node succeeds at once, and o's writes must fail with ErrFenced.
	// o need not be told: its writes must find out. Nil when the driver
	// has no leases.
	Expire func(t *testing.T, o backend.Owner)
}

// Run runs the whole suite as subtests of t; open is called once per
// subtest and must return an empty deployment isolated from the others
// (DueSchedules is deployment-wide).
func Run(t *testing.T, open func(t *testing.T) Deployment) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, d Deployment)
	}{
		{"GetOrCreate", testGetOrCreate},
		{"GetOrCreateConcurrent", testGetOrCreateConcurrent},
		{"CreateDuplicate", testCreateDuplicate},
		{"NotFound", testNotFound},
		{"KeysDistinct", testKeysDistinct},
		{"ActorRecord", testActorRecord},
		{"ClaimGenerations", testClaimGenerations},
		{"ClaimWhileOwned", testClaimWhileOwned},
		{"ClaimConcurrent", testClaimConcurrent},
		{"ClaimNotFound", testClaimNotFound},
		{"ReleaseIdempotent", testReleaseIdempotent},
		{"FencedAfterReclaim", testFencedAfterReclaim},
		{"FencedAfterExpiry", testFencedAfterExpiry},
		{"State", testState},
		{"Events", testEvents},
		{"EventsDefaultLimit", testEventsDefaultLimit},
		{"AppendConcurrent", testAppendConcurrent},
		{"OwnerConcurrent", testOwnerConcurrent},
		{"KV", testKV},
		{"KVList", testKVList},
		{"KVIsolation", testKVIsolation},
		{"Schedules", testSchedules},
		{"TakeScheduleRace", testTakeScheduleRace},
		{"DueSchedules", testDueSchedules},
		{"Destroy", testDestroy},
		{"BusRequest", testBusRequest},
		{"BusRequestConcurrent", testBusRequestConcurrent},
		{"BusRequestCancel", testBusRequestCancel},
		{"BusPublishOrder", testBusPublishOrder},
		{"BusSubscribeCancel", testBusSubscribeCancel},
		{"BusActorsIsolated", testBusActorsIsolated},
		{"ContextCanceled", testContextCanceled},
		{"Close", testClose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := open(t)
			if d.Node == nil {
				t.Fatal("backendtest: open returned a Deployment without Node")
			}
			tc.fn(t, d)
		})
	}
}

// BenchmarkAppend measures Owner.Append of a small event from one goroutine
// and reports events/s.
func BenchmarkAppend(b *testing.B, be backend.Backend) {
	ctx := context.Background()
	a, _, err := be.GetOrCreate(ctx, "bench", []string{"append", fmt.Sprint(time.Now().UnixNano())}, nil)
	if err != nil {
		b.Fatal(err)
	}
	o, err := be.Claim(ctx, a.ID)
	if err != nil {
		b.Fatal(err)
	}
	defer o.Release(ctx)
	args := json.RawMessage(`[{"userId":"u1","text":"hello from the benchmark","createdAt":1700000000000}]`)
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		if _, err := o.Append(ctx, "chat.user", args); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}

// BenchmarkSaveState measures Owner.SaveState of a 1 KiB state from one
// goroutine and reports saves/s.
func BenchmarkSaveState(b *testing.B, be backend.Backend) {
	ctx := context.Background()
	a, _, err := be.GetOrCreate(ctx, "bench", []string{"state", fmt.Sprint(time.Now().UnixNano())}, nil)
	if err != nil {
		b.Fatal(err)
	}
	o, err := be.Claim(ctx, a.ID)
	if err != nil {
		b.Fatal(err)
	}
	defer o.Release(ctx)
	state := bytes.Repeat([]byte("s"), 1024)
	b.ReportAllocs()
	b.SetBytes(int64(len(state)))
	start := time.Now()
	for b.Loop() {
		if err := o.SaveState(ctx, state); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "saves/s")
}

// --- registry ---

func testGetOrCreate(t *testing.T, d Deployment) {
	ctx := testContext(t)
	n1, n2 := d.Node, second(t, d)
	a, created, err := n1.GetOrCreate(ctx, "room", []string{"r1"}, json.RawMessage(`{"topic":"first"}`))
	if err != nil || !created {
		t.Fatalf("first GetOrCreate = created %v, err %v; want created", created, err)
	}
	if a.ID == "" || a.Name != "room" || !slices.Equal(a.Key, []string{"r1"}) || a.CreatedAt.IsZero() {
		t.Fatalf("GetOrCreate returned %+v", a)
	}
	for i, n := range []backend.Backend{n1, n2} {
		b, created, err := n.GetOrCreate(ctx, "room", []string{"r1"}, json.RawMessage(`{"topic":"second"}`))
		if err != nil || created {
			t.Fatalf("node %d: second GetOrCreate = created %v, err %v; want an existing actor", i, created, err)
		}
		assertSameActor(t, a, b)
		if !jsonEqual(b.Input, json.RawMessage(`{"topic":"first"}`)) {
			t.Errorf("node %d: input %s; the input of the first creation must stay", i, b.Input)
		}
		g, err := n.Get(ctx, "room", []string{"r1"})
		if err != nil {
			t.Fatalf("node %d: Get: %v", i, err)
		}
		assertSameActor(t, a, g)
		l, err := n.Lookup(ctx, a.ID)
		if err != nil {
			t.Fatalf("node %d: Lookup: %v", i, err)
		}
		assertSameActor(t, a, l)
	}
	// The same key under another name is another actor.
	other, created, err := n1.GetOrCreate(ctx, "lobby", []string{"r1"}, nil)
	if err != nil || !created || other.ID == a.ID {
		t.Fatalf("GetOrCreate(lobby, r1) = %+v, created %v, err %v; want a new actor", other, created, err)
	}
}

func testGetOrCreateConcurrent(t *testing.T, d Deployment) {
	ctx := testContext(t)
	nodes := []backend.Backend{d.Node, second(t, d)}
	const workers = 16
	type result struct {
		a       backend.Actor
		created bool
		err     error
	}
	results := make([]result, workers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			<-start
			a, created, err := nodes[i%2].GetOrCreate(ctx, "room", []string{"race"}, json.RawMessage(fmt.Sprintf(`{"by":%d}`, i)))
			results[i] = result{a, created, err}
		})
	}
	close(start)
	wg.Wait()
	createdCount := 0
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("worker %d: %v", i, r.err)
		}
		if r.a.ID != results[0].a.ID {
			t.Fatalf("workers disagree on the actor: %s and %s", results[0].a.ID, r.a.ID)
		}
		if r.created {
			createdCount++
		}
	}
	if createdCount != 1 {
		t.Fatalf("%d workers report created, want exactly 1", createdCount)
	}
}

func testCreateDuplicate(t *testing.T, d Deployment) {
	ctx := testContext(t)
	a, err := d.Node.Create(ctx, "room", []string{"dup"}, json.RawMessage(`{"n":1}`))
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range []backend.Backend{d.Node, second(t, d)} {
		if _, err := n.Create(ctx, "room", []string{"dup"}, nil); !errors.Is(err, backend.ErrDuplicateKey) {
			t.Fatalf("node %d: second Create: %v, want ErrDuplicateKey", i, err)
		}
	}
	g, created, err := d.Node.GetOrCreate(ctx, "room", []string{"dup"}, nil)
	if err != nil || created {
		t.Fatalf("GetOrCreate after Create: created %v, err %v", created, err)
	}
	assertSameActor(t, a, g)
}

func testNotFound(t *testing.T, d Deployment) {
	ctx := testContext(t)
	if _, err := d.Node.Create(ctx, "room", []string{"exists"}, nil); err != nil {
		t.Fatal(err)
	}
	for i, n := range []backend.Backend{d.Node, second(t, d)} {
		if _, err := n.Get(ctx, "room", []string{"missing"}); !errors.Is(err, backend.ErrNotFound) {
			t.Errorf("node %d: Get of a missing key: %v, want ErrNotFound", i, err)
		}
		if _, err := n.Get(ctx, "other", []string{"exists"}); !errors.Is(err, backend.ErrNotFound) {
			t.Errorf("node %d: Get of another name's key: %v, want ErrNotFound", i, err)
		}
		if _, err := n.Lookup(ctx, "no-such-actor"); !errors.Is(err, backend.ErrNotFound) {
			t.Errorf("node %d: Lookup of an unknown id: %v, want ErrNotFound", i, err)
		}
		evs, err := n.Events(ctx, "no-such-actor", 0, 10)
		if err != nil && !errors.Is(err, backend.ErrNotFound) {
			t.Errorf("node %d: Events of an unknown id: %v, want none or ErrNotFound", i, err)
		}
		if len(evs) != 0 {
			t.Errorf("node %d: Events of an unknown id: %d events", i, len(evs))
		}
	}
}

// distinctKeys are keys that a naive encoding confuses.
var distinctKeys = [][]string{
	nil, {""}, {"", ""}, {"a"}, {"a", ""}, {"", "a"}, {"a/b"}, {"a", "b"}, {`a\`, "b"}, {`a\/b`}, {`a\`, `/b`},
	{"/"}, {`\`}, {`\0`}, {"a.b"}, {"a b"}, {"*"}, {">"}, {"ü", "日本"}, {"emoji 🎉"},
}

func testKeysDistinct(t *testing.T, d Deployment) {
	ctx := testContext(t)
	ids := map[string][]string{}
	actors := make([]backend.Actor, len(distinctKeys))
	for i, k := range distinctKeys {
		a, err := d.Node.Create(ctx, "room", k, nil)
		if err != nil {
			t.Fatalf("Create(%q): %v", k, err)
		}
		if prev, ok := ids[a.ID]; ok {
			t.Fatalf("keys %q and %q got the same actor %s", prev, k, a.ID)
		}
		ids[a.ID] = k
		if !slices.Equal(a.Key, k) {
			t.Errorf("Create(%q) returned key %q", k, a.Key)
		}
		actors[i] = a
	}
	n2 := second(t, d)
	for i, k := range distinctKeys {
		g, err := n2.Get(ctx, "room", k)
		if err != nil {
			t.Fatalf("Get(%q): %v", k, err)
		}
		assertSameActor(t, actors[i], g)
		l, err := n2.Lookup(ctx, actors[i].ID)
		if err != nil {
			t.Fatalf("Lookup(%q): %v", k, err)
		}
		assertSameActor(t, actors[i], l)
	}
}

func testActorRecord(t *testing.T, d Deployment) {
	ctx := testContext(t)
	before := time.Now().Add(-time.Minute)
	input := json.RawMessage(`{"sandboxId":"sb-1","nested":{"list":[1,2,3]},"s":"ü"}`)
	a, err := d.Node.Create(ctx, "workspace", []string{"ws-1"}, input)
	if err != nil {
		t.Fatal(err)
	}
	if !jsonEqual(a.Input, input) {
		t.Errorf("Create returned input %s, want %s", a.Input, input)
	}
	if a.CreatedAt.Before(before) {
		t.Errorf("CreatedAt %v is not the creation time", a.CreatedAt)
	}
	l, err := second(t, d).Lookup(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	assertSameActor(t, a, l)
	if !jsonEqual(l.Input, input) {
		t.Errorf("Lookup returned input %s, want %s", l.Input, input)
	}
	none, err := d.Node.Create(ctx, "workspace", []string{"ws-2"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(none.Input) != 0 {
		t.Errorf("an actor created without input has input %q, want none", none.Input)
	}
	if g, err := d.Node.Get(ctx, "workspace", []string{"ws-2"}); err != nil || len(g.Input) != 0 {
		t.Errorf("Get of an actor created without input: input %q, err %v", g.Input, err)
	}
	o := claim(t, d.Node, a.ID)
	assertSameActor(t, a, o.Actor())
}

// --- ownership ---

func testClaimGenerations(t *testing.T, d Deployment) {
	ctx := testContext(t)
	a := create(t, d.Node, "g")
	o1 := claim(t, d.Node, a.ID)
	if o1.Generation() != 1 {
		t.Fatalf("first Claim: generation %d, want 1", o1.Generation())
	}
	assertSameActor(t, a, o1.Actor())
	release(t, o1)
	o2 := claim(t, d.Node, a.ID)
	if o2.Generation() != 2 {
		t.Fatalf("Claim after Release: generation %d, want 2", o2.Generation())
	}
	release(t, o2)
	// The next Claim on any node succeeds at once.
	o3, err := second(t, d).Claim(ctx, a.ID)
	if err != nil {
		t.Fatalf("Claim on the second node after Release: %v", err)
	}
	if o3.Generation() != 3 {
		t.Fatalf("third Claim: generation %d, want 3", o3.Generation())
	}
	release(t, o3)
}

func testClaimWhileOwned(t *testing.T, d Deployment) {
	ctx := testContext(t)
	a := create(t, d.Node, "owned")
	o := claim(t, d.Node, a.ID)
	for i, n := range []backend.Backend{d.Node, second(t, d)} {
		_, err := n.Claim(ctx, a.ID)
		var owned *backend.OwnedError
		if !errors.As(err, &owned) {
			t.Fatalf("node %d: Claim of a live actor: %v, want *OwnedError", i, err)
		}
		if owned.ActorID != a.ID || owned.Node != d.Node.NodeID() {
			t.Errorf("node %d: OwnedError %+v, want actor %s node %s", i, owned, a.ID, d.Node.NodeID())
		}
	}
	// The live Owner is untouched by the failed claims.
	if err := o.SaveState(ctx, []byte("still mine")); err != nil {
		t.Fatalf("SaveState of the live owner after refused claims: %v", err)
	}
	assertNotLost(t, o)
}

func testClaimConcurrent(t *testing.T, d Deployment) {
	ctx := testContext(t)
	a := create(t, d.Node, "claim-race")
	nodes := []backend.Backend{d.Node, second(t, d)}
	const workers = 8
	owners := make([]backend.Owner, workers)
	errs := make([]error, workers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			<-start
			owners[i], errs[i] = nodes[i%2].Claim(ctx, a.ID)
		})
	}
	close(start)
	wg.Wait()
	won := 0
	for i := range workers {
		var owned *backend.OwnedError
		switch {
		case errs[i] == nil:
			won++
			if owners[i].Generation() != 1 {
				t.Errorf("the winning claim has generation %d, want 1", owners[i].Generation())
			}
		case errors.As(errs[i], &owned):
		default:
			t.Errorf("claim %d: %v, want an Owner or *OwnedError", i, errs[i])
		}
	}
	if won != 1 {
		t.Fatalf("%d concurrent claims won, want exactly 1", won)
	}
}

func testClaimNotFound(t *testing.T, d Deployment) {
	ctx := testContext(t)
	if _, err := d.Node.Claim(ctx, "no-such-actor"); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("Claim of an unknown id: %v, want ErrNotFound", err)
	}
	a := create(t, d.Node, "doomed")
	o := claim(t, d.Node, a.ID)
	if err := o.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	for i, n := range []backend.Backend{d.Node, second(t, d)} {
		if _, err := n.Claim(ctx, a.ID); !errors.Is(err, backend.ErrNotFound) {
			t.Fatalf("node %d: Claim of a destroyed actor: %v, want ErrNotFound", i, err)
		}
	}
}

func testReleaseIdempotent(t *testing.T, d Deployment) {
	a := create(t, d.Node, "rel")
	o := claim(t, d.Node, a.ID)
	release(t, o)
	release(t, o)
	o2 := claim(t, second(t, d), a.ID)
	if o2.Generation() != 2 {
		t.Fatalf("generation %d after release, want 2", o2.Generation())
	}
}

// writes are every Owner write, each with a fresh argument.
var writes = []struct {
	name string
	fn   func(ctx context.Context, o backend.Owner) error
}{
	{"SaveState", func(ctx context.Context, o backend.Owner) error { return o.SaveState(ctx, []byte("stale")) }},
	{"Append", func(ctx context.Context, o backend.Owner) error {
		_, err := o.Append(ctx, "stale", json.RawMessage(`[]`))
		return err
	}},
	{"Put", func(ctx context.Context, o backend.Owner) error { return o.Put(ctx, "ns", "k", []byte("stale")) }},
	{"Delete", func(ctx context.Context, o backend.Owner) error { return o.Delete(ctx, "ns", "keep") }},
	{"AddSchedule", func(ctx context.Context, o backend.Owner) error {
		return o.AddSchedule(ctx, backend.Schedule{ID: "stale", ActorID: o.Actor().ID, At: at(1), Action: "tick", Args: json.RawMessage(`[]`)})
	}},
	{"CancelSchedule", func(ctx context.Context, o backend.Owner) error {
		_, err := o.CancelSchedule(ctx, "keep")
		return err
	}},
	{"TakeSchedule", func(ctx context.Context, o backend.Owner) error {
		_, err := o.TakeSchedule(ctx, "keep")
		return err
	}},
	{"Destroy", func(ctx context.Context, o backend.Owner) error { return o.Destroy(ctx) }},
}

// seedFenceTargets stores what the stale writes of writes would change.
func seedFenceTargets(t *testing.T, o backend.Owner) {
	ctx := testContext(t)
	if err := o.SaveState(ctx, []byte("good")); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Append(ctx, "good", json.RawMessage(`[]`)); err != nil {
		t.Fatal(err)
	}
	if err := o.Put(ctx, "ns", "keep", []byte("good")); err != nil {
		t.Fatal(err)
	}
	if err := o.AddSchedule(ctx, backend.Schedule{ID: "keep", ActorID: o.Actor().ID, At: at(2), Action: "tick", Args: json.RawMessage(`[]`)}); err != nil {
		t.Fatal(err)
	}
}

// assertFenced checks that every write of stale fails with ErrFenced and
// changes nothing that fresh, the live Owner, sees.
func assertFenced(t *testing.T, stale backend.Owner, fresh nodeOwner) {
	t.Helper()
	ctx := testContext(t)
	for _, w := range writes {
		if err := w.fn(ctx, stale); !errors.Is(err, backend.ErrFenced) {
			t.Errorf("%s of a superseded Owner: %v, want ErrFenced", w.name, err)
		}
	}
	waitLost(t, stale)
	assertNotLost(t, fresh)
	if s, ok, err := fresh.LoadState(ctx); err != nil || !ok || string(s) != "good" {
		t.Errorf("state after fenced writes: %q, %v, %v; want %q", s, ok, err, "good")
	}
	evs, err := fresh.Events(ctx)
	if err != nil || len(evs) != 1 || evs[0].Name != "good" {
		t.Errorf("events after fenced writes: %+v, %v; want only the good one", evs, err)
	}
	if _, err := fresh.Get(ctx, "ns", "k"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("a fenced Put landed: Get = %v", err)
	}
	if v, err := fresh.Get(ctx, "ns", "keep"); err != nil || string(v) != "good" {
		t.Errorf("a fenced Delete landed: Get = %q, %v", v, err)
	}
	ss, err := fresh.Schedules(ctx)
	if err != nil || len(ss) != 1 || ss[0].ID != "keep" {
		t.Errorf("schedules after fenced writes: %+v, %v; want only keep", ss, err)
	}
	// A stale Release must not free the live owner.
	if err := stale.Release(ctx); err != nil {
		t.Errorf("Release of a superseded Owner: %v, want nil", err)
	}
	if _, err := fresh.Lookup(ctx); err != nil {
		t.Errorf("the actor is gone after fenced writes: %v", err)
	}
	if err := fresh.SaveState(ctx, []byte("fresh")); err != nil {
		t.Errorf("the live Owner cannot write after the stale one released: %v", err)
	}
	var owned *backend.OwnedError
	if _, err := fresh.node.Claim(ctx, fresh.Actor().ID); !errors.As(err, &owned) {
		t.Errorf("Claim after a stale Release: %v, want *OwnedError (the live Owner keeps it)", err)
	}
}

func testFencedAfterReclaim(t *testing.T, d Deployment) {
	a := create(t, d.Node, "fence")
	o1 := claim(t, d.Node, a.ID)
	seedFenceTargets(t, o1)
	// Release and a new claim (on the other node when there is one)
	// supersede o1 whether or not it noticed.
	release(t, o1)
	n2 := second(t, d)
	o2 := claim(t, n2, a.ID)
	assertFenced(t, o1, wrap(n2, o2))
}

func testFencedAfterExpiry(t *testing.T, d Deployment) {
	if d.Expire == nil {
		t.Skip("the driver has no ownership leases")
	}
	a := create(t, d.Node, "expire")
	o1 := claim(t, d.Node, a.ID)
	seedFenceTargets(t, o1)
	d.Expire(t, o1)
	n2 := second(t, d)
	o2 := claim(t, n2, a.ID)
	if o2.Generation() != o1.Generation()+1 {
		t.Fatalf("claim after expiry: generation %d, want %d", o2.Generation(), o1.Generation()+1)
	}
	assertFenced(t, o1, wrap(n2, o2))
}

// --- state and events ---

func testState(t *testing.T, d Deployment) {
	ctx := testContext(t)
	a := create(t, d.Node, "state")
	o := claim(t, d.Node, a.ID)
	if s, ok, err := o.LoadState(ctx); err != nil || ok || len(s) != 0 {
		t.Fatalf("LoadState before any save: %q, ok %v, err %v; want not ok", s, ok, err)
	}
	if err := o.SaveState(ctx, []byte{}); err != nil {
		t.Fatal(err)
	}
	if s, ok, err := o.LoadState(ctx); err != nil || !ok || len(s) != 0 {
		t.Fatalf("LoadState after saving an empty state: %q, ok %v, err %v; want ok and empty", s, ok, err)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	buf := slices.Clone(big)
	if err := o.SaveState(ctx, buf); err != nil {
		t.Fatal(err)
	}
	buf[0] = 'X' // the caller may reuse its buffer
	got, ok, err := o.LoadState(ctx)
	if err != nil || !ok || !bytes.Equal(got, big) {
		t.Fatalf("LoadState: %d bytes, ok %v, err %v; want the 64 KiB saved", len(got), ok, err)
	}
	got[1] = 'Y' // and modify what it got
	if err := o.SaveState(ctx, []byte(`{"v":2}`)); err != nil {
		t.Fatal(err)
	}
	release(t, o)
	o2 := claim(t, second(t, d), a.ID)
	if s, ok, err := o2.LoadState(ctx); err != nil || !ok || string(s) != `{"v":2}` {
		t.Fatalf("LoadState of the next owner: %q, ok %v, err %v", s, ok, err)
	}
	// States of different actors are apart.
	b := create(t, d.Node, "state-other")
	ob := claim(t, d.Node, b.ID)
	if _, ok, err := ob.LoadState(ctx); err != nil || ok {
		t.Fatalf("another actor sees a state: ok %v, err %v", ok, err)
	}
}

func testEvents(t *testing.T, d Deployment) {
	ctx := testContext(t)
	a := create(t, d.Node, "events")
	o := claim(t, d.Node, a.ID)
	if evs, err := d.Node.Events(ctx, a.ID, 0, 10); err != nil || len(evs) != 0 {
		t.Fatalf("Events of a new actor: %+v, %v", evs, err)
	}
	for i := 1; i <= 7; i++ {
		args := json.RawMessage(fmt.Sprintf(`[{"i":%d},"x"]`, i))
		ev, err := o.Append(ctx, "tick", args)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Seq != uint64(i) || ev.Name != "tick" || !jsonEqual(ev.Args, args) || ev.Generation != 1 || ev.Time.IsZero() {
			t.Fatalf("Append %d returned %+v", i, ev)
		}
	}
	release(t, o)
	n2 := second(t, d)
	o2 := claim(t, n2, a.ID)
	for i := 8; i <= 10; i++ {
		ev, err := o2.Append(ctx, "tock", json.RawMessage(fmt.Sprintf(`[%d]`, i)))
		if err != nil {
			t.Fatal(err)
		}
		if ev.Seq != uint64(i) || ev.Generation != 2 {
			t.Fatalf("Append after reclaim: seq %d gen %d, want %d and 2", ev.Seq, ev.Generation, i)
		}
	}
	for _, n := range []backend.Backend{d.Node, n2} {
		for _, tc := range []struct {
			after uint64
			limit int
			want  []uint64
		}{
			{0, 3, []uint64{1, 2, 3}},
			{3, 3, []uint64{4, 5, 6}},
			{6, 3, []uint64{7, 8, 9}},
			{9, 3, []uint64{10}},
			{10, 3, nil},
			{0, 100, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
			{42, 5, nil},
		} {
			evs, err := n.Events(ctx, a.ID, tc.after, tc.limit)
			if err != nil {
				t.Fatalf("Events(%d, %d): %v", tc.after, tc.limit, err)
			}
			if got := seqs(evs); !slices.Equal(got, tc.want) {
				t.Fatalf("Events(%d, %d) = %v, want %v", tc.after, tc.limit, got, tc.want)
			}
		}
	}
	evs, err := d.Node.Events(ctx, a.ID, 6, 2)
	if err != nil || len(evs) != 2 {
		t.Fatalf("Events(6, 2): %+v, %v", evs, err)
	}
	if evs[0].Name != "tick" || !jsonEqual(evs[0].Args, json.RawMessage(`[{"i":7},"x"]`)) || evs[0].Generation != 1 || evs[0].Time.IsZero() {
		t.Errorf("event 7 read back as %+v", evs[0])
	}
	if evs[1].Name != "tock" || !jsonEqual(evs[1].Args, json.RawMessage(`[8]`)) || evs[1].Generation != 2 {
		t.Errorf("event 8 read back as %+v", evs[1])
	}
	// Sequences are per actor.
	b := create(t, d.Node, "events-other")
	ob := claim(t, d.Node, b.ID)
	if ev, err := ob.Append(ctx, "first", json.RawMessage(`[]`)); err != nil || ev.Seq != 1 {
		t.Fatalf("first Append of another actor: seq %d, %v; want 1", ev.Seq, err)
	}
}

func testEventsDefaultLimit(t *testing.T, d Deployment) {
	ctx := testContext(t)
	a := create(t, d.Node, "events-many")
	o := claim(t, d.Node, a.ID)
	const n = 150
	for range n {
		if _, err := o.Append(ctx, "e", json.RawMessage(`[]`)); err != nil {
			t.Fatal(err)
		}
	}
	for _, limit := range []int{0, -1} {
		evs, err := d.Node.Events(ctx, a.ID, 0, limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) < 100 || len(evs) > n {
			t.Fatalf("Events(0, %d) returned %d events, want the driver default (at least 100)", limit, len(evs))
		}
		for i, ev := range evs {
			if ev.Seq != uint64(i+1) {
				t.Fatalf("Events(0, %d)[%d].Seq = %d", limit, i, ev.Seq)
			}
		}
	}
}

func testAppendConcurrent(t *testing.T, d Deployment) {
	ctx := testContext(t)
	a := create(t, d.Node, "append-race")
	o := claim(t, d.Node, a.ID)
	const workers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	got := make(chan uint64, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				ev, err := o.Append(ctx, "e", json.RawMessage(fmt.Sprintf(`[%d,%d]`, w, i)))
				if err != nil {
					errs <- err
					return
				}
				got <- ev.Seq
			}
		})
	}
	wg.Wait()
	close(errs)
	close(got)
	for err := range errs {
		t.Fatal(err)
	}
	var returned []uint64
	for s := range got {
		returned = append(returned, s)
	}
	slices.Sort(returned)
	want := make([]uint64, workers*each)
	for i := range want {
		want[i] = uint64(i + 1)
	}
	if !slices.Equal(returned, want) {
		t.Fatalf("Append returned sequences %v, want 1..%d each once", returned, len(want))
	}
	var stored []uint64
	var after uint64
	for {
		evs, err := d.Node.Events(ctx, a.ID, after, 64)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			break
		}
		stored = append(stored, seqs(evs)...)
		after = evs[len(evs)-1].Seq
	}
	if !slices.Equal(stored, want) {
		t.Fatalf("stored sequences %v, want 1..%d", stored, len(want))
	}
}

// testOwnerConcurrent uses one Owner from many goroutines at once, as an
// actor's session store and its turns do.
func testOwnerConcurrent(t *testing.T, d Deployment) {
	ctx := testContext(t)
	a := create(t, d.Node, "owner-race")
	o := claim(t, d.Node, a.ID)
	const workers, each = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			err := func() error {
				for i := range each {
					key := fmt.Sprintf("w%d-%02d", w, i)
					if err := o.Put(ctx, "ns", key, []byte(key)); err != nil {
						return err
					}
					if v, err := o.Get(ctx, "ns", key); err != nil || string(v) != key {
						return fmt.Errorf("Get(%s) = %q, %v", key, v, err)
					}
					if _, err := o.List(ctx, "ns", "", 5); err != nil {
						return err
					}
					if err := o.SaveState(ctx, []byte(key)); err != nil {
						return err
					}
					if _, _, err := o.LoadState(ctx); err != nil {
						return err
					}
					if err := o.AddSchedule(ctx, backend.Schedule{ID: key, ActorID: a.ID, At: at(i), Action: "x", Args: json.RawMessage(`[]`)}); err != nil {
						return err
					}
					if i%2 == 1 {
						if ok, err := o.CancelSchedule(ctx, key); err != nil || !ok {
							return fmt.Errorf("CancelSchedule(%s) = %v, %v", key, ok, err)
						}
					}
				}
				return nil
			}()
			if err != nil {
				errs <- fmt.Errorf("worker %d: %w", w, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	items, err := o.List(ctx, "ns", "", 0)
	if err != nil || len(items) != workers*each {
		t.Fatalf("%d KV items, %v; want %d", len(items), err, workers*each)
	}
	ss, err := o.Schedules(ctx)
	if err != nil || len(ss) != workers*each/2 {
		t.Fatalf("%d schedules, %v; want %d", len(ss), err, workers*each/2)
	}
	if s, ok, err := o.LoadState(ctx); err != nil || !ok || len(s) == 0 {
		t.Fatalf("state after concurrent saves: %q, %v, %v", s, ok, err)
	}
}

// --- key-value storage ---

func testKV(t *testing.T, d Deployment) {
	ctx := testContext(t)
	a := create(t, d.Node, "kv")
	o := claim(t, d.Node, a.ID)
	if _, err := o.Get(ctx, "sessions", "s1"); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("Get of a missing key: %v, want ErrNotFound", err)
	}
	val := []byte(`{"id":"s1"}`)
	if err := o.Put(ctx, "sessions", "s1", val); err != nil {
		t.Fatal(err)
	}
	val[0] = 'X' // the caller may reuse its buffer
	got, err := o.Get(ctx, "sessions", "s1")
	if err != nil || string(got) != `{"id":"s1"}` {
		t.Fatalf("Get: %q, %v", got, err)
	}
	got[0] = 'Y' // and modify what it got
	if got, _ := o.Get(ctx, "sessions", "s1"); string(got) != `{"id":"s1"}` {
		t.Fatalf("Get returned the store's own buffer: now %q", got)
	}
	if err := o.Put(ctx, "sessions", "s1", []byte("v2")); err != nil {
		t.Fatal(err)
	}
	if got, err := o.Get(ctx, "sessions", "s1"); err != nil || string(got) != "v2" {
		t.Fatalf("Get after overwrite: %q, %v", got, err)
	}
	if err := o.Put(ctx, "sessions", "empty", []byte{}); err != nil {
		t.Fatal(err)
	}
	if got, err := o.Get(ctx, "sessions", "empty"); err != nil || len(got) != 0 {
		t.Fatalf("Get of an empty value: %q, %v; want empty and no error", got, err)
	}
	if err := o.Delete(ctx, "sessions", "s1"); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Get(ctx, "sessions", "s1"); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("Get after Delete: %v, want ErrNotFound", err)
	}
	if err := o.Delete(ctx, "sessions", "s1"); err != nil {
		t.Fatalf("Delete of a missing key: %v, want nil", err)
	}
	// The next owner sees the same storage.
	if err := o.Put(ctx, "sessions", "s2", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	release(t, o)
	o2 := claim(t, second(t, d), a.ID)
	if got, err := o2.Get(ctx, "sessions", "s2"); err != nil || string(got) != "kept" {
		t.Fatalf("Get by the next owner: %q, %v", got, err)
	}
}

func testKVList(t *testing.T, d Deployment) {
	ctx := testContext(t)
	a := create(t, d.Node, "kv-list")
	o := claim(t, d.Node, a.ID)
	keys := []string{"b", "a", "B", "a/b", "a.b", "a b", "ü", "z", "10", "9", "a\\", "aa", "~"}
	for _, k := range keys {
		if err := o.Put(ctx, "ns", k, []byte("v:"+k)); err != nil {
			t.Fatalf("Put(%q): %v", k, err)
		}
	}
	sorted := slices.Clone(keys)
	slices.Sort(sorted) // byte order
	for _, tc := range []struct {
		after string
		limit int
		want  []string
	}{
		{"", 0, sorted},
		{"", -1, sorted},
		{"", 3, sorted[:3]},
		{sorted[2], 4, sorted[3:7]},
		{"a", 0, sorted[slices.Index(sorted, "a")+1:]},
		{"a0", 2, []string{`a\`, "aa"}}, // 0x30 < 0x5c
		{"~", 0, []string{"ü"}},
		{"ü", 0, nil},
	} {
		items, err := o.List(ctx, "ns", tc.after, tc.limit)
		if err != nil {
			t.Fatalf("List(%q, %d): %v", tc.after, tc.limit, err)
		}
		var got []string
		for _, it := range items {
			got = append(got, it.Key)
			if string(it.Value) != "v:"+it.Key {
				t.Errorf("List item %q has value %q", it.Key, it.Value)
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("List(%q, %d) = %q, want %q", tc.after, tc.limit, got, tc.want)
		}
	}
}

func testKVIsolation(t *testing.T, d Deployment) {
	ctx := testContext(t)
	oa := claim(t, d.Node, create(t, d.Node, "kv-a").ID)
	ob := claim(t, d.Node, create(t, d.Node, "kv-b").ID)
	for _, p := range []struct {
		o      backend.Owner
		ns, k  string
		value  string
		reason string
	}{
		{oa, "sessions", "k", "a-sessions", ""},
		{oa, "events", "k", "a-events", ""},
		{oa, "sessions.x", "k", "a-sessions.x", ""},
		{ob, "sessions", "k", "b-sessions", ""},
	} {
		if err := p.o.Put(ctx, p.ns, p.k, []byte(p.value)); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		o     backend.Owner
		ns    string
		want  string
		owner string
	}{
		{oa, "sessions", "a-sessions", "a"},
		{oa, "events", "a-events", "a"},
		{oa, "sessions.x", "a-sessions.x", "a"},
		{ob, "sessions", "b-sessions", "b"},
	} {
		got, err := c.o.Get(ctx, c.ns, "k")
		if err != nil || string(got) != c.want {
			t.Errorf("actor %s ns %q: Get = %q, %v; want %q", c.owner, c.ns, got, err, c.want)
		}
		items, err := c.o.List(ctx, c.ns, "", 0)
		if err != nil || len(items) != 1 || string(items[0].Value) != c.want {
			t.Errorf("actor %s ns %q: List = %+v, %v; want only %q", c.owner, c.ns, items, err, c.want)
		}
	}
	if _, err := ob.Get(ctx, "events", "k"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("actor b sees actor a's namespace: %v", err)
	}
	if err := oa.Delete(ctx, "sessions", "k"); err != nil {
		t.Fatal(err)
	}
	if got, err := ob.Get(ctx, "sessions", "k"); err != nil || string(got) != "b-sessions" {
		t.Errorf("Delete on actor a removed actor b's key: %q, %v", got, err)
	}
	if got, err := oa.Get(ctx, "events", "k"); err != nil || string(got) != "a-events" {
		t.Errorf("Delete in one namespace removed another's key: %q, %v", got, err)
	}
}

// --- schedules ---

func testSchedules(t *testing.T, d Deployment) {
	ctx := testContext(t)
	a := create(t, d.Node, "sched")
	o := claim(t, d.Node, a.ID)
	if ss, err := o.Schedules(ctx); err != nil || len(ss) != 0 {
		t.Fatalf("Schedules of a new actor: %+v, %v", ss, err)
	}
	s1 := backend.Schedule{ID: "s1", ActorID: a.ID, At: at(20), Action: "remind", Args: json.RawMessage(`["one"]`)}
	s2 := backend.Schedule{ID: "s2", ActorID: a.ID, At: at(10), Action: "remind", Args: json.RawMessage(`["two"]`)}
	s3 := backend.Schedule{ID: "s3", ActorID: a.ID, At: at(30), Action: "other", Args: json.RawMessage(`[]`)}
	for _, s := range []backend.Schedule{s1, s2, s3} {
		if err := o.AddSchedule(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	assertSchedules(t, o, s2, s1, s3)
	// Replacing s1 moves it to the front.
	s1b := backend.Schedule{ID: "s1", ActorID: a.ID, At: at(5), Action: "replaced", Args: json.RawMessage(`[1]`)}
	if err := o.AddSchedule(ctx, s1b); err != nil {
		t.Fatal(err)
	}
	assertSchedules(t, o, s1b, s2, s3)
	if ok, err := o.CancelSchedule(ctx, "s2"); err != nil || !ok {
		t.Fatalf("CancelSchedule(s2) = %v, %v; want true", ok, err)
	}
	if ok, err := o.CancelSchedule(ctx, "s2"); err != nil || ok {
		t.Fatalf("second CancelSchedule(s2) = %v, %v; want false", ok, err)
	}
	if ok, err := o.CancelSchedule(ctx, "never"); err != nil || ok {
		t.Fatalf("CancelSchedule of an unknown id = %v, %v; want false", ok, err)
	}
	assertSchedules(t, o, s1b, s3)
	if ok, err := o.TakeSchedule(ctx, "s1"); err != nil || !ok {
		t.Fatalf("TakeSchedule(s1) = %v, %v; want true", ok, err)
	}
	if ok, err := o.TakeSchedule(ctx, "s1"); err != nil || ok {
		t.Fatalf("second TakeSchedule(s1) = %v, %v; want false", ok, err)
	}
	if ok, err := o.CancelSchedule(ctx, "s1"); err != nil || ok {
		t.Fatalf("CancelSchedule of a taken schedule = %v, %v; want false", ok, err)
	}
	if ok, err := o.TakeSchedule(ctx, "s2"); err != nil || ok {
		t.Fatalf("TakeSchedule of a cancelled schedule = %v, %v; want false", ok, err)
	}
	assertSchedules(t, o, s3)
	// Schedules are durable: the next owner, on any node, has them.
	release(t, o)
	o2 := claim(t, second(t, d), a.ID)
	assertSchedules(t, o2, s3)
}

func testTakeScheduleRace(t *testing.T, d Deployment) {
	ctx := testContext(t)
	a := create(t, d.Node, "take-race")
	o := claim(t, d.Node, a.ID)
	const n = 20
	for i := range n {
		if err := o.AddSchedule(ctx, backend.Schedule{ID: fmt.Sprint("t", i), ActorID: a.ID, At: at(i), Action: "fire", Args: json.RawMessage(`[]`)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		id := fmt.Sprint("t", i)
		var wins [2]bool
		var errs [2]error
		start := make(chan struct{})
		var wg sync.WaitGroup
		for g := range 2 {
			wg.Go(func() {
				<-start
				wins[g], errs[g] = o.TakeSchedule(ctx, id)
			})
		}
		close(start)
		wg.Wait()
		if errs[0] != nil || errs[1] != nil {
			t.Fatalf("TakeSchedule(%s): %v, %v", id, errs[0], errs[1])
		}
		if wins[0] == wins[1] {
			t.Fatalf("TakeSchedule(%s) raced: results %v, want exactly one true", id, wins)
		}
	}
	if ss, err := o.Schedules(ctx); err != nil || len(ss) != 0 {
		t.Fatalf("schedules left after taking all: %+v, %v", ss, err)
	}
}

func testDueSchedules(t *testing.T, d Deployment) {
	ctx := testContext(t)
	oa := claim(t, d.Node, create(t, d.Node, "due-a").ID)
	ob := claim(t, d.Node, create(t, d.Node, "due-b").ID)
	mk := func(o backend.Owner, id string, sec int) backend.Schedule {
		s := backend.Schedule{ID: id, ActorID: o.Actor().ID, At: at(sec), Action: "fire", Args: json.RawMessage(fmt.Sprintf(`[%q]`, id))}
		if err := o.AddSchedule(ctx, s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	a1 := mk(oa, "a1", 10)
	b2 := mk(ob, "b2", 20)
	a3 := mk(oa, "a3", 30)
	b4 := mk(ob, "b4", 40)
	_ = mk(oa, "a5", 50)
	n2 := second(t, d)
	for _, n := range []backend.Backend{d.Node, n2} {
		for _, tc := range []struct {
			now   int
			limit int
			want  []backend.Schedule
		}{
			{5, 10, nil},
			{10, 10, []backend.Schedule{a1}},
			{40, 10, []backend.Schedule{a1, b2, a3, b4}},
			{40, 2, []backend.Schedule{a1, b2}},
		} {
			got, err := n.DueSchedules(ctx, at(tc.now), tc.limit)
			if err != nil {
				t.Fatalf("DueSchedules(%d, %d): %v", tc.now, tc.limit, err)
			}
			if !schedulesEqual(got, tc.want) {
				t.Fatalf("DueSchedules(%d, %d) = %+v, want %+v", tc.now, tc.limit, got, tc.want)
			}
		}
	}
	// Reading does not take; taking does.
	if ok, err := oa.TakeSchedule(ctx, "a1"); err != nil || !ok {
		t.Fatalf("TakeSchedule(a1) = %v, %v", ok, err)
	}
	if ok, err := ob.CancelSchedule(ctx, "b2"); err != nil || !ok {
		t.Fatalf("CancelSchedule(b2) = %v, %v", ok, err)
	}
	got, err := n2.DueSchedules(ctx, at(40), 10)
	if err != nil || !schedulesEqual(got, []backend.Schedule{a3, b4}) {
		t.Fatalf("DueSchedules after take and cancel = %+v, %v; want a3, b4", got, err)
	}
}

// --- destroy ---

func testDestroy(t *testing.T, d Deployment) {
	ctx := testContext(t)
	a, err := d.Node.Create(ctx, "room", []string{"gone"}, json.RawMessage(`{"v":1}`))
	if err != nil {
		t.Fatal(err)
	}
	o := claim(t, d.Node, a.ID)
	seedFenceTargets(t, o)
	// A neighbour that must survive.
	keep := create(t, d.Node, "room-keep")
	keepOwner := claim(t, d.Node, keep.ID)
	seedFenceTargets(t, keepOwner)
	if err := o.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	waitLost(t, o)
	n2 := second(t, d)
	for i, n := range []backend.Backend{d.Node, n2} {
		if _, err := n.Lookup(ctx, a.ID); !errors.Is(err, backend.ErrNotFound) {
			t.Errorf("node %d: Lookup after Destroy: %v, want ErrNotFound", i, err)
		}
		if _, err := n.Get(ctx, "room", []string{"gone"}); !errors.Is(err, backend.ErrNotFound) {
			t.Errorf("node %d: Get after Destroy: %v, want ErrNotFound", i, err)
		}
		if evs, err := n.Events(ctx, a.ID, 0, 10); len(evs) != 0 || (err != nil && !errors.Is(err, backend.ErrNotFound)) {
			t.Errorf("node %d: Events after Destroy: %d events, %v", i, len(evs), err)
		}
		due, err := n.DueSchedules(ctx, at(1000), 10)
		if err != nil || len(due) != 1 || due[0].ActorID != keep.ID {
			t.Errorf("node %d: DueSchedules after Destroy: %+v, %v; want only the neighbour's", i, due, err)
		}
	}
	for _, w := range writes {
		if err := w.fn(ctx, o); !errors.Is(err, backend.ErrFenced) && !errors.Is(err, backend.ErrNotFound) {
			t.Errorf("%s through the Owner of a destroyed actor: %v, want ErrFenced or ErrNotFound", w.name, err)
		}
	}
	// The name and key are free again, for a new actor with nothing stored.
	b, created, err := n2.GetOrCreate(ctx, "room", []string{"gone"}, json.RawMessage(`{"v":2}`))
	if err != nil || !created || b.ID == a.ID {
		t.Fatalf("GetOrCreate after Destroy = %+v, created %v, %v; want a new actor", b, created, err)
	}
	if !jsonEqual(b.Input, json.RawMessage(`{"v":2}`)) {
		t.Errorf("the new actor has input %s", b.Input)
	}
	ob := claim(t, d.Node, b.ID)
	if ob.Generation() != 1 {
		t.Errorf("first Claim of the new actor: generation %d, want 1", ob.Generation())
	}
	if _, ok, err := ob.LoadState(ctx); err != nil || ok {
		t.Errorf("the new actor has a state: %v, %v", ok, err)
	}
	if evs, err := d.Node.Events(ctx, b.ID, 0, 10); err != nil || len(evs) != 0 {
		t.Errorf("the new actor has events: %+v, %v", evs, err)
	}
	if items, err := ob.List(ctx, "ns", "", 0); err != nil || len(items) != 0 {
		t.Errorf("the new actor has KV items: %+v, %v", items, err)
	}
	if ss, err := ob.Schedules(ctx); err != nil || len(ss) != 0 {
		t.Errorf("the new actor has schedules: %+v, %v", ss, err)
	}
	if ev, err := ob.Append(ctx, "first", json.RawMessage(`[]`)); err != nil || ev.Seq != 1 {
		t.Errorf("first Append of the new actor: seq %d, %v; want 1", ev.Seq, err)
	}
	// Create (not only GetOrCreate) works on a freed key too.
	if err := ob.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Node.Create(ctx, "room", []string{"gone"}, nil); err != nil {
		t.Errorf("Create after Destroy: %v", err)
	}
	// The neighbour kept everything.
	if s, ok, err := keepOwner.LoadState(ctx); err != nil || !ok || string(s) != "good" {
		t.Errorf("neighbour state: %q, %v, %v", s, ok, err)
	}
	if v, err := keepOwner.Get(ctx, "ns", "keep"); err != nil || string(v) != "good" {
		t.Errorf("neighbour KV: %q, %v", v, err)
	}
	if evs, err := d.Node.Events(ctx, keep.ID, 0, 10); err != nil || len(evs) != 1 {
		t.Errorf("neighbour events: %+v, %v", evs, err)
	}
}

// --- bus ---

func testBusRequest(t *testing.T, d Deployment) {
	ctx := testContext(t)
	a := create(t, d.Node, "bus")
	claim(t, d.Node, a.ID) // only the owner serves
	n2 := second(t, d)
	for i, n := range []backend.Backend{d.Node, n2} {
		if _, err := n.Bus().Request(ctx, a.ID, []byte("hello")); !errors.Is(err, backend.ErrNoOwner) {
			t.Fatalf("node %d: Request before Serve: %v, want ErrNoOwner", i, err)
		}
	}
	stop, err := d.Node.Bus().Serve(a.ID, func(ctx context.Context, req []byte) []byte {
		return append([]byte("echo:"), req...)
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range []backend.Backend{d.Node, n2} {
		for _, req := range [][]byte{[]byte("hello"), {}, bytes.Repeat([]byte{0, 1, 2, 255}, 16<<10)} {
			got, err := n.Bus().Request(ctx, a.ID, req)
			if err != nil || !bytes.Equal(got, append([]byte("echo:"), req...)) {
				t.Fatalf("node %d: Request(%d bytes) = %d bytes, %v", i, len(req), len(got), err)
			}
		}
		// Another actor is not served.
		if _, err := n.Bus().Request(ctx, "not-"+a.ID, []byte("x")); !errors.Is(err, backend.ErrNoOwner) {
			t.Fatalf("node %d: Request to an unserved actor: %v, want ErrNoOwner", i, err)
		}
	}
	stop()
	stop() // idempotent
	for i, n := range []backend.Backend{d.Node, n2} {
		if _, err := n.Bus().Request(ctx, a.ID, []byte("hello")); !errors.Is(err, backend.ErrNoOwner) {
			t.Fatalf("node %d: Request after stop: %v, want ErrNoOwner", i, err)
		}
	}
	// Serving again after stop works, here from the other node.
	stop2, err := n2.Bus().Serve(a.ID, func(ctx context.Context, req []byte) []byte { return []byte("again") })
	if err != nil {
		t.Fatalf("Serve after stop: %v", err)
	}
	defer stop2()
	if got, err := d.Node.Bus().Request(ctx, a.ID, nil); err != nil || string(got) != "again" {
		t.Fatalf("Request to the new server: %q, %v", got, err)
	}
}

func testBusRequestConcurrent(t *testing.T, d Deployment) {
	ctx := testContext(t)
	a := create(t, d.Node, "bus-conc")
	const n = 8
	arrived := make(chan struct{}, n)
	all := make(chan struct{})
	stop, err := d.Node.Bus().Serve(a.ID, func(ctx context.Context, req []byte) []byte {
		arrived <- struct{}{}
		// Every request waits until all have arrived: this only finishes
		// if the handler runs concurrently.
		select {
		case <-all:
		case <-ctx.Done():
		}
		return req
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	go func() {
		for range n {
			select {
			case <-arrived:
			case <-ctx.Done():
				return
			}
		}
		close(all)
	}()
	nodes := []backend.Backend{d.Node, second(t, d)}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			want := fmt.Sprint("req-", i)
			got, err := nodes[i%2].Bus().Request(ctx, a.ID, []byte(want))
			if err == nil && string(got) != want {
				err = fmt.Errorf("answer %q, want %q", got, want)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("request %d: %v", i, err)
		}
	}
}

func testBusRequestCancel(t *testing.T, d Deployment) {
	a := create(t, d.Node, "bus-cancel")
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	defer close(release)
	stop, err := d.Node.Bus().Serve(a.ID, func(ctx context.Context, req []byte) []byte {
		entered <- struct{}{}
		select {
		case <-ctx.Done():
		case <-release:
		}
		return []byte("late")
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	tctx := testContext(t)
	ctx, cancel := context.WithCancel(tctx)
	done := make(chan error, 1)
	go func() {
		_, err := second(t, d).Bus().Request(ctx, a.ID, []byte("slow"))
		done <- err
	}()
	select {
	case <-entered:
	case <-tctx.Done():
		t.Fatal("the handler was never called")
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Request after its ctx was cancelled: %v, want context.Canceled", err)
		}
	case <-tctx.Done():
		t.Fatal("Request did not return after its ctx was cancelled")
	}
}

// collector gathers the messages a subscription delivers.
type collector struct {
	ch chan []byte
}

func newCollector(n int) *collector { return &collector{ch: make(chan []byte, n)} }

func (c *collector) fn(msg []byte) { c.ch <- slices.Clone(msg) }

// next waits for the next message.
func (c *collector) next(t *testing.T, ctx context.Context) []byte {
	t.Helper()
	select {
	case m := <-c.ch:
		return m
	case <-ctx.Done():
		t.Fatal("timed out waiting for a published message")
		return nil
	}
}

// none checks that nothing was delivered.
func (c *collector) none(t *testing.T, what string) {
	t.Helper()
	select {
	case m := <-c.ch:
		t.Fatalf("%s: got message %q", what, m)
	default:
	}
}

func subscribe(t *testing.T, n backend.Backend, actorID string, c *collector) func() {
	t.Helper()
	cancel, err := n.Bus().Subscribe(actorID, c.fn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cancel)
	return cancel
}

func testBusPublishOrder(t *testing.T, d Deployment) {
	ctx := testContext(t)
	a := create(t, d.Node, "pub")
	const perPublisher = 200
	n2 := second(t, d)
	local, remote := newCollector(2*perPublisher), newCollector(2*perPublisher)
	subscribe(t, d.Node, a.ID, local)
	subscribe(t, n2, a.ID, remote)
	// Publishing to an actor nobody subscribed to is fine.
	if err := d.Node.Bus().Publish(ctx, "nobody-"+a.ID, []byte("x")); err != nil {
		t.Fatalf("Publish without subscribers: %v", err)
	}
	// Two publishers, one per node, each with its own order.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for p, n := range []backend.Backend{d.Node, n2} {
		wg.Go(func() {
			buf := make([]byte, 0, 16)
			for i := range perPublisher {
				// The same buffer every time: the bus must not keep it.
				buf = fmt.Appendf(buf[:0], "%d:%d", p, i)
				if err := n.Bus().Publish(ctx, a.ID, buf); err != nil {
					errs[p] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for name, c := range map[string]*collector{"local": local, "remote": remote} {
		next := [2]int{}
		for range 2 * perPublisher {
			var p, i int
			m := c.next(t, ctx)
			if _, err := fmt.Sscanf(string(m), "%d:%d", &p, &i); err != nil || p < 0 || p > 1 {
				t.Fatalf("%s subscriber: unexpected message %q", name, m)
			}
			if i != next[p] {
				t.Fatalf("%s subscriber: publisher %d's message %d arrived when %d was due (order lost)", name, p, i, next[p])
			}
			next[p]++
		}
		c.none(t, name+" subscriber after all messages")
	}
}

func testBusSubscribeCancel(t *testing.T, d Deployment) {
	ctx := testContext(t)
	a := create(t, d.Node, "unsub")
	n2 := second(t, d)
	gone, stays := newCollector(128), newCollector(128)
	cancelGone := subscribe(t, n2, a.ID, gone)
	subscribe(t, n2, a.ID, stays)
	if err := d.Node.Bus().Publish(ctx, a.ID, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if m := gone.next(t, ctx); string(m) != "one" {
		t.Fatalf("got %q, want one", m)
	}
	if m := stays.next(t, ctx); string(m) != "one" {
		t.Fatalf("got %q, want one", m)
	}
	cancelGone()
	cancelGone() // idempotent
	// Subscribers may be delivered to independently, so no message proves
	// that a cancelled one will never get "two": many messages make a
	// broken cancel show up, and a correct one never fails here.
	const after = 50
	for i := range after {
		if err := d.Node.Bus().Publish(ctx, a.ID, fmt.Appendf(nil, "two-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range after {
		if m, want := stays.next(t, ctx), fmt.Sprint("two-", i); string(m) != want {
			t.Fatalf("got %q, want %s", m, want)
		}
	}
	gone.none(t, "a cancelled subscription")
	// Subscribing again works.
	again := newCollector(4)
	subscribe(t, d.Node, a.ID, again)
	if err := n2.Bus().Publish(ctx, a.ID, []byte("three")); err != nil {
		t.Fatal(err)
	}
	if m := again.next(t, ctx); string(m) != "three" {
		t.Fatalf("got %q, want three", m)
	}
	if m := stays.next(t, ctx); string(m) != "three" {
		t.Fatalf("got %q, want three", m)
	}
	gone.none(t, "a cancelled subscription")
}

func testBusActorsIsolated(t *testing.T, d Deployment) {
	ctx := testContext(t)
	a, b := create(t, d.Node, "iso-a"), create(t, d.Node, "iso-b")
	ca := newCollector(4)
	subscribe(t, second(t, d), a.ID, ca)
	if err := d.Node.Bus().Publish(ctx, b.ID, []byte("for b")); err != nil {
		t.Fatal(err)
	}
	if err := d.Node.Bus().Publish(ctx, a.ID, []byte("for a")); err != nil {
		t.Fatal(err)
	}
	if m := ca.next(t, ctx); string(m) != "for a" {
		t.Fatalf("subscriber of a got %q", m)
	}
	ca.none(t, "subscriber of a")
}

// --- context and close ---

func testContextCanceled(t *testing.T, d Deployment) {
	a := create(t, d.Node, "ctx")
	o := claim(t, d.Node, a.ID)
	stop, err := d.Node.Bus().Serve(a.ID, func(ctx context.Context, req []byte) []byte { return req })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, c := range []struct {
		name string
		fn   func() error
	}{
		{"GetOrCreate", func() error { _, _, err := d.Node.GetOrCreate(ctx, "ctx", []string{"new"}, nil); return err }},
		{"Create", func() error { _, err := d.Node.Create(ctx, "ctx", []string{"new2"}, nil); return err }},
		{"Claim", func() error { _, err := d.Node.Claim(ctx, create(t, d.Node, "ctx-claim").ID); return err }},
		{"SaveState", func() error { return o.SaveState(ctx, []byte("x")) }},
		{"Append", func() error { _, err := o.Append(ctx, "x", json.RawMessage(`[]`)); return err }},
		{"Put", func() error { return o.Put(ctx, "ns", "k", []byte("v")) }},
		{"Request", func() error { _, err := d.Node.Bus().Request(ctx, a.ID, []byte("x")); return err }},
	} {
		if err := c.fn(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled ctx: %v, want context.Canceled", c.name, err)
		}
	}
	live := testContext(t)
	if _, ok, err := o.LoadState(live); err != nil || ok {
		t.Errorf("a SaveState with a cancelled ctx landed: ok %v, %v", ok, err)
	}
	if evs, err := d.Node.Events(live, a.ID, 0, 10); err != nil || len(evs) != 0 {
		t.Errorf("an Append with a cancelled ctx landed: %+v, %v", evs, err)
	}
}

func testClose(t *testing.T, d Deployment) {
	ctx := testContext(t)
	a := create(t, d.Node, "close")
	o := claim(t, d.Node, a.ID)
	stop, err := d.Node.Bus().Serve(a.ID, func(ctx context.Context, req []byte) []byte { return req })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	c := newCollector(4)
	subscribe(t, d.Node, a.ID, c)
	// A second node sees the first one's Close release its owners.
	var n2 backend.Backend
	if d.Second != nil {
		n2 = d.Second(t)
	}
	if err := d.Node.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := d.Node.Close(); err != nil && !errors.Is(err, backend.ErrClosed) {
		t.Fatalf("second Close: %v, want nil or ErrClosed", err)
	}
	waitLost(t, o)
	n := d.Node
	bus := n.Bus()
	for _, c := range []struct {
		name string
		fn   func() error
	}{
		{"GetOrCreate", func() error { _, _, err := n.GetOrCreate(ctx, "close", []string{"x"}, nil); return err }},
		{"Create", func() error { _, err := n.Create(ctx, "close", []string{"y"}, nil); return err }},
		{"Get", func() error { _, err := n.Get(ctx, "close", []string{"x"}); return err }},
		{"Lookup", func() error { _, err := n.Lookup(ctx, a.ID); return err }},
		{"Claim", func() error { _, err := n.Claim(ctx, a.ID); return err }},
		{"Events", func() error { _, err := n.Events(ctx, a.ID, 0, 10); return err }},
		{"DueSchedules", func() error { _, err := n.DueSchedules(ctx, at(100), 10); return err }},
		{"Serve", func() error {
			_, err := bus.Serve("other", func(ctx context.Context, req []byte) []byte { return nil })
			return err
		}},
		{"Request", func() error { _, err := bus.Request(ctx, a.ID, nil); return err }},
		{"Publish", func() error { return bus.Publish(ctx, a.ID, nil) }},
		{"Subscribe", func() error { _, err := bus.Subscribe(a.ID, func([]byte) {}); return err }},
	} {
		if err := c.fn(); !errors.Is(err, backend.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", c.name, err)
		}
	}
	for _, w := range writes {
		if err := w.fn(ctx, o); !errors.Is(err, backend.ErrClosed) && !errors.Is(err, backend.ErrFenced) {
			t.Errorf("%s through an Owner of a closed backend: %v, want ErrClosed or ErrFenced", w.name, err)
		}
	}
	if err := o.Release(ctx); err != nil && !errors.Is(err, backend.ErrClosed) {
		t.Errorf("Release after Close: %v, want nil or ErrClosed", err)
	}
	if n2 != nil {
		o2, err := n2.Claim(ctx, a.ID)
		if err != nil {
			t.Fatalf("Claim on another node after Close: %v (Close must release its owners)", err)
		}
		if o2.Generation() != 2 {
			t.Errorf("generation %d, want 2", o2.Generation())
		}
	}
}

// --- helpers ---

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// second is the deployment's second node, or its only one.
func second(t *testing.T, d Deployment) backend.Backend {
	if d.Second == nil {
		return d.Node
	}
	return d.Second(t)
}

var actorCounter struct {
	sync.Mutex
	n int
}

// create makes a new actor with a unique key.
func create(t *testing.T, n backend.Backend, name string) backend.Actor {
	t.Helper()
	actorCounter.Lock()
	actorCounter.n++
	k := fmt.Sprint("k", actorCounter.n)
	actorCounter.Unlock()
	a, err := n.Create(testContext(t), name, []string{k}, nil)
	if err != nil {
		t.Fatalf("Create(%s, %s): %v", name, k, err)
	}
	return a
}

func claim(t *testing.T, n backend.Backend, actorID string) backend.Owner {
	t.Helper()
	o, err := n.Claim(testContext(t), actorID)
	if err != nil {
		t.Fatalf("Claim(%s): %v", actorID, err)
	}
	return o
}

func release(t *testing.T, o backend.Owner) {
	t.Helper()
	if err := o.Release(testContext(t)); err != nil {
		t.Fatalf("Release: %v", err)
	}
}

// nodeOwner is an Owner together with the node that claimed it.
type nodeOwner struct {
	backend.Owner
	node backend.Backend
}

func wrap(n backend.Backend, o backend.Owner) nodeOwner { return nodeOwner{o, n} }

func (o nodeOwner) Events(ctx context.Context) ([]backend.Event, error) {
	return o.node.Events(ctx, o.Actor().ID, 0, 1000)
}

func (o nodeOwner) Lookup(ctx context.Context) (backend.Actor, error) {
	return o.node.Lookup(ctx, o.Actor().ID)
}

// waitLost waits, bounded, for o's Lost channel. A distributed driver may
// notice the loss a little after the write that failed.
func waitLost(t *testing.T, o backend.Owner) {
	t.Helper()
	ctx := testContext(t)
	select {
	case <-o.Lost():
	case <-ctx.Done():
		t.Fatal("Lost() was not closed for an Owner that is no longer live")
	}
}

func assertNotLost(t *testing.T, o backend.Owner) {
	t.Helper()
	select {
	case <-o.Lost():
		t.Fatal("Lost() is closed for the live Owner")
	default:
	}
}

func assertSameActor(t *testing.T, want, got backend.Actor) {
	t.Helper()
	if got.ID != want.ID || got.Name != want.Name || !slices.Equal(got.Key, want.Key) ||
		!got.CreatedAt.Equal(want.CreatedAt) || !jsonEqual(got.Input, want.Input) {
		t.Fatalf("actor %+v, want %+v", got, want)
	}
}

func assertSchedules(t *testing.T, o backend.Owner, want ...backend.Schedule) {
	t.Helper()
	got, err := o.Schedules(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if !schedulesEqual(got, want) {
		t.Fatalf("Schedules = %+v, want %+v", got, want)
	}
}

func schedulesEqual(got, want []backend.Schedule) bool {
	return slices.EqualFunc(got, want, func(g, w backend.Schedule) bool {
		return g.ID == w.ID && g.ActorID == w.ActorID && g.At.Equal(w.At) && g.Action == w.Action && jsonEqual(g.Args, w.Args)
	})
}

// at is a fixed instant plus sec seconds, with milliseconds so that a driver
// that drops them is caught.
func at(sec int) time.Time {
	return time.UnixMilli(1_700_000_000_123).Add(time.Duration(sec) * time.Second)
}

func seqs(evs []backend.Event) []uint64 {
	var s []uint64
	for _, e := range evs {
		s = append(s, e.Seq)
	}
	return s
}

// jsonEqual compares JSON by value; two empty values are equal.
func jsonEqual(a, b json.RawMessage) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	xs, _ := json.Marshal(x)
	ys, _ := json.Marshal(y)
	return bytes.Equal(xs, ys)
}
