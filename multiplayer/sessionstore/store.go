// Package sessionstore is a sandboxagent.SessionStore kept in an actor's own
// key-value storage (backend.Owner's Put/Get/Delete/List), so that the SDK
// sessions an actor runs survive the actor sleeping, crashing or moving to
// another node, and are written only by the actor's live owner: once the
// Owner is fenced, every write fails with an error wrapping
// backend.ErrFenced.
//
// # Layout
//
// All namespaces start with "sa." so they stay apart from the actor's own:
//
//	sa.sessions             session id  → SessionRecord JSON
//	sa.events/<session id>  %019d index → SessionEvent JSON (byte order = index order)
//	sa.eventids             event id    → {"sessionId","eventIndex"} (ids are unique across sessions)
//	sa.eventmeta            session id  → {"maxIndex","count"} of the session's log
//
// Session and event ids are used as keys and namespace suffixes unescaped:
// every driver accepts any string there (backend/nats escapes namespaces
// and keys itself; memory and sqlite store them as they are), and a fixed
// prefix followed by the id keeps distinct ids in distinct namespaces.
//
// # Writers and crashes
//
// A Store assumes it is the only writer of these namespaces: one Store per
// Owner, which the actor runtime guarantees by owning an actor on one node
// at a time. It serialises its writes with one mutex and caches what it
// derives from storage (the session order, each log's highest index), so a
// second Store on the same Owner would hand out clashing indexes.
//
// The key-value storage has no transactions, so InsertEvent writes in an
// order that every crash leaves recoverable: the event-id reference first
// (a reference whose event is missing is ignored), then the event, then the
// log's metadata (a Store that finds events past the recorded maximum
// counts them in). A failed write drops the affected cache so the next call
// reloads from storage.
package sessionstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	sandboxagent "github.com/sandbox-agent-go/sandbox-agent"
	"github.com/sandbox-agent-go/sandbox-agent/internal/ctxsync"
	"github.com/sandbox-agent-go/sandbox-agent/multiplayer/backend"
)

// KV is the part of backend.Owner the store uses.
type KV interface {
	Put(ctx context.Context, ns, key string, value []byte) error
	// Get answers an error wrapping backend.ErrNotFound for a missing key.
	Get(ctx context.Context, ns, key string) ([]byte, error)
	Delete(ctx context.Context, ns, key string) error
	// List returns keys > after in byte order, at most limit (<= 0: all).
	List(ctx context.Context, ns, after string, limit int) ([]backend.Item, error)
}

var _ KV = backend.Owner(nil)

// Namespaces of the store (see the package documentation).
const (
	nsSessions     = "sa.sessions"
	nsEventsPrefix = "sa.events/"
	nsEventIDs     = "sa.eventids"
	nsEventMeta    = "sa.eventmeta"
)

// scanChunk bounds how many items one List call reads while the store walks
// a namespace (loading the session order, skipping to an offset), so memory
// stays bounded whatever the namespace's size.
const scanChunk = 256

// Store is a sandboxagent.SessionStore on an actor's key-value storage. It
// is safe for concurrent use. Create it with New.
type Store struct {
	kv KV

	// mu serialises writes and guards the caches below. It is held across
	// storage calls, so it honours the caller's context while waiting.
	mu ctxsync.Mutex
	// order is every session sorted by (CreatedAt, ID), loaded on first use;
	// createdAt maps a session id to its CreatedAt in order.
	orderLoaded bool
	order       []sessionKey
	createdAt   map[string]int64
	// logs caches the metadata of sessions that have events.
	logs map[string]logMeta
}

var _ sandboxagent.SessionStore = (*Store)(nil)

// sessionKey is a session's place in the list order.
type sessionKey struct {
	createdAt int64
	id        string
}

func compareSessionKeys(a, b sessionKey) int {
	if a.createdAt != b.createdAt {
		if a.createdAt < b.createdAt {
			return -1
		}
		return 1
	}
	return strings.Compare(a.id, b.id)
}

// logMeta describes one session's event log. MaxIndex is exact once loaded;
// Count is a lower bound (a crash may lose the count of an event stored
// below the maximum), which keeps the dense test in ListEvents sound:
// Count == MaxIndex means the indexes are exactly 1..MaxIndex.
type logMeta struct {
	MaxIndex int64 `json:"maxIndex"`
	Count    int64 `json:"count"`
}

