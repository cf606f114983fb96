package sandboxagent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/google/uuid"
)

// This file defines the persistence contract of the SDK: the records a
// SessionStore keeps and the SessionStore interface itself. The shapes and
// JSON field names match the TypeScript SDK's SessionPersistDriver types, so a
// record written by one SDK can be read by the other.

// DefaultStoreListLimit is the page size used when a ListPageRequest has no
// usable Limit (zero or negative).
const DefaultStoreListLimit = 100

// Errors returned by SessionStore implementations. They are wrapped with
// details; test for them with errors.Is.
var (
	// ErrStoreInvalidInput reports an argument the store refuses to write:
	// an empty session id, an unknown sender, a negative event index, JSON
	// that does not parse, or an event whose SessionID disagrees with the
	// session it is inserted into.
	ErrStoreInvalidInput = errors.New("sandboxagent: invalid session store input")

	// ErrStoreConflict reports an InsertEvent that would break uniqueness:
	// an explicit EventIndex already used in the session, or an event ID
	// already stored for a different session.
	ErrStoreConflict = errors.New("sandboxagent: session store conflict")
)

// SessionRecord is the persisted state of one SDK session. It is keyed by ID,
// the local session id chosen by the application (not the agent's id).
type SessionRecord struct {
	// ID is the local session id; the persistence key.
	ID string `json:"id"`
	// Agent is the agent name the session runs on, e.g. "claude".
	Agent string `json:"agent"`
	// AgentSessionID is the id the agent returned from session/new.
	AgentSessionID string `json:"agentSessionId"`
	// LastConnectionID is the id of the ACP connection that last owned the
	// session.
	LastConnectionID string `json:"lastConnectionId"`
	// CreatedAt is the creation time in milliseconds since the Unix epoch.
	CreatedAt int64 `json:"createdAt"`
	// DestroyedAt is set, in ms since the epoch, once the session was
	// destroyed. nil means "not destroyed"; stores keep nil and a pointer to
	// 0 apart.
	DestroyedAt *int64 `json:"destroyedAt,omitempty"`
	// SandboxID is "<provider>/<rawId>" when the session lives in a
	// provider-managed sandbox.
	SandboxID string `json:"sandboxId,omitempty"`
	// SessionInit is the session/new request (without _meta) used to create
	// the session; replayed when the session is restored.
	SessionInit json.RawMessage `json:"sessionInit,omitempty"`
	// ConfigOptions caches the agent's session config options.
	ConfigOptions json.RawMessage `json:"configOptions,omitempty"`
	// Modes caches the agent's session mode state. A JSON null and an absent
	// value (nil) are kept apart by every store.
	Modes json.RawMessage `json:"modes,omitempty"`
}

// Clone returns a deep copy of r.
func (r SessionRecord) Clone() SessionRecord {
	if r.DestroyedAt != nil {
		v := *r.DestroyedAt
		r.DestroyedAt = &v
	}
	r.SessionInit = cloneRawJSON(r.SessionInit)
	r.ConfigOptions = cloneRawJSON(r.ConfigOptions)
	r.Modes = cloneRawJSON(r.Modes)
	return r
}

// Validate reports whether r can be stored: ID must be non-empty and the JSON
// fields, when set, must be valid JSON. Errors wrap ErrStoreInvalidInput.
func (r SessionRecord) Validate() error {
	if r.ID == "" {
		return fmt.Errorf("%w: session record has an empty id", ErrStoreInvalidInput)
	}
	for _, f := range []struct {
		name string
		v    json.RawMessage
	}{{"sessionInit", r.SessionInit}, {"configOptions", r.ConfigOptions}, {"modes", r.Modes}} {
		if len(f.v) > 0 && !json.Valid(f.v) {
			return fmt.Errorf("%w: session %q: %s is not valid JSON", ErrStoreInvalidInput, r.ID, f.name)
		}
	}
	return nil
}

// SessionEventSender says which side of the ACP connection produced an event.
type SessionEventSender string

