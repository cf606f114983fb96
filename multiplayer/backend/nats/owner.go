package natsbackend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sandbox-agent-go/sandbox-agent/multiplayer/backend"
)

var errClosed = fmt.Errorf("natsbackend: %w", backend.ErrClosed)

// ownerRecord is p.d.<actor>.o. Released and Destroyed keep the generation
// for the next Claim (deleting the record would restart it at 1).
type ownerRecord struct {
	Node      string `json:"node,omitempty"`
	Epoch     uint64 `json:"epoch,omitempty"`
	Gen       uint64 `json:"gen"`
	Released  bool   `json:"released,omitempty"`
	Destroyed bool   `json:"destroyed,omitempty"`
}

func (b *Backend) ownerRecord(ctx context.Context, id string) (*ownerRecord, error) {
	m, err := b.value(ctx, b.subj(id, "o"))
	if err != nil || m == nil {
		return nil, err
	}
	var r ownerRecord
	if err := json.Unmarshal(m.Data, &r); err != nil {
		return nil, fmt.Errorf("natsbackend: owner record of %s: %w", id, err)
	}
	return &r, nil
}

// lastSeq is the last stream sequence of anything under the actor: what
// the next fenced write expects.
func (b *Backend) lastSeq(ctx context.Context, id string) (uint64, error) {
	m, err := b.lastMsg(ctx, b.actorFilter(id))
	if err != nil || m == nil {
		return 0, err
	}
	return m.Sequence, nil
}

// Claim makes this node the actor's owner with the next generation. It
// reads the actor's last sequence, then the owner record; if the recorded
// node's lease of that epoch is alive, the actor is owned. Otherwise it
// writes the new record expecting that last sequence, which (1) loses to a
// concurrent claim and (2) makes every later write of the old owner fail.
func (b *Backend) Claim(ctx context.Context, actorID string) (backend.Owner, error) {
	a, err := b.Lookup(ctx, actorID)
	if err != nil {
		return nil, err
	}
	epoch, err := b.waitLease(ctx)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	if o := b.owners[actorID]; o != nil && !o.isLost() {
		b.mu.Unlock()
		return nil, &backend.OwnedError{ActorID: actorID, Node: b.node}
	}
	b.mu.Unlock()

	for range 5 {
		last, err := b.lastSeq(ctx, actorID)
		if err != nil {
			return nil, err
		}
		rec, err := b.ownerRecord(ctx, actorID)
		if err != nil {
			return nil, err
		}
		gen := uint64(1)
		if rec != nil {
			if rec.Destroyed {
				return nil, fmt.Errorf("natsbackend: actor %s: %w", actorID, backend.ErrNotFound)
			}
			gen = rec.Gen + 1
			if !rec.Released && rec.Node == b.node && rec.Epoch == epoch {
				// Ours, this lease: a live Owner of this node (maybe one
				// a concurrent Claim here is still setting up).
				return nil, &backend.OwnedError{ActorID: actorID, Node: b.node}
			}
			if !rec.Released {
				alive, err := b.leaseAlive(ctx, rec.Node, rec.Epoch)
				if err != nil {
					return nil, err
				}
				if alive {
					return nil, &backend.OwnedError{ActorID: actorID, Node: rec.Node}
				}
			}
		}
		body, _ := json.Marshal(ownerRecord{Node: b.node, Epoch: epoch, Gen: gen})
		ack, err := b.js.PublishMsg(ctx, &nats.Msg{Subject: b.subj(actorID, "o"), Data: body},
			jetstream.WithExpectLastSequenceForSubject(last, b.actorFilter(actorID)))
		if isWrongLastSeq(err) {
			continue // someone wrote meanwhile: look again
		}
		if err != nil {
			return nil, fmt.Errorf("natsbackend: claim %s: %w", actorID, err)
		}
		o := &owner{b: b, a: a, gen: gen, epoch: epoch, last: ack.Sequence, lost: make(chan struct{})}
		if o.lastEv, err = b.lastEventSeq(ctx, actorID); err != nil {
			o.stale = true // the first write reads it again
		}
		// Destroy may have removed the actor between Lookup and the claim.
		if _, err := b.Lookup(ctx, actorID); err != nil {
			o.lose()
			return nil, err
		}
		b.mu.Lock()
		if b.epoch != epoch || b.closed {
			b.mu.Unlock()
			o.lose()
			return nil, fmt.Errorf("natsbackend: claim %s: the node lease was lost meanwhile: %w", actorID, backend.ErrFenced)
		}
		b.owners[actorID] = o
		b.mu.Unlock()
		return o, nil
	}
	return nil, fmt.Errorf("natsbackend: claim %s: contended", actorID)
}