func (m logMeta) dense() bool { return m.Count == m.MaxIndex }

// eventRef is the value of an event id in nsEventIDs.
type eventRef struct {
	SessionID  string `json:"sessionId"`
	EventIndex int64  `json:"eventIndex"`
}

// New returns a Store on kv, typically the actor's backend.Owner. It reads
// nothing until first used.
func New(kv KV) *Store {
	return &Store{kv: kv, logs: make(map[string]logMeta)}
}

func eventsNS(sessionID string) string { return nsEventsPrefix + sessionID }

// indexKey is an event index as a key: 19 digits hold any int64, and the
// fixed width makes byte order numeric order.
func indexKey(i int64) string { return fmt.Sprintf("%019d", i) }

func (s *Store) lock(ctx context.Context) error {
	if err := s.mu.Lock(ctx); err != nil {
		return fmt.Errorf("sessionstore: waiting for the store: %w", err)
	}
	return nil
}

// GetSession implements sandboxagent.SessionStore.
func (s *Store) GetSession(ctx context.Context, id string) (sandboxagent.SessionRecord, bool, error) {
	if err := ctx.Err(); err != nil {
		return sandboxagent.SessionRecord{}, false, fmt.Errorf("sessionstore: get session: %w", err)
	}
	rec, ok, err := s.getRecord(ctx, id)
	if err != nil {
		return sandboxagent.SessionRecord{}, false, fmt.Errorf("sessionstore: get session %q: %w", id, err)
	}
	return rec, ok, nil
}

func (s *Store) getRecord(ctx context.Context, id string) (sandboxagent.SessionRecord, bool, error) {
	if id == "" {
		return sandboxagent.SessionRecord{}, false, nil // never stored: Validate refuses it
	}
	v, err := s.kv.Get(ctx, nsSessions, id)
	if errors.Is(err, backend.ErrNotFound) {
		return sandboxagent.SessionRecord{}, false, nil
	}
	if err != nil {
		return sandboxagent.SessionRecord{}, false, err
	}
	var rec sandboxagent.SessionRecord
	if err := json.Unmarshal(v, &rec); err != nil {
		return sandboxagent.SessionRecord{}, false, fmt.Errorf("decoding the record: %w", err)
	}
	return rec, true, nil
}

// UpdateSession implements sandboxagent.SessionStore.
func (s *Store) UpdateSession(ctx context.Context, rec sandboxagent.SessionRecord) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sessionstore: update session: %w", err)
	}
	if err := rec.Validate(); err != nil {
		return err
	}
	v, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("sessionstore: update session %q: %w", rec.ID, err)
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if err := s.loadOrderLocked(ctx); err != nil {
		return fmt.Errorf("sessionstore: update session %q: %w", rec.ID, err)
	}
	if err := s.kv.Put(ctx, nsSessions, rec.ID, v); err != nil {
		// The record may or may not have landed: read the order afresh.
		s.orderLoaded = false
		return fmt.Errorf("sessionstore: update session %q: %w", rec.ID, err)
	}
	s.placeLocked(rec.ID, rec.CreatedAt)
	return nil
}

// placeLocked puts session id at its place for createdAt in the order.
func (s *Store) placeLocked(id string, createdAt int64) {
	if old, ok := s.createdAt[id]; ok {
		if old == createdAt {
			return
		}
		if i, found := slices.BinarySearchFunc(s.order, sessionKey{old, id}, compareSessionKeys); found {
			s.order = slices.Delete(s.order, i, i+1)
		}
	}
	k := sessionKey{createdAt, id}
	i, _ := slices.BinarySearchFunc(s.order, k, compareSessionKeys)
	s.order = slices.Insert(s.order, i, k)
	s.createdAt[id] = createdAt
}

