package natsbackend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// leaseValue is a node lease. Epoch is the revision that created it, 0 in
// that first write (a message cannot name its own revision).
type leaseValue struct {
	Node  string `json:"node"`
	Epoch uint64 `json:"epoch,omitempty"`
}

func leaseEpoch(e jetstream.KeyValueEntry) (string, uint64, error) {
	var v leaseValue
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		return "", 0, fmt.Errorf("natsbackend: lease %s: %w", e.Key(), err)
	}
	if v.Epoch == 0 {
		v.Epoch = e.Revision()
	}
	return v.Node, v.Epoch, nil
}

// acquire takes the lease with a new epoch: Create, or, when a lease of this
// node id is still there (our own, from before a self-fence or a restart),
// Update over it. Any Owner of an older epoch is dead from then on.
func (b *Backend) acquire(ctx context.Context) error {
	val, _ := json.Marshal(leaseValue{Node: b.node})
	sent := time.Now()
	rev, err := b.nodes.Create(ctx, b.nodeKey, val)
	if errors.Is(err, jetstream.ErrKeyExists) {
		e, gerr := b.nodes.Get(ctx, b.nodeKey)
		if gerr != nil {
			return fmt.Errorf("natsbackend: lease: %w", gerr)
		}
		node, _, perr := leaseEpoch(e)
		if perr != nil {
			return perr
		}
		if node != b.node {
			return fmt.Errorf("natsbackend: lease key %s is held by node %q", b.nodeKey, node)
		}
		rev, err = b.nodes.Update(ctx, b.nodeKey, val, e.Revision())
	}
	if err != nil {
		return fmt.Errorf("natsbackend: lease: %w", err)
	}
	b.mu.Lock()
	b.epoch, b.leaseRev, b.leaseSent = rev, rev, sent
	close(b.leaseUp)
	b.mu.Unlock()
	b.log.Debug("natsbackend: lease acquired", "epoch", rev, "took", time.Since(sent))
	return nil
}

// renew extends the lease by a CAS on its last revision. A mismatch or a
// missing key means the lease is gone: fence at once.
func (b *Backend) renew(ctx context.Context) (lost bool, err error) {
	b.mu.Lock()
	epoch, rev := b.epoch, b.leaseRev
	b.mu.Unlock()
	val, _ := json.Marshal(leaseValue{Node: b.node, Epoch: epoch})
	nrev, err := b.nodes.Update(ctx, b.nodeKey, val, rev)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		// A renewal we gave up on may have landed after all: if the lease
		// still carries our epoch, it is ours, at a newer revision.
		e, gerr := b.nodes.Get(ctx, b.nodeKey)
		if gerr != nil {
			return errors.Is(gerr, jetstream.ErrKeyNotFound), fmt.Errorf("%w (then: %w)", err, gerr)
		}
		node, ep, perr := leaseEpoch(e)
		if perr != nil || node != b.node || ep != epoch {
			return true, err
		}
		nrev, err = b.nodes.Update(ctx, b.nodeKey, val, e.Revision())
	}
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyNotFound) {
			return true, err
		}
		return false, err
	}
	b.mu.Lock()
	if b.epoch == epoch {
		b.leaseRev = nrev
	}
	b.mu.Unlock()
	return false, nil
}

// leaseLoop renews the lease every Renew. The server expires it LeaseTTL
// after the last renewal it stored, which is no earlier than when we sent
// it, so fencing at sent+LeaseTTL-margin happens before anyone else can
// claim our actors. After a fence it acquires a new epoch.
func (b *Backend) leaseLoop() {
	defer b.wg.Done()
	ttl, every := b.opts.LeaseTTL, b.opts.Renew
	// Deadlines count from when the write that stored the lease was sent.
	b.mu.Lock()
	deadline := b.leaseSent.Add(ttl - b.margin)
	b.mu.Unlock()
	timer := time.NewTimer(every)
	defer timer.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-timer.C:
		}
		b.mu.Lock()
		held := b.epoch != 0
		b.mu.Unlock()
		if !held {
			err := errors.New("lease traffic blocked (test hook)")
			if !b.blockRenew.Load() {
				ctx, cancel := context.WithTimeout(context.Background(), every)
				err = b.acquire(ctx)
				cancel()
			}
			if err == nil {
				b.mu.Lock()
				deadline = b.leaseSent.Add(ttl - b.margin)
				b.mu.Unlock()
				timer.Reset(every)
			} else {
				b.log.Warn("natsbackend: lease not reacquired", "err", err)
				timer.Reset(every / 2)
			}
			continue
		}
		sent := time.Now()
		var lost bool
		var err error
		if b.blockRenew.Load() {
			err = errors.New("renewal blocked (test hook)")
		} else {
			// A slow renewal is still good until the deadline.
			ctx, cancel := context.WithDeadline(context.Background(), deadline)
			lost, err = b.renew(ctx)
			cancel()
		}
		switch {
		case err == nil:
			deadline = sent.Add(ttl - b.margin)
			timer.Reset(every)
		case lost:
			b.fence(fmt.Errorf("lease lost: %w", err))
			timer.Reset(0)
		case !time.Now().Before(deadline):
			b.fence(fmt.Errorf("lease not renewed for %s: %w", ttl-b.margin, err))
			timer.Reset(0)
		default:
			b.log.Warn("natsbackend: lease renewal failed, retrying", "err", err, "fence_in", time.Until(deadline))
			timer.Reset(min(every/4, time.Until(deadline)))
		}
	}
}

