package sandboxagent

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/coder/quartz"
)

// These tests pin issue 9's SDK rule: every call that waits — for a lock,
// the health gate, a restore, the store or an answer — returns when its own
// context ends, with the context's error wrapped. The scenario is the one
// observed in the field: the connection to a sleeping sandbox was lost, a
// restore is stuck in the health gate, and a prompt with a deadline must
// not wait for the gate to give up.

// guard bounds how long a test waits for a call that must return at once:
// it is not synchronisation (channels are), only a way to fail instead of
// hanging when the code under test ignores its context.
const guard = 5 * time.Second

// stuckRig is a client whose health gate never succeeds: every health
// check blocks until the client closes (a server that accepted the
// connection and went to sleep) and its attempt timeout runs on a fake
// clock that is never advanced. Its session "s" is stored as bound to a
// connection that is gone, so any use of it must restore it first.
type stuckRig struct {
	c       *Client
	s       *Session
	checked chan struct{} // a health check started, i.e. a restore is inside the gate
}

func newStuckRig(t *testing.T, store SessionStore) *stuckRig {
	t.Helper()
	if store == nil {
		store = NewMemoryStore(MemoryStoreOptions{})
	}
	c, err := connect(t.Context(), Options{
		BaseURL: "http://127.0.0.1:1", Store: store, Logger: slog.New(slog.DiscardHandler),
		Health: HealthOptions{Disabled: true},
	}, attachment{clock: quartz.NewMock(t)})
	if err != nil {
		t.Fatal(err)
	}
	r := &stuckRig{c: c, checked: make(chan struct{}, 1)}
	g := newHealthGate(c, HealthOptions{Timeout: -1})
	g.check = func(ctx context.Context) error {
		select {
		case r.checked <- struct{}{}:
		default:
		}
		<-ctx.Done()
		return ctx.Err()
	}
	c.gate = g
	opts, _ := json.Marshal([]ConfigOption{
		{ID: "model", Name: "Model", Type: "select", Category: "model", Options: []ConfigOptionValue{{Value: "m1", Name: "M1"}}},
		{ID: "effort", Name: "Effort", Type: "select", Category: "thought_level", Options: []ConfigOptionValue{{Value: "high", Name: "High"}}},
	})
	modes, _ := json.Marshal(SessionModes{CurrentModeID: "plan", AvailableModes: []SessionMode{{ID: "plan", Name: "Plan"}}})
	rec := SessionRecord{
		ID: "s", Agent: "mock", AgentSessionID: "old", LastConnectionID: "gone",
		CreatedAt: 1, SessionInit: json.RawMessage(`{"cwd":"/","mcpServers":[]}`), ConfigOptions: opts, Modes: modes,
	}
	if err := store.UpdateSession(t.Context(), rec); err != nil {
		t.Fatal(err)
	}
	r.s = c.handle(rec)
	return r
}

// await returns the result of a call that must end within guard.
func await(t *testing.T, what string, errc <-chan error) error {
	t.Helper()
	select {
	case err := <-errc:
		return err
	case <-time.After(guard):
		t.Fatalf("%s ignored its context: still waiting after %s", what, guard)
		return nil
	}
}

// checkCtxErr fails unless err is ctx's error, wrapped with a word on what
// was being waited for.
func checkCtxErr(t *testing.T, what string, err error, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: err = %v, want one wrapping %v", what, err, want)
	}
	if err.Error() == want.Error() {
		t.Fatalf("%s: bare %q: the error should say what was being waited for", what, err)
	}
}

// entryPoints are the SDK calls that can wait on a session's restore.
var entryPoints = []struct {
	name string
	call func(ctx context.Context, r *stuckRig) error
}{
	{"Prompt", func(ctx context.Context, r *stuckRig) error { _, err := r.s.Prompt(ctx, "hi"); return err }},
	{"PromptContent", func(ctx context.Context, r *stuckRig) error {
		_, err := r.s.PromptContent(ctx, TextBlock("hi"))
		return err
	}},
	{"Call", func(ctx context.Context, r *stuckRig) error { _, err := r.s.Call(ctx, "x/y", nil); return err }},
	{"Notify", func(ctx context.Context, r *stuckRig) error { return r.s.Notify(ctx, "x/y", nil) }},
	{"Cancel", func(ctx context.Context, r *stuckRig) error { return r.s.Cancel(ctx) }},
	{"SetMode", func(ctx context.Context, r *stuckRig) error { return r.s.SetMode(ctx, "plan") }},
	{"SetModel", func(ctx context.Context, r *stuckRig) error { return r.s.SetModel(ctx, "m1") }},
	{"SetThoughtLevel", func(ctx context.Context, r *stuckRig) error { return r.s.SetThoughtLevel(ctx, "high") }},
	{"SetConfigOption", func(ctx context.Context, r *stuckRig) error { return r.s.SetConfigOption(ctx, "model", "m1") }},
	{"ResumeSession", func(ctx context.Context, r *stuckRig) error { _, err := r.c.ResumeSession(ctx, "s"); return err }},
	{"ResumeOrCreateSession", func(ctx context.Context, r *stuckRig) error {
		_, err := r.c.ResumeOrCreateSession(ctx, CreateSessionRequest{ID: "s", Agent: "mock"})
		return err
	}},
	{"CreateSession", func(ctx context.Context, r *stuckRig) error {
		_, err := r.c.CreateSession(ctx, CreateSessionRequest{ID: "s", Agent: "mock", Cwd: "/"})
		return err
	}},
	{"CreateSessionOtherID", func(ctx context.Context, r *stuckRig) error {
		_, err := r.c.CreateSession(ctx, CreateSessionRequest{ID: "t", Agent: "mock", Cwd: "/"})
		return err
	}},
	{"ListAgents", func(ctx context.Context, r *stuckRig) error { _, err := r.c.ListAgents(ctx, AgentQuery{}); return err }},
	{"ConnectProcessTerminal", func(ctx context.Context, r *stuckRig) error {
		_, err := r.c.ConnectProcessTerminal(ctx, "p")
		return err
	}},
	{"ConfigOptionsUncached", func(ctx context.Context, r *stuckRig) error {
		if err := r.s.update(ctx, func(rec *SessionRecord) { rec.ConfigOptions = nil }); err != nil {
			return err
		}
		_, err := r.s.ConfigOptions(ctx)
		return err
	}},
}