// loadOrderLocked reads every record's CreatedAt once, in chunks, unless the
// order is loaded already.
func (s *Store) loadOrderLocked(ctx context.Context) error {
	if s.orderLoaded {
		return nil
	}
	var order []sessionKey
	createdAt := make(map[string]int64)
	after := ""
	for {
		items, err := s.kv.List(ctx, nsSessions, after, scanChunk)
		if err != nil {
			return fmt.Errorf("loading the session order: %w", err)
		}
		for _, it := range items {
			var r struct {
				CreatedAt int64 `json:"createdAt"`
			}
			if err := json.Unmarshal(it.Value, &r); err != nil {
				return fmt.Errorf("loading the session order: record %q: %w", it.Key, err)
			}
			order = append(order, sessionKey{r.CreatedAt, it.Key})
			createdAt[it.Key] = r.CreatedAt
		}
		if len(items) < scanChunk {
			break
		}
		after = items[len(items)-1].Key
	}
	slices.SortFunc(order, compareSessionKeys)
	s.order, s.createdAt, s.orderLoaded = order, createdAt, true
	return nil
}

// ListSessions implements sandboxagent.SessionStore. The page's ids come
// from the cached order; their records are read after the store's lock is
// released, so a record updated meanwhile is returned as it is now.
func (s *Store) ListSessions(ctx context.Context, req sandboxagent.ListPageRequest) (sandboxagent.ListPage[sandboxagent.SessionRecord], error) {
	if err := ctx.Err(); err != nil {
		return sandboxagent.ListPage[sandboxagent.SessionRecord]{}, fmt.Errorf("sessionstore: list sessions: %w", err)
	}
	offset, limit := req.Offset(), req.PageSize()
	if err := s.lock(ctx); err != nil {
		return sandboxagent.ListPage[sandboxagent.SessionRecord]{}, err
	}
	if err := s.loadOrderLocked(ctx); err != nil {
		s.mu.Unlock()
		return sandboxagent.ListPage[sandboxagent.SessionRecord]{}, fmt.Errorf("sessionstore: list sessions: %w", err)
	}
	start := min(offset, len(s.order))
	end := start + min(limit, len(s.order)-start)
	ids := make([]string, 0, end-start)
	for _, k := range s.order[start:end] {
		ids = append(ids, k.id)
	}
	more := end < len(s.order)
	s.mu.Unlock()

	items := make([]sandboxagent.SessionRecord, 0, len(ids))
	for _, id := range ids {
		rec, ok, err := s.getRecord(ctx, id)
		if err != nil {
			return sandboxagent.ListPage[sandboxagent.SessionRecord]{}, fmt.Errorf("sessionstore: list sessions: %q: %w", id, err)
		}
		if !ok {
			// Records are never deleted through the store: another writer
			// shares the Owner (see the package documentation).
			return sandboxagent.ListPage[sandboxagent.SessionRecord]{}, fmt.Errorf("sessionstore: list sessions: %q is in the order but not stored: %w", id, backend.ErrNotFound)
		}
		items = append(items, rec)
	}
	page := sandboxagent.ListPage[sandboxagent.SessionRecord]{Items: items}
	if more {
		page.NextCursor = strconv.Itoa(start + len(items))
	}
	return page, nil
}

// logMetaLocked returns the metadata of a session's log (ok false: it has
// no events), from the cache or from storage. Loading only reads: events
// found past the recorded maximum (a crash between writing an event and its
// metadata) are counted in, and the next insert writes the repaired
// metadata.
func (s *Store) logMetaLocked(ctx context.Context, sessionID string) (logMeta, bool, error) {
	if m, ok := s.logs[sessionID]; ok {
		return m, true, nil
	}
	var m logMeta
	v, err := s.kv.Get(ctx, nsEventMeta, sessionID)
	switch {
	case errors.Is(err, backend.ErrNotFound):
	case err != nil:
		return logMeta{}, false, fmt.Errorf("reading the log metadata: %w", err)
	default:
		if err := json.Unmarshal(v, &m); err != nil {
			return logMeta{}, false, fmt.Errorf("decoding the log metadata: %w", err)
		}
	}
	after := indexKey(m.MaxIndex)
	for {
		items, err := s.kv.List(ctx, eventsNS(sessionID), after, scanChunk)
		if err != nil {
			return logMeta{}, false, fmt.Errorf("checking the log past index %d: %w", m.MaxIndex, err)
		}
		for _, it := range items {
			i, err := strconv.ParseInt(it.Key, 10, 64)
			if err != nil {
				return logMeta{}, false, fmt.Errorf("event key %q: %w", it.Key, err)
			}
			m.MaxIndex = max(m.MaxIndex, i)
			m.Count++
		}
		if len(items) < scanChunk {
			break
		}
		after = items[len(items)-1].Key
	}
	if m.MaxIndex == 0 {
		return logMeta{}, false, nil // no events; not cached, so unknown ids do not grow the cache
	}
	s.logs[sessionID] = m
	return m, true, nil
}

