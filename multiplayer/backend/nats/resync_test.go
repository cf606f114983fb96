package natsbackend

import (
	"context"
	"encoding/json"
	"testing"
	"time"
)

// TestResyncAfterUnseenWrite: a write whose acknowledgement was lost leaves
// the Owner unsure of the actor's last sequence. While the owner record is
// still its own, the next write rereads it and goes through, and Append
// continues the Seq without a duplicate.
func TestResyncAfterUnseenWrite(t *testing.T) {
	s := startServer(t)
	b := openNode(t, s, Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	a, err := b.Create(ctx, "doc", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	bo, err := b.Claim(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	o := bo.(*owner)
	mustAppend(t, o, "e1")
	for _, tc := range []struct {
		name    string
		breakIt func()
	}{
		// The outcome of the last write was not seen.
		{"stale", func() { o.stale = true; o.last--; o.lastEv-- }},
		// We believe an older sequence: the CAS fails, the record is ours.
		{"mismatch", func() { o.last-- }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o.mu.Lock()
			tc.breakIt()
			o.mu.Unlock()
			if err := o.SaveState(ctx, []byte(tc.name)); err != nil {
				t.Fatalf("SaveState after %s: %v", tc.name, err)
			}
			before := o.lastEv
			e := mustAppend(t, o, tc.name)
			if e.Seq != before+1 {
				t.Errorf("Append after %s: Seq %d, want %d", tc.name, e.Seq, before+1)
			}
			checkEvents(t, b, a.ID, 0)
			select {
			case <-o.Lost():
				t.Fatal("the Owner was lost by a resync")
			default:
			}
		})
	}
}

// TestRenewAdoptsLateRenewal: a renewal that timed out here but landed on
// the server moves the lease to a revision this node has not seen; the next
// renewal finds its own epoch there and carries on instead of fencing. A
// lease with another epoch is lost.
func TestRenewAdoptsLateRenewal(t *testing.T) {
	s := startServer(t)
	b := openNode(t, s, Options{LeaseTTL: 5 * time.Second})
	b.blockRenew.Store(true) // the loop stays out of the way; no fence within 4 s
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	rewrite := func(epoch uint64) {
		t.Helper()
		b.mu.Lock()
		rev := b.leaseRev
		b.mu.Unlock()
		val, _ := json.Marshal(leaseValue{Node: b.node, Epoch: epoch})
		if _, err := b.nodes.Update(ctx, b.nodeKey, val, rev); err != nil {
			t.Fatal(err)
		}
	}
	b.mu.Lock()
	epoch := b.epoch
	b.mu.Unlock()
	rewrite(epoch) // our own renewal, unacknowledged
	if lost, err := b.renew(ctx); lost || err != nil {
		t.Fatalf("renew after our own late renewal: lost %v, %v", lost, err)
	}
	rewrite(epoch + 1000) // someone else's lease now
	if lost, err := b.renew(ctx); !lost {
		t.Fatalf("renew over a foreign epoch: lost %v, %v; want lost", lost, err)
	}
}
