package sandboxagent

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
)

// Default caps of MemoryStore, the same as the TypeScript SDK's
// InMemorySessionPersistDriver.
const (
	DefaultMemoryStoreMaxSessions         = 1024
	DefaultMemoryStoreMaxEventsPerSession = 500
)

// MemoryStoreOptions configures NewMemoryStore. Zero or negative values select
// the defaults.
type MemoryStoreOptions struct {
	// MaxSessions caps the number of records. When an UpdateSession goes over
	// it, the oldest records (by CreatedAt, then ID) are evicted together
	// with their events. Default DefaultMemoryStoreMaxSessions.
	MaxSessions int
	// MaxEventsPerSession caps each session's event log; the oldest inserted
	// events are dropped first. Default DefaultMemoryStoreMaxEventsPerSession.
	MaxEventsPerSession int
}

// MemoryStore is a SessionStore that keeps everything in process memory,
// bounded by MemoryStoreOptions. It is safe for concurrent use and always
// hands out copies. Unlike the TypeScript in-memory driver it assigns event
// indexes itself and rejects duplicate explicit indexes.
//
// Create one with NewMemoryStore; the zero value is not usable.
type MemoryStore struct {
	maxSessions int
	maxEvents   int

	mu       sync.RWMutex
	sessions map[string]SessionRecord
	logs     map[string]*memoryEventLog // by session id; may exist without a record
	eventIDs map[string]string          // event id → session id, for retained events
}

// memoryEventLog is one session's events in insertion order.
type memoryEventLog struct {
	events   []SessionEvent
	indexes  map[int64]struct{} // event indexes of the retained events
	maxIndex int64              // highest index ever stored; survives eviction
	sorted   bool               // events are in (EventIndex, ID) order
}

var _ SessionStore = (*MemoryStore)(nil)

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore(opts MemoryStoreOptions) *MemoryStore {
	if opts.MaxSessions < 1 {
		opts.MaxSessions = DefaultMemoryStoreMaxSessions
	}
	if opts.MaxEventsPerSession < 1 {
		opts.MaxEventsPerSession = DefaultMemoryStoreMaxEventsPerSession
	}
	return &MemoryStore{
		maxSessions: opts.MaxSessions,
		maxEvents:   opts.MaxEventsPerSession,
		sessions:    make(map[string]SessionRecord),
		logs:        make(map[string]*memoryEventLog),
		eventIDs:    make(map[string]string),
	}
}

// GetSession implements SessionStore.
func (s *MemoryStore) GetSession(ctx context.Context, id string) (SessionRecord, bool, error) {
	if err := ctx.Err(); err != nil {
		return SessionRecord{}, false, fmt.Errorf("sandboxagent: memory store: %w", err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	rec, ok := s.sessions[id]
	if !ok {
		return SessionRecord{}, false, nil
	}
	return rec.Clone(), true, nil
}

// ListSessions implements SessionStore.
func (s *MemoryStore) ListSessions(ctx context.Context, req ListPageRequest) (ListPage[SessionRecord], error) {
	if err := ctx.Err(); err != nil {
		return ListPage[SessionRecord]{}, fmt.Errorf("sandboxagent: memory store: %w", err)
	}
	s.mu.RLock()
	all := make([]SessionRecord, 0, len(s.sessions))
	for _, rec := range s.sessions {
		all = append(all, rec) // cloned below, only for the page
	}
	s.mu.RUnlock()
	slices.SortFunc(all, compareSessionRecords)
	page := memoryPage(all, req)
	for i := range page.Items {
		page.Items[i] = page.Items[i].Clone()
	}
	return page, nil
}

// UpdateSession implements SessionStore.
func (s *MemoryStore) UpdateSession(ctx context.Context, rec SessionRecord) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sandboxagent: memory store: %w", err)
	}
	if err := rec.Validate(); err != nil {
		return err
	}
	rec = rec.Clone()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sessions[rec.ID] = rec
	if _, ok := s.logs[rec.ID]; !ok {
		s.logs[rec.ID] = newMemoryEventLog()
	}
	for len(s.sessions) > s.maxSessions {
		s.evictOldestLocked()
	}
	return nil
}

