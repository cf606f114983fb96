package natsbackend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sandbox-agent-go/sandbox-agent/multiplayer/backend"
)

// record is an actor's registry entry, stored under both its name key and
// its id key. It never changes after creation.
type record struct {
	ID      string          `json:"id"`
	Name    string          `json:"name"`
	Key     []string        `json:"key"`
	Canon   string          `json:"canon"`
	Input   json.RawMessage `json:"input,omitempty"`
	Created time.Time       `json:"created"`
}

func (r record) actor() backend.Actor {
	return backend.Actor{ID: r.ID, Name: r.Name, Key: slices.Clone(r.Key), Input: r.Input, CreatedAt: r.Created}
}

func nameKey(name, canon string) string { return "n." + escapeToken(name) + "." + keyHash(canon) }
func idKey(id string) string            { return "i." + id }

// errCollision: two distinct keys met on one 128-bit hash. Not expected to
// happen; reported rather than merging two actors.
var errCollision = errors.New("natsbackend: actor key hash collision")

func (b *Backend) readRecord(ctx context.Context, key string) (record, uint64, error) {
	e, err := b.reg.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return record{}, 0, backend.ErrNotFound
	}
	if err != nil {
		return record{}, 0, fmt.Errorf("natsbackend: registry %s: %w", key, err)
	}
	var r record
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return record{}, 0, fmt.Errorf("natsbackend: registry %s: %w", key, err)
	}
	return r, e.Revision(), nil
}

// Create creates the actor or fails with backend.ErrDuplicateKey. The id
// entry is written first: an id entry without a name entry (a crash in
// between) is invisible, since Lookup checks both.
func (b *Backend) Create(ctx context.Context, name string, key []string, input json.RawMessage) (backend.Actor, error) {
	if b.isClosed() {
		return backend.Actor{}, backend.ErrClosed
	}
	canon := backend.CanonicalKey(key)
	r := record{ID: newID(), Name: name, Key: slices.Clone(key), Canon: canon, Created: time.Now().UTC()}
	if len(input) > 0 {
		r.Input = slices.Clone(input)
	}
	val, err := json.Marshal(r)
	if err != nil {
		return backend.Actor{}, fmt.Errorf("natsbackend: create: %w", err)
	}
	if _, err := b.reg.Create(ctx, idKey(r.ID), val); err != nil {
		return backend.Actor{}, fmt.Errorf("natsbackend: create %s: %w", name, err)
	}
	_, err = b.reg.Create(ctx, nameKey(name, canon), val)
	if err == nil {
		return r.actor(), nil
	}
	if derr := b.reg.Delete(ctx, idKey(r.ID)); derr != nil {
		b.log.Warn("natsbackend: drop unused actor id", "actor", r.ID, "err", derr)
	}
	if errors.Is(err, jetstream.ErrKeyExists) {
		old, _, gerr := b.readRecord(ctx, nameKey(name, canon))
		if gerr == nil && (old.Name != name || old.Canon != canon) {
			return backend.Actor{}, fmt.Errorf("natsbackend: create %s %s: %w", name, canon, errCollision)
		}
		return backend.Actor{}, fmt.Errorf("natsbackend: create %s %s: %w", name, canon, backend.ErrDuplicateKey)
	}
	return backend.Actor{}, fmt.Errorf("natsbackend: create %s: %w", name, err)
}

// Get finds an actor by name and key.
func (b *Backend) Get(ctx context.Context, name string, key []string) (backend.Actor, error) {
	if b.isClosed() {
		return backend.Actor{}, errClosed
	}
	canon := backend.CanonicalKey(key)
	r, _, err := b.readRecord(ctx, nameKey(name, canon))
	if err != nil {
		return backend.Actor{}, err
	}
	if r.Name != name || r.Canon != canon {
		return backend.Actor{}, fmt.Errorf("natsbackend: get %s %s: %w", name, canon, errCollision)
	}
	return r.actor(), nil
}

// GetOrCreate returns the actor, creating it when there is none. Two nodes
// racing both end with the one kv.Create let through.
func (b *Backend) GetOrCreate(ctx context.Context, name string, key []string, input json.RawMessage) (backend.Actor, bool, error) {
	for range 3 {
		a, err := b.Get(ctx, name, key)
		if err == nil {
			return a, false, nil
		}
		if !errors.Is(err, backend.ErrNotFound) {
			return backend.Actor{}, false, err
		}
		a, err = b.Create(ctx, name, key, input)
		if err == nil {
			return a, true, nil
		}
		if !errors.Is(err, backend.ErrDuplicateKey) {
			return backend.Actor{}, false, err
		}
		// Lost the race (or the winner was destroyed at once): read again.
	}
	return backend.Actor{}, false, fmt.Errorf("natsbackend: get or create %s: contended", name)
}

// Lookup finds an actor by id: the id entry, confirmed by the name entry
// (which Destroy removes first).
func (b *Backend) Lookup(ctx context.Context, actorID string) (backend.Actor, error) {
	if b.isClosed() {
		return backend.Actor{}, errClosed
	}
	if !validID(actorID) {
		return backend.Actor{}, fmt.Errorf("natsbackend: actor %q: %w", actorID, backend.ErrNotFound)
	}
	r, _, err := b.readRecord(ctx, idKey(actorID))
	if err != nil {
		return backend.Actor{}, err
	}
	n, _, err := b.readRecord(ctx, nameKey(r.Name, r.Canon))
	if err != nil {
		return backend.Actor{}, err
	}
	if n.ID != r.ID {
		return backend.Actor{}, fmt.Errorf("natsbackend: actor %s: %w", actorID, backend.ErrNotFound)
	}
	return r.actor(), nil
}

// unregister removes the actor's registry entries: name first, so that a
// half-done unregister already makes the actor not found.
func (b *Backend) unregister(ctx context.Context, a backend.Actor) error {
	nk := nameKey(a.Name, backend.CanonicalKey(a.Key))
	r, rev, err := b.readRecord(ctx, nk)
	if err == nil && r.ID == a.ID {
		if err := b.reg.Delete(ctx, nk, jetstream.LastRevision(rev)); err != nil {
			return fmt.Errorf("natsbackend: unregister %s: %w", a.ID, err)
		}
	} else if err != nil && !errors.Is(err, backend.ErrNotFound) {
		return err
	}
	if err := b.reg.Delete(ctx, idKey(a.ID)); err != nil {
		return fmt.Errorf("natsbackend: unregister %s: %w", a.ID, err)
	}
	return nil
}