// fence stops trusting the lease: every Owner of this node is lost, and
// Claim waits for a new epoch. (The noSelfFence test hook skips it, to
// show that the stream alone still fences a node that is paused.)
func (b *Backend) fence(cause error) {
	if b.noSelfFence.Load() {
		return
	}
	b.mu.Lock()
	if b.epoch == 0 {
		b.mu.Unlock()
		return
	}
	b.epoch = 0
	b.leaseUp = make(chan struct{})
	owners := b.owners
	b.owners = map[string]*owner{}
	b.mu.Unlock()
	b.log.Warn("natsbackend: node fenced", "cause", cause, "actors", len(owners))
	for _, o := range owners {
		o.lose()
	}
}

// waitLease returns the current epoch, waiting (bounded by ctx) while the
// node is between leases.
func (b *Backend) waitLease(ctx context.Context) (uint64, error) {
	for {
		b.mu.Lock()
		epoch, up, closed := b.epoch, b.leaseUp, b.closed
		b.mu.Unlock()
		if closed {
			return 0, errClosed
		}
		if epoch != 0 {
			return epoch, nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("natsbackend: waiting for the node lease: %w", ctx.Err())
		case <-up:
		case <-b.stop:
		}
	}
}

// leaseAlive reports whether node still holds the lease of that epoch.
//
// The server removes an expired lease only when its age sweep runs, which
// in a cluster can be a second or two late. So a lease also counts as dead
// once this node has seen the same revision of it for LeaseTTL on its own
// monotonic clock: the holder sent that revision before we first saw it,
// and fences itself LeaseTTL minus a margin after sending, so it has
// already stopped. The watcher (watchLeases) sees renewals as they happen;
// the reads here count as sightings too.
func (b *Backend) leaseAlive(ctx context.Context, node string, epoch uint64) (bool, error) {
	key := escapeToken(node)
	e, err := b.nodes.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("natsbackend: lease of %s: %w", node, err)
	}
	n, ep, err := leaseEpoch(e)
	if err != nil {
		return false, err
	}
	if n != node || ep != epoch {
		return false, nil
	}
	first := b.sighted(key, e.Revision())
	return time.Since(first) < b.opts.LeaseTTL, nil
}

// sighting is when this node first saw a revision of a lease.
type sighting struct {
	rev uint64
	at  time.Time
}

// sighted records rev of the lease key (if newer than what was seen) and
// returns when that revision was first seen.
func (b *Backend) sighted(key string, rev uint64) time.Time {
	b.seenMu.Lock()
	defer b.seenMu.Unlock()
	s, ok := b.seen[key]
	if !ok || rev > s.rev {
		s = sighting{rev: rev, at: time.Now()}
		b.seen[key] = s
	}
	return s.at
}

// watchLeases follows the lease bucket so that every renewal is sighted
// when it happens, not when a Claim first looks. O(nodes) traffic.
func (b *Backend) watchLeases() {
	defer b.wg.Done()
	for {
		ctx, cancel := context.WithCancel(context.Background())
		w, err := b.nodes.WatchAll(ctx, jetstream.IgnoreDeletes())
		if err == nil {
			b.followLeases(w)
			_ = w.Stop()
		}
		cancel()
		select {
		case <-b.stop:
			return
		case <-time.After(b.opts.Renew):
			// The watcher died (connection closed): start another.
		}
	}
}

func (b *Backend) followLeases(w jetstream.KeyWatcher) {
	for {
		select {
		case <-b.stop:
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e != nil && e.Operation() == jetstream.KeyValuePut {
				b.sighted(e.Key(), e.Revision())
			}
		}
	}
}