// evictOldestLocked drops the oldest record (CreatedAt, then ID) and its
// events.
func (s *MemoryStore) evictOldestLocked() {
	var oldest SessionRecord
	first := true
	for _, rec := range s.sessions {
		if first || compareSessionRecords(rec, oldest) < 0 {
			oldest, first = rec, false
		}
	}
	delete(s.sessions, oldest.ID)
	if log, ok := s.logs[oldest.ID]; ok {
		for _, ev := range log.events {
			delete(s.eventIDs, ev.ID)
		}
		delete(s.logs, oldest.ID)
	}
}

// ListEvents implements SessionStore.
func (s *MemoryStore) ListEvents(ctx context.Context, req ListEventsRequest) (ListPage[SessionEvent], error) {
	if err := ctx.Err(); err != nil {
		return ListPage[SessionEvent]{}, fmt.Errorf("sandboxagent: memory store: %w", err)
	}
	s.mu.RLock()
	var events []SessionEvent
	sorted := true
	if log, ok := s.logs[req.SessionID]; ok {
		events, sorted = slices.Clone(log.events), log.sorted
	}
	s.mu.RUnlock()
	if !sorted {
		slices.SortFunc(events, compareSessionEvents)
	}
	page := memoryPage(events, req.PageRequest())
	for i := range page.Items {
		page.Items[i] = page.Items[i].Clone()
	}
	return page, nil
}

// InsertEvent implements SessionStore. Events of sessions without a record are
// kept too, each log bounded by MaxEventsPerSession.
func (s *MemoryStore) InsertEvent(ctx context.Context, sessionID string, ev SessionEvent) (SessionEvent, error) {
	if err := ctx.Err(); err != nil {
		return SessionEvent{}, fmt.Errorf("sandboxagent: memory store: %w", err)
	}
	ev, err := ev.Normalize(sessionID)
	if err != nil {
		return SessionEvent{}, err
	}
	ev = ev.Clone()

	s.mu.Lock()
	defer s.mu.Unlock()
	log, ok := s.logs[sessionID]
	if !ok {
		log = newMemoryEventLog()
		s.logs[sessionID] = log
	}
	if owner, dup := s.eventIDs[ev.ID]; dup {
		if owner != sessionID {
			return SessionEvent{}, fmt.Errorf("%w: event id %q already stored for another session", ErrStoreConflict, ev.ID)
		}
		for _, stored := range log.events {
			if stored.ID == ev.ID {
				return stored.Clone(), nil
			}
		}
	}
	if ev.EventIndex == 0 {
		ev.EventIndex = log.maxIndex + 1
	} else if _, used := log.indexes[ev.EventIndex]; used {
		return SessionEvent{}, fmt.Errorf("%w: session %q already has event index %d", ErrStoreConflict, sessionID, ev.EventIndex)
	}

	if n := len(log.events); n > 0 && compareSessionEvents(log.events[n-1], ev) > 0 {
		log.sorted = false
	}
	log.events = append(log.events, ev)
	log.indexes[ev.EventIndex] = struct{}{}
	log.maxIndex = max(log.maxIndex, ev.EventIndex)
	s.eventIDs[ev.ID] = sessionID

	if drop := len(log.events) - s.maxEvents; drop > 0 {
		for _, old := range log.events[:drop] {
			delete(log.indexes, old.EventIndex)
			delete(s.eventIDs, old.ID)
		}
		clear(log.events[:drop])
		log.events = log.events[drop:]
		if !log.sorted {
			log.sorted = slices.IsSortedFunc(log.events, compareSessionEvents)
		}
	}
	return ev.Clone(), nil
}

func newMemoryEventLog() *memoryEventLog {
	return &memoryEventLog{indexes: make(map[int64]struct{}), sorted: true}
}

func compareSessionRecords(a, b SessionRecord) int {
	if c := cmp.Compare(a.CreatedAt, b.CreatedAt); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

func compareSessionEvents(a, b SessionEvent) int {
	if c := cmp.Compare(a.EventIndex, b.EventIndex); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

// memoryPage cuts one page out of sorted with the paging rules shared by all
// stores.
func memoryPage[T any](sorted []T, req ListPageRequest) ListPage[T] {
	offset, limit := req.Offset(), req.PageSize()
	start := min(offset, len(sorted))
	end := start + min(limit, len(sorted)-start)
	items := sorted[start:end:end]
	if items == nil {
		items = []T{}
	}
	return ListPage[T]{Items: items, NextCursor: nextCursor(start, len(items), end < len(sorted))}
}