// TestCallsHonourContextWhileRestoreIsStuck: a restore started in the
// background (as after a lost connection) is stuck in the health gate,
// holding the session; every later call with a short deadline, or an
// already cancelled context, returns its context's error at once instead of
// waiting for the gate (before the fix: blocked on the session's mutex
// until the gate gave up).
func TestCallsHonourContextWhileRestoreIsStuck(t *testing.T) {
	r := newStuckRig(t, nil)
	restore := make(chan error, 1)
	go func() {
		_, _, err := r.s.ensureBound(r.c.ctx) // what liveConn.watch does
		restore <- err
	}()
	<-r.checked // the restore holds the session and waits in the gate
	for _, ep := range entryPoints {
		for _, kind := range []string{"deadline", "cancelled"} {
			t.Run(ep.name+"/"+kind, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
				want := context.DeadlineExceeded
				if kind == "cancelled" {
					cancel()
					want = context.Canceled
				}
				defer cancel()
				errc := make(chan error, 1)
				go func() { errc <- ep.call(ctx, r) }()
				checkCtxErr(t, ep.name, await(t, ep.name, errc), want)
			})
		}
	}
	// The background restore itself ends when the client closes.
	if err := r.c.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := await(t, "background restore", restore); !errors.Is(err, context.Canceled) {
		t.Fatalf("background restore: %v", err)
	}
}

// TestFirstCallStuckInRestoreHonoursItsContext: the call that starts the
// restore returns when its own context ends, while the gate keeps trying
// in the background; and once it has, the session is free for the next
// call (which then waits in the gate in its turn, until its own deadline).
func TestFirstCallStuckInRestoreHonoursItsContext(t *testing.T) {
	for _, ep := range entryPoints {
		t.Run(ep.name, func(t *testing.T) {
			r := newStuckRig(t, nil)
			defer r.c.Close(context.Background())
			ctx, cancel := context.WithCancel(t.Context())
			errc := make(chan error, 1)
			go func() { errc <- ep.call(ctx, r) }()
			<-r.checked // inside the gate (holding the session if it took it)
			cancel()
			checkCtxErr(t, ep.name, await(t, ep.name, errc), context.Canceled)

			ctx2, cancel2 := context.WithTimeout(t.Context(), 20*time.Millisecond)
			defer cancel2()
			go func() { errc <- r.s.Notify(ctx2, "x/y", nil) }()
			checkCtxErr(t, "next Notify", await(t, "next Notify", errc), context.DeadlineExceeded)
		})
	}
}

// blockingStore is a store whose UpdateSession blocks, once armed, until
// the caller's context ends (a database that stopped answering).
type blockingStore struct {
	SessionStore
	armed   chan struct{} // closed to arm
	entered chan struct{}
}

func (b *blockingStore) UpdateSession(ctx context.Context, rec SessionRecord) error {
	select {
	case <-b.armed:
		select {
		case b.entered <- struct{}{}:
		default:
		}
		<-ctx.Done()
		return ctx.Err()
	default:
		return b.SessionStore.UpdateSession(ctx, rec)
	}
}

// TestRecordUpdatesHonourContextWhileStoreIsStuck: a record update stuck
// in the store holds the client's record lock; another update (here a
// DestroySession) with a short deadline returns with its context's error
// instead of queueing behind it (before the fix: blocked on recMu).
func TestRecordUpdatesHonourContextWhileStoreIsStuck(t *testing.T) {
	bs := &blockingStore{SessionStore: NewMemoryStore(MemoryStoreOptions{}), armed: make(chan struct{}), entered: make(chan struct{}, 1)}
	r := newStuckRig(t, bs)
	defer r.c.Close(context.Background())
	close(bs.armed)
	ctx1, cancel1 := context.WithCancel(t.Context())
	first := make(chan error, 1)
	go func() { first <- r.c.DestroySession(ctx1, "s") }()
	<-bs.entered
	for _, kind := range []string{"deadline", "cancelled"} {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		want := context.DeadlineExceeded
		if kind == "cancelled" {
			cancel()
			want = context.Canceled
		}
		errc := make(chan error, 1)
		go func() { errc <- r.c.DestroySession(ctx, "s") }()
		checkCtxErr(t, "second DestroySession/"+kind, await(t, "second DestroySession", errc), want)
		cancel()
	}
	cancel1()
	if err := await(t, "first DestroySession", first); !errors.Is(err, context.Canceled) {
		t.Fatalf("first DestroySession: %v", err)
	}
}

// TestCloseHonoursItsContext: Close waits for the client's background work
// only as long as its context allows.
func TestCloseHonoursItsContext(t *testing.T) {
	r := newStuckRig(t, nil)
	release := make(chan struct{})
	r.c.wg.Add(1) // background work that outlives Close's context
	go func() {
		defer r.c.wg.Done()
		<-release
	}()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	errc := make(chan error, 1)
	go func() { errc <- r.c.Close(ctx) }()
	checkCtxErr(t, "Close", await(t, "Close", errc), context.Canceled)
	close(release)
	if err := r.c.Close(context.Background()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	r.c.wg.Wait()
}
