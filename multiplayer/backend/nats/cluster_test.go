package natsbackend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/multiplayer/backend"
	"github.com/sandbox-agent-go/sandbox-agent/multiplayer/internal/natstest"
)

// claimUntil retries Claim while another node owns the actor, until ctx is
// done; it returns the Owner and when the claim succeeded.
func claimUntil(ctx context.Context, t *testing.T, b *Backend, id string) (backend.Owner, time.Time) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		o, err := b.Claim(ctx, id)
		if err == nil {
			return o, time.Now()
		}
		var owned *backend.OwnedError
		if !errors.As(err, &owned) && ctx.Err() == nil {
			// JetStream may be electing a leader: transient, retried.
			t.Logf("claim %s on %s: %v", id, b.NodeID(), err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("claim %s on %s: not taken over: %v", id, b.NodeID(), err)
		case <-tick.C:
		}
	}
}

func mustAppend(t *testing.T, o backend.Owner, name string) backend.Event {
	t.Helper()
	e, err := o.Append(t.Context(), name, json.RawMessage(`[]`))
	if err != nil {
		t.Fatalf("Append %s: %v", name, err)
	}
	return e
}

// checkEvents reads all events of id and checks Seq runs 1..n without gaps,
// and that after the first event of generation gen no older generation
// appears.
func checkEvents(t *testing.T, b *Backend, id string, gen uint64) []backend.Event {
	t.Helper()
	var evs []backend.Event
	for {
		page, err := b.Events(t.Context(), id, uint64(len(evs)), 500)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		evs = append(evs, page...)
	}
	seen := false
	for i, e := range evs {
		if e.Seq != uint64(i+1) {
			t.Fatalf("event %d has Seq %d: a gap or a duplicate", i, e.Seq)
		}
		if e.Generation == gen {
			seen = true
		} else if seen && e.Generation < gen {
			t.Errorf("event %d (%s) of generation %d after generation %d took over", e.Seq, e.Name, e.Generation, gen)
		}
	}
	return evs
}

// TestLeaseSelfFence: a node whose renewals stop fences itself (Lost
// closes, writes fail) before its lease expires on the server, and another
// node claims only after that; then the node takes a new lease.
func TestLeaseSelfFence(t *testing.T) {
	s := startServer(t)
	opts := Options{Prefix: "sf", LeaseTTL: time.Second}
	a, b := openNode(t, s, opts), openNode(t, s, opts)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	act, err := a.Create(ctx, "doc", []string{"1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	oa, err := a.Claim(ctx, act.ID)
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, oa, "a1")
	a.pause(false)
	paused := time.Now()
	var lostAt time.Time
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-oa.Lost():
			lostAt = time.Now()
		case <-ctx.Done():
		}
	}()
	ob, claimedAt := claimUntil(ctx, t, b, act.ID)
	<-done
	if lostAt.IsZero() {
		t.Fatal("the paused node's Owner was never lost")
	}
	t.Logf("self-fenced after %v, taken over after %v (TTL %v)", lostAt.Sub(paused), claimedAt.Sub(paused), opts.LeaseTTL)
	if !lostAt.Before(claimedAt) {
		t.Errorf("the old owner was fenced at %v, after the new claim at %v", lostAt.Sub(paused), claimedAt.Sub(paused))
	}
	if _, err := oa.Append(ctx, "a2", nil); !errors.Is(err, backend.ErrFenced) {
		t.Errorf("Append of the self-fenced owner: %v, want ErrFenced", err)
	}
	mustAppend(t, ob, "b1")
	checkEvents(t, b, act.ID, ob.Generation())

	// Back from the pause: a new lease (epoch), and it can own again.
	a.resume()
	if err := ob.Release(ctx); err != nil {
		t.Fatal(err)
	}
	oa2, _ := claimUntil(ctx, t, a, act.ID)
	if oa2.Generation() != 3 {
		t.Errorf("generation %d after the second takeover, want 3", oa2.Generation())
	}
	mustAppend(t, oa2, "a3")
}