// getEvent reads the event at index i of a session (ok false: none).
func (s *Store) getEvent(ctx context.Context, sessionID string, i int64) (sandboxagent.SessionEvent, bool, error) {
	v, err := s.kv.Get(ctx, eventsNS(sessionID), indexKey(i))
	if errors.Is(err, backend.ErrNotFound) {
		return sandboxagent.SessionEvent{}, false, nil
	}
	if err != nil {
		return sandboxagent.SessionEvent{}, false, err
	}
	var ev sandboxagent.SessionEvent
	if err := json.Unmarshal(v, &ev); err != nil {
		return sandboxagent.SessionEvent{}, false, fmt.Errorf("decoding event %d: %w", i, err)
	}
	return ev, true, nil
}

// storedEvent finds the event an event id refers to; ok is false when the
// id is not stored, or its reference is left over from a failed insert (the
// event it names is missing or has another id).
func (s *Store) storedEvent(ctx context.Context, id string) (sandboxagent.SessionEvent, bool, error) {
	v, err := s.kv.Get(ctx, nsEventIDs, id)
	if errors.Is(err, backend.ErrNotFound) {
		return sandboxagent.SessionEvent{}, false, nil
	}
	if err != nil {
		return sandboxagent.SessionEvent{}, false, err
	}
	var ref eventRef
	if err := json.Unmarshal(v, &ref); err != nil {
		return sandboxagent.SessionEvent{}, false, fmt.Errorf("decoding the reference of event %q: %w", id, err)
	}
	ev, ok, err := s.getEvent(ctx, ref.SessionID, ref.EventIndex)
	if err != nil || !ok || ev.ID != id {
		return sandboxagent.SessionEvent{}, false, err
	}
	return ev, true, nil
}

// InsertEvent implements sandboxagent.SessionStore.
func (s *Store) InsertEvent(ctx context.Context, sessionID string, ev sandboxagent.SessionEvent) (sandboxagent.SessionEvent, error) {
	if err := ctx.Err(); err != nil {
		return sandboxagent.SessionEvent{}, fmt.Errorf("sessionstore: insert event: %w", err)
	}
	ev, err := ev.Normalize(sessionID)
	if err != nil {
		return sandboxagent.SessionEvent{}, err
	}
	if err := s.lock(ctx); err != nil {
		return sandboxagent.SessionEvent{}, err
	}
	defer s.mu.Unlock()
	out, err := s.insertLocked(ctx, sessionID, ev)
	if err != nil {
		return sandboxagent.SessionEvent{}, fmt.Errorf("sessionstore: insert event %q into session %q: %w", ev.ID, sessionID, err)
	}
	return out, nil
}