// owner implements backend.Owner. mu serialises writes: each expects the
// sequence the previous one produced.
type owner struct {
	b     *Backend
	a     backend.Actor
	gen   uint64
	epoch uint64

	mu     sync.Mutex
	last   uint64 // the actor's last stream sequence, as of our last write
	lastEv uint64 // last event Seq
	stale  bool   // last/lastEv unknown (a write's outcome was not seen)
	done   bool   // released or destroyed

	lostOnce sync.Once
	lost     chan struct{}
}

func (o *owner) Actor() backend.Actor {
	a := o.a
	a.Key = slices.Clone(a.Key)
	return a
}
func (o *owner) Generation() uint64    { return o.gen }
func (o *owner) Lost() <-chan struct{} { return o.lost }

func (o *owner) lose() {
	o.lostOnce.Do(func() { close(o.lost) })
	o.b.mu.Lock()
	if o.b.owners[o.a.ID] == o {
		delete(o.b.owners, o.a.ID)
	}
	o.b.mu.Unlock()
}

func (o *owner) isLost() bool {
	select {
	case <-o.lost:
		return true
	default:
		return false
	}
}

func (o *owner) fenced() error {
	return fmt.Errorf("natsbackend: actor %s generation %d: %w", o.a.ID, o.gen, backend.ErrFenced)
}

// resyncLocked rereads the actor's last sequence after a failed or unseen
// write — but only while the owner record is still exactly ours; anything
// else means another claim (or our release) happened, and we are fenced.
func (o *owner) resyncLocked(ctx context.Context) error {
	rec, err := o.b.ownerRecord(ctx, o.a.ID)
	if err != nil {
		return err
	}
	if rec == nil || rec.Released || rec.Destroyed || rec.Node != o.b.node || rec.Epoch != o.epoch || rec.Gen != o.gen {
		o.lose()
		return o.fenced()
	}
	last, err := o.b.lastSeq(ctx, o.a.ID)
	if err != nil {
		return err
	}
	ev, err := o.b.lastEventSeq(ctx, o.a.ID)
	if err != nil {
		return err
	}
	o.last, o.lastEv, o.stale = last, ev, false
	return nil
}

// writeLocked publishes what build returns, fenced on the actor's last
// sequence. build runs again after a resync (Append's subject depends on
// lastEv).
func (o *owner) writeLocked(ctx context.Context, build func() *nats.Msg) error {
	if o.isLost() || o.done {
		return o.fenced()
	}
	for range 2 {
		if o.stale {
			if err := o.resyncLocked(ctx); err != nil {
				return err
			}
		}
		ack, err := o.b.js.PublishMsg(ctx, build(),
			jetstream.WithExpectLastSequenceForSubject(o.last, o.b.actorFilter(o.a.ID)))
		if err == nil {
			o.last = ack.Sequence
			return nil
		}
		o.stale = true
		if !isWrongLastSeq(err) {
			// Timeout or disconnection: the write may or may not have
			// landed; the next write finds out.
			return fmt.Errorf("natsbackend: write %s: %w", o.a.ID, err)
		}
	}
	// Still mismatching right after a resync that found the record ours:
	// a concurrent claim is landing. Let the next write decide.
	return fmt.Errorf("natsbackend: write %s: contended", o.a.ID)
}

func (o *owner) put(ctx context.Context, subj string, data []byte) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.writeLocked(ctx, func() *nats.Msg { return &nats.Msg{Subject: subj, Data: data} })
}