// The two SessionEventSender values.
const (
	// SessionEventSenderClient marks an envelope the SDK sent to the agent.
	SessionEventSenderClient SessionEventSender = "client"
	// SessionEventSenderAgent marks an envelope the SDK received.
	SessionEventSenderAgent SessionEventSender = "agent"
)

// Valid reports whether s is one of the two known senders.
func (s SessionEventSender) Valid() bool {
	return s == SessionEventSenderClient || s == SessionEventSenderAgent
}

// SessionEvent is one persisted JSON-RPC envelope of a session.
type SessionEvent struct {
	// ID is unique across all sessions. InsertEvent assigns a random UUID
	// when it is empty.
	ID string `json:"id"`
	// EventIndex orders the events of one session, starting at 1. When it is
	// 0, InsertEvent assigns max+1 for the session atomically, so concurrent
	// writers (even separate processes sharing a database) never collide.
	EventIndex int64 `json:"eventIndex"`
	// SessionID is the local session id (SessionRecord.ID).
	SessionID string `json:"sessionId"`
	// CreatedAt is the persistence time in ms since the Unix epoch;
	// InsertEvent fills it in when it is 0.
	CreatedAt int64 `json:"createdAt"`
	// ConnectionID is the ACP connection the envelope travelled on.
	ConnectionID string `json:"connectionId"`
	// Sender is SessionEventSenderClient or SessionEventSenderAgent.
	Sender SessionEventSender `json:"sender"`
	// Payload is the raw JSON-RPC envelope. Stores keep its JSON meaning;
	// the PostgreSQL store (JSONB) does not keep its exact bytes.
	Payload json.RawMessage `json:"payload"`
}

// Clone returns a deep copy of e.
func (e SessionEvent) Clone() SessionEvent {
	e.Payload = cloneRawJSON(e.Payload)
	return e
}

// Normalize validates e for SessionStore.InsertEvent(ctx, sessionID, e) and
// returns the event as a store writes it: SessionID set to sessionID, a random
// UUID as ID when empty, the current time as CreatedAt when 0. EventIndex is
// left alone (0 means "assign one"). Errors wrap ErrStoreInvalidInput. Store
// implementations call it so that every driver accepts the same input.
func (e SessionEvent) Normalize(sessionID string) (SessionEvent, error) {
	switch {
	case sessionID == "":
		return SessionEvent{}, fmt.Errorf("%w: event has an empty session id", ErrStoreInvalidInput)
	case e.SessionID != "" && e.SessionID != sessionID:
		return SessionEvent{}, fmt.Errorf("%w: event session id %q does not match %q", ErrStoreInvalidInput, e.SessionID, sessionID)
	case e.EventIndex < 0:
		return SessionEvent{}, fmt.Errorf("%w: negative event index %d", ErrStoreInvalidInput, e.EventIndex)
	case !e.Sender.Valid():
		return SessionEvent{}, fmt.Errorf("%w: unknown event sender %q", ErrStoreInvalidInput, e.Sender)
	case len(e.Payload) == 0 || !json.Valid(e.Payload):
		return SessionEvent{}, fmt.Errorf("%w: event payload is not valid JSON", ErrStoreInvalidInput)
	}
	e.SessionID = sessionID
	if e.ID == "" {
		e.ID = uuid.NewString()
	}
	if e.CreatedAt == 0 {
		e.CreatedAt = time.Now().UnixMilli()
	}
	return e, nil
}

// ListPageRequest asks for one page of a list. The cursor is the decimal
// offset returned as ListPage.NextCursor by the previous page.
type ListPageRequest struct {
	// Cursor is a decimal offset, read like JavaScript's parseInt(cursor, 10)
	// as the TypeScript SDK does: leading space and trailing garbage are
	// ignored ("3abc" → 3); no digits or a negative value → 0.
	Cursor string `json:"cursor,omitempty"`
	// Limit is the page size; zero or negative → DefaultStoreListLimit.
	Limit int `json:"limit,omitempty"`
}