// TestCluster runs three servers and three nodes (R3): a paused owner is
// fenced by the stream when it comes back, and a killed owner node's actor
// is served elsewhere within LeaseTTL + 1 s with no acknowledged event lost.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("3-node cluster")
	}
	began := time.Now()
	srv := natstest.Cluster(t, 3)
	const ttl = 2 * time.Second
	opts := Options{Prefix: "mp", Replicas: 3, LeaseTTL: ttl}
	nodes := make([]*Backend, 3)
	for i, s := range srv {
		o := opts
		o.NodeID = fmt.Sprintf("n%d", i)
		nodes[i] = openNode(t, s, o)
	}
	t.Logf("cluster formed and 3 nodes open in %v", time.Since(began))
	ctx, cancel := context.WithTimeout(t.Context(), 25*time.Second)
	defer cancel()

	t.Run("PausedOwnerFenced", func(t *testing.T) {
		a, b := nodes[1], nodes[2]
		act, err := a.Create(ctx, "doc", []string{"paused"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		oa, err := a.Claim(ctx, act.ID)
		if err != nil {
			t.Fatal(err)
		}
		mustAppend(t, oa, "a1")
		if err := oa.SaveState(ctx, []byte("a")); err != nil {
			t.Fatal(err)
		}
		// Paused: no renewals, and no self-fence either — as if the whole
		// process had stopped and its timers had not run.
		a.pause(true)
		paused := time.Now()
		ob, at := claimUntil(ctx, t, b, act.ID)
		t.Logf("paused owner taken over after %v (TTL %v)", at.Sub(paused), ttl)
		if ob.Generation() != oa.Generation()+1 {
			t.Fatalf("generation %d, want %d", ob.Generation(), oa.Generation()+1)
		}
		mustAppend(t, ob, "b1")
		// A comes back and writes, believing it still owns the actor.
		if err := oa.SaveState(ctx, []byte("stale")); !errors.Is(err, backend.ErrFenced) {
			t.Errorf("SaveState of the paused owner: %v, want ErrFenced", err)
		}
		if _, err := oa.Append(ctx, "stale", nil); !errors.Is(err, backend.ErrFenced) {
			t.Errorf("Append of the paused owner: %v, want ErrFenced", err)
		}
		if err := oa.Put(ctx, "ns", "k", []byte("stale")); !errors.Is(err, backend.ErrFenced) {
			t.Errorf("Put of the paused owner: %v, want ErrFenced", err)
		}
		select {
		case <-oa.Lost():
		default:
			t.Error("the paused owner's Lost is open after a fenced write")
		}
		evs := checkEvents(t, nodes[0], act.ID, ob.Generation())
		if len(evs) != 2 || evs[0].Name != "a1" || evs[1].Name != "b1" {
			t.Errorf("events %+v, want a1 then b1", evs)
		}
		if s, ok, err := ob.LoadState(ctx); err != nil || !ok || string(s) != "a" {
			t.Errorf("state %q %v %v, want the paused owner's last good write", s, ok, err)
		}
		a.resume()
	})

	t.Run("KilledOwnerNode", func(t *testing.T) {
		dead, heir := nodes[0], nodes[1]
		act, err := dead.Create(ctx, "doc", []string{"killed"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		od, err := dead.Claim(ctx, act.ID)
		if err != nil {
			t.Fatal(err)
		}
		// Moved off the server about to die, so that its death tests the
		// lease rather than Raft's election timeout.
		natstest.MoveLeaders(ctx, t, heir.nc, srv[0].Name(), "KV_mp_actors", "KV_mp_nodes", "mp_data")
		// The owner appends as fast as it can until it dies; acked holds
		// every Seq JetStream acknowledged.
		var acked []uint64
		var wg sync.WaitGroup
		stop := make(chan struct{})
		busy := make(chan struct{}) // closed after 50 acknowledged appends
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				e, err := od.Append(ctx, fmt.Sprintf("d%d", i), nil)
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					// Before the kill: a stream leader moving (retry);
					// after it: the end (stop).
					continue
				}
				acked = append(acked, e.Seq)
				if len(acked) == 50 {
					close(busy)
				}
			}
		})
		select {
		case <-busy:
		case <-ctx.Done():
			t.Fatal("the owner did not append 50 events")
		}
		killed := time.Now()
		srv[0].Shutdown()
		dead.nc.Close()
		close(stop)
		wg.Wait()
		oh, at := claimUntil(ctx, t, heir, act.ID)
		took := at.Sub(killed)
		t.Logf("killed owner node: actor served on %s after %v (TTL %v), %d events acknowledged before the kill", heir.NodeID(), took, ttl, len(acked))
		if took > ttl+time.Second {
			t.Errorf("takeover took %v, want at most TTL + 1 s = %v", took, ttl+time.Second)
		}
		e := mustAppend(t, oh, "h1")
		evs := checkEvents(t, heir, act.ID, oh.Generation())
		if len(acked) == 0 {
			t.Fatal("no event was acknowledged before the kill")
		}
		last := acked[len(acked)-1]
		if uint64(len(evs)) < last || e.Seq != uint64(len(evs)) {
			t.Errorf("%d events after takeover (last acked %d, heir's first %d): an acknowledged event was lost", len(evs), last, e.Seq)
		}
		// Events run 1..len(evs) (checkEvents), so every acknowledged Seq up
		// to the last is there; acknowledgements only ever grow.
		for i := 1; i < len(acked); i++ {
			if acked[i] <= acked[i-1] {
				t.Fatalf("acknowledged Seq %d after %d", acked[i], acked[i-1])
			}
		}
	})
	t.Logf("cluster test total %v", time.Since(began))
}