func (o *owner) tombstone(ctx context.Context, subj string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.writeLocked(ctx, func() *nats.Msg {
		m := nats.NewMsg(subj)
		m.Header.Set(hdrOp, opDelete)
		return m
	})
}

// readable: reads through a lost Owner fail too, so a fenced actor does not
// keep serving what may be stale.
func (o *owner) readable() error {
	if o.isLost() {
		return o.fenced()
	}
	return nil
}

func (o *owner) LoadState(ctx context.Context) ([]byte, bool, error) {
	if err := o.readable(); err != nil {
		return nil, false, err
	}
	m, err := o.b.value(ctx, o.b.subj(o.a.ID, "s"))
	if err != nil || m == nil {
		return nil, false, err
	}
	return slices.Clone(m.Data), true, nil
}

func (o *owner) SaveState(ctx context.Context, state []byte) error {
	return o.put(ctx, o.b.subj(o.a.ID, "s"), slices.Clone(state))
}

func (o *owner) Append(ctx context.Context, name string, args json.RawMessage) (backend.Event, error) {
	if len(args) == 0 {
		args = json.RawMessage("[]")
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	var e backend.Event
	err := o.writeLocked(ctx, func() *nats.Msg {
		e = backend.Event{Seq: o.lastEv + 1, Name: name, Args: slices.Clone(args), Generation: o.gen, Time: time.Now().UTC()}
		body, _ := json.Marshal(eventBody{Name: e.Name, Args: e.Args, Gen: e.Generation, Time: e.Time})
		return &nats.Msg{Subject: o.b.subj(o.a.ID, fmt.Sprintf("e.%d", e.Seq)), Data: body}
	})
	if err != nil {
		return backend.Event{}, err
	}
	o.lastEv = e.Seq
	return e, nil
}

func (o *owner) itemSubj(ns, key string) string {
	return o.b.subj(o.a.ID, "k."+escapeToken(ns)+"."+escapeToken(key))
}

func (o *owner) Put(ctx context.Context, ns, key string, value []byte) error {
	return o.put(ctx, o.itemSubj(ns, key), slices.Clone(value))
}

func (o *owner) Get(ctx context.Context, ns, key string) ([]byte, error) {
	if err := o.readable(); err != nil {
		return nil, err
	}
	m, err := o.b.value(ctx, o.itemSubj(ns, key))
	if err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("natsbackend: %s/%s: %w", ns, key, backend.ErrNotFound)
	}
	return slices.Clone(m.Data), nil
}

func (o *owner) Delete(ctx context.Context, ns, key string) error {
	if err := o.readable(); err != nil {
		return err
	}
	m, err := o.b.value(ctx, o.itemSubj(ns, key))
	if err != nil || m == nil {
		return err // deleting a missing item is a no-op, not a tombstone
	}
	return o.tombstone(ctx, o.itemSubj(ns, key))
}

func (o *owner) List(ctx context.Context, ns, after string, limit int) ([]backend.Item, error) {
	if err := o.readable(); err != nil {
		return nil, err
	}
	prefix := o.b.subj(o.a.ID, "k."+escapeToken(ns)+".")
	subjs, err := o.b.subjects(ctx, prefix+"*")
	if err != nil {
		return nil, err
	}
	type kv struct{ key, subj string }
	var keys []kv
	for _, s := range subjs {
		k, ok := unescapeToken(strings.TrimPrefix(s, prefix))
		if ok && k > after {
			keys = append(keys, kv{k, s})
		}
	}
	slices.SortFunc(keys, func(a, b kv) int { return strings.Compare(a.key, b.key) })
	out := []backend.Item{}
	// Read in pages: tombstoned keys are skipped, so a page may come short.
	for len(keys) > 0 && (limit <= 0 || len(out) < limit) {
		n := len(keys)
		if limit > 0 {
			n = min(n, limit-len(out))
		}
		page := make([]string, n)
		for i := range page {
			page[i] = keys[i].subj
		}
		msgs, err := o.b.values(ctx, page)
		if err != nil {
			return nil, err
		}
		for i, m := range msgs {
			if m != nil {
				out = append(out, backend.Item{Key: keys[i].key, Value: slices.Clone(m.Data)})
			}
		}
		keys = keys[n:]
	}
	return out, nil
}