// Offset returns the offset the cursor encodes (see Cursor); an offset too
// large for an int is returned as math.MaxInt.
func (r ListPageRequest) Offset() int {
	s := strings.TrimLeftFunc(r.Cursor, unicode.IsSpace)
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	end := 0
	for end < len(s) && s[end] >= '0' && s[end] <= '9' {
		end++
	}
	if end == 0 || neg {
		return 0
	}
	n, err := strconv.ParseInt(s[:end], 10, 0)
	if err != nil { // only ErrRange is possible here
		return math.MaxInt
	}
	return int(n)
}

// PageSize returns the effective limit: Limit, or DefaultStoreListLimit when
// Limit is zero or negative.
func (r ListPageRequest) PageSize() int {
	if r.Limit < 1 {
		return DefaultStoreListLimit
	}
	return r.Limit
}

// nextCursor returns ListPage.NextCursor for a page of n items read at
// offset: the decimal offset of the next page when more remain, else "".
func nextCursor(offset, n int, more bool) string {
	if !more {
		return ""
	}
	return strconv.Itoa(offset + n)
}

// StoreFetchLimit is the row count a SQL driver asks for to fill a page of
// limit items: one more, so StorePage can tell whether another page exists.
func StoreFetchLimit(limit int) int64 {
	if limit >= math.MaxInt64-1 {
		return math.MaxInt64
	}
	return int64(limit) + 1
}

// StorePage turns rows fetched with StoreFetchLimit at offset into a page.
func StorePage[T any](rows []T, offset, limit int) ListPage[T] {
	more := len(rows) > limit
	if more {
		rows = rows[:limit]
	}
	if rows == nil {
		rows = []T{}
	}
	return ListPage[T]{Items: rows, NextCursor: nextCursor(offset, len(rows), more)}
}

// ListPage is one page of a list. NextCursor is empty on the last page.
type ListPage[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"nextCursor,omitempty"`
}

// ListEventsRequest asks for one page of a session's events, ordered by
// EventIndex.
type ListEventsRequest struct {
	SessionID string `json:"sessionId"`
	Cursor    string `json:"cursor,omitempty"`
	Limit     int    `json:"limit,omitempty"`
}

// PageRequest returns the paging part of r.
func (r ListEventsRequest) PageRequest() ListPageRequest {
	return ListPageRequest{Cursor: r.Cursor, Limit: r.Limit}
}

// SessionStore persists session records and their event logs. The SDK writes
// a full record with UpdateSession whenever a session changes and appends
// every attributed JSON-RPC envelope with InsertEvent.
//
// Implementations must be safe for concurrent use, return copies (never
// memory the store keeps), and honour ctx. Lists are paged with decimal
// offset cursors: sessions ordered by CreatedAt then ID, events by
// EventIndex then ID (byte-wise ID order in every driver).
//
// Implementations in this module: MemoryStore (package sandboxagent), and the
// SQLite and PostgreSQL stores in persist/sqlite and persist/postgres. The
// conformance suite in persist/storetest checks any implementation.
type SessionStore interface {
	// GetSession returns the record with the given id; ok is false (and err
	// nil) when there is none.
	GetSession(ctx context.Context, id string) (rec SessionRecord, ok bool, err error)
	// ListSessions returns one page of records ordered by CreatedAt, then ID.
	ListSessions(ctx context.Context, req ListPageRequest) (ListPage[SessionRecord], error)
	// UpdateSession stores rec, replacing any record with the same ID.
	UpdateSession(ctx context.Context, rec SessionRecord) error
	// ListEvents returns one page of a session's events ordered by
	// EventIndex, then ID.
	ListEvents(ctx context.Context, req ListEventsRequest) (ListPage[SessionEvent], error)
	// InsertEvent appends ev to the session's log and returns the stored
	// event (see SessionEvent.Normalize for the defaults filled in). When
	// ev.EventIndex is 0 the store assigns max+1 for the session atomically;
	// an explicit index is kept, and one already in use fails with
	// ErrStoreConflict. Inserting an ID that is already stored for the same
	// session is idempotent: the stored event is returned unchanged. The
	// session record need not exist.
	InsertEvent(ctx context.Context, sessionID string, ev SessionEvent) (SessionEvent, error)
}

func cloneRawJSON(m json.RawMessage) json.RawMessage {
	if m == nil {
		return nil
	}
	return append(json.RawMessage{}, m...)
}