func (s *Store) insertLocked(ctx context.Context, sessionID string, ev sandboxagent.SessionEvent) (sandboxagent.SessionEvent, error) {
	stored, ok, err := s.storedEvent(ctx, ev.ID)
	if err != nil {
		return sandboxagent.SessionEvent{}, err
	}
	if ok {
		if stored.SessionID != sessionID {
			return sandboxagent.SessionEvent{}, fmt.Errorf("%w: the event id is stored for another session", sandboxagent.ErrStoreConflict)
		}
		return stored, nil // idempotent re-insert
	}

	m, _, err := s.logMetaLocked(ctx, sessionID)
	if err != nil {
		return sandboxagent.SessionEvent{}, err
	}
	switch {
	case ev.EventIndex == 0:
		if m.MaxIndex == math.MaxInt64 {
			return sandboxagent.SessionEvent{}, fmt.Errorf("%w: the session's highest index is the largest possible", sandboxagent.ErrStoreConflict)
		}
		ev.EventIndex = m.MaxIndex + 1
	case ev.EventIndex <= m.MaxIndex:
		// Above the (exact) maximum an index is free; below it, look.
		if _, used, err := s.getEvent(ctx, sessionID, ev.EventIndex); err != nil {
			return sandboxagent.SessionEvent{}, err
		} else if used {
			return sandboxagent.SessionEvent{}, fmt.Errorf("%w: event index %d is in use", sandboxagent.ErrStoreConflict, ev.EventIndex)
		}
	}

	ref, err := json.Marshal(eventRef{SessionID: sessionID, EventIndex: ev.EventIndex})
	if err != nil {
		return sandboxagent.SessionEvent{}, err
	}
	value, err := json.Marshal(ev)
	if err != nil {
		return sandboxagent.SessionEvent{}, err
	}
	next := logMeta{MaxIndex: max(m.MaxIndex, ev.EventIndex), Count: m.Count + 1}
	meta, err := json.Marshal(next)
	if err != nil {
		return sandboxagent.SessionEvent{}, err
	}
	// The order that keeps every crash recoverable (package documentation).
	for _, w := range []struct {
		ns, key string
		v       []byte
	}{
		{nsEventIDs, ev.ID, ref},
		{eventsNS(sessionID), indexKey(ev.EventIndex), value},
		{nsEventMeta, sessionID, meta},
	} {
		if err := s.kv.Put(ctx, w.ns, w.key, w.v); err != nil {
			delete(s.logs, sessionID) // what landed is unknown: reload next time
			return sandboxagent.SessionEvent{}, err
		}
	}
	s.logs[sessionID] = next
	return ev.Clone(), nil
}

// ListEvents implements sandboxagent.SessionStore. A log whose indexes are
// exactly 1..n (the usual case: the store assigned them) is paged straight
// from the offset; a sparse one walks its keys up to the offset first.
func (s *Store) ListEvents(ctx context.Context, req sandboxagent.ListEventsRequest) (sandboxagent.ListPage[sandboxagent.SessionEvent], error) {
	page, err := s.listEvents(ctx, req)
	if err != nil {
		return sandboxagent.ListPage[sandboxagent.SessionEvent]{}, fmt.Errorf("sessionstore: list events of session %q: %w", req.SessionID, err)
	}
	return page, nil
}

func (s *Store) listEvents(ctx context.Context, req sandboxagent.ListEventsRequest) (sandboxagent.ListPage[sandboxagent.SessionEvent], error) {
	empty := sandboxagent.ListPage[sandboxagent.SessionEvent]{Items: []sandboxagent.SessionEvent{}}
	if err := ctx.Err(); err != nil {
		return empty, err
	}
	if req.SessionID == "" {
		return empty, nil // never stored: Normalize refuses it
	}
	offset, limit := req.PageRequest().Offset(), req.PageRequest().PageSize()
	if err := s.lock(ctx); err != nil {
		return empty, err
	}
	m, ok, err := s.logMetaLocked(ctx, req.SessionID)
	s.mu.Unlock()
	if err != nil || !ok {
		return empty, err
	}

	ns := eventsNS(req.SessionID)
	after := ""
	switch {
	case m.dense():
		if int64(offset) >= m.Count {
			return empty, nil
		}
		if offset > 0 {
			after = indexKey(int64(offset)) // events 1..offset come before
		}
	default:
		var found bool
		if after, found, err = s.skip(ctx, ns, offset); err != nil || !found {
			return empty, err
		}
	}
	fetch := 0 // all
	if limit < math.MaxInt {
		fetch = limit + 1 // one more tells whether another page follows
	}
	items, err := s.kv.List(ctx, ns, after, fetch)
	if err != nil {
		return empty, err
	}
	events := make([]sandboxagent.SessionEvent, len(items))
	for i, it := range items {
		if err := json.Unmarshal(it.Value, &events[i]); err != nil {
			return empty, fmt.Errorf("decoding event %s: %w", it.Key, err)
		}
	}
	return sandboxagent.StorePage(events, offset, limit), nil
}

// skip walks n keys of ns in chunks and returns the n-th (the "after" of
// the items that follow); found is false when ns has fewer than n keys.
func (s *Store) skip(ctx context.Context, ns string, n int) (after string, found bool, err error) {
	for n > 0 {
		items, err := s.kv.List(ctx, ns, after, min(n, scanChunk))
		if err != nil {
			return "", false, err
		}
		if len(items) == 0 {
			return "", false, nil
		}
		after = items[len(items)-1].Key
		n -= len(items)
	}
	return after, true, nil
}