func (o *owner) schedSubj(id string) string { return o.b.subj(o.a.ID, "t."+escapeToken(id)) }

func (o *owner) AddSchedule(ctx context.Context, s backend.Schedule) error {
	s.ActorID = o.a.ID
	if len(s.Args) == 0 {
		s.Args = json.RawMessage("[]")
	}
	body, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("natsbackend: schedule %s: %w", s.ID, err)
	}
	return o.put(ctx, o.schedSubj(s.ID), body)
}

// CancelSchedule and TakeSchedule both tombstone the schedule; the fenced
// write means only the live owner can, and it holds mu across the check
// and the write, so one call of the two wins.
func (o *owner) CancelSchedule(ctx context.Context, id string) (bool, error) {
	return o.removeSchedule(ctx, id)
}

func (o *owner) TakeSchedule(ctx context.Context, id string) (bool, error) {
	return o.removeSchedule(ctx, id)
}

func (o *owner) removeSchedule(ctx context.Context, id string) (bool, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.isLost() || o.done {
		return false, o.fenced()
	}
	subj := o.schedSubj(id)
	m, err := o.b.value(ctx, subj)
	if err != nil || m == nil {
		return false, err
	}
	err = o.writeLocked(ctx, func() *nats.Msg {
		msg := nats.NewMsg(subj)
		msg.Header.Set(hdrOp, opDelete)
		return msg
	})
	return err == nil, err
}

func (o *owner) Schedules(ctx context.Context) ([]backend.Schedule, error) {
	if err := o.readable(); err != nil {
		return nil, err
	}
	subjs, err := o.b.subjects(ctx, o.b.subj(o.a.ID, "t.*"))
	if err != nil {
		return nil, err
	}
	return o.b.readSchedules(ctx, subjs)
}

func (b *Backend) readSchedules(ctx context.Context, subjs []string) ([]backend.Schedule, error) {
	msgs, err := b.values(ctx, subjs)
	if err != nil {
		return nil, err
	}
	out := []backend.Schedule{}
	for _, m := range msgs {
		if m == nil {
			continue
		}
		var s backend.Schedule
		if err := json.Unmarshal(m.Data, &s); err != nil {
			return nil, fmt.Errorf("natsbackend: schedule %s: %w", m.Subject, err)
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b backend.Schedule) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return strings.Compare(a.ActorID+"/"+a.ID, b.ActorID+"/"+b.ID)
	})
	return out, nil
}

// Release writes a released owner record (fenced, keeping the generation)
// so the next Claim anywhere succeeds at once.
func (o *owner) Release(ctx context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.done || o.isLost() {
		o.done = true
		o.lose()
		return nil
	}
	body, _ := json.Marshal(ownerRecord{Gen: o.gen, Released: true})
	err := o.writeLocked(ctx, func() *nats.Msg { return &nats.Msg{Subject: o.b.subj(o.a.ID, "o"), Data: body} })
	if errors.Is(err, backend.ErrFenced) {
		err = nil // someone else owns it already: nothing to give up
	}
	if err != nil {
		return err
	}
	o.done = true
	o.lose()
	return nil
}

// Destroy marks the owner record destroyed (fenced), removes the registry
// entries, and purges everything under the actor.
func (o *owner) Destroy(ctx context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	body, _ := json.Marshal(ownerRecord{Gen: o.gen, Destroyed: true})
	if err := o.writeLocked(ctx, func() *nats.Msg { return &nats.Msg{Subject: o.b.subj(o.a.ID, "o"), Data: body} }); err != nil {
		return err
	}
	o.done = true
	o.lose()
	if err := o.b.unregister(ctx, o.a); err != nil {
		return err
	}
	if err := o.b.data.Purge(ctx, jetstream.WithPurgeSubject(o.b.actorFilter(o.a.ID))); err != nil {
		return fmt.Errorf("natsbackend: destroy %s: purge: %w", o.a.ID, err)
	}
	return nil
}
