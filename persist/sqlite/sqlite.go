// Package sqlite is a sandboxagent.SessionStore backed by SQLite, using the
// pure-Go driver modernc.org/sqlite (no cgo).
//
// The tables use the column names of the TypeScript SDK's SQLite driver
// (sessions, events), plus the 0.4 SDK's sandbox_id, config_options_json and
// modes_json, so a database written by the TypeScript driver can be opened
// and is upgraded in place. Schema changes are tracked in a
// schema_migrations table.
//
// Event indexes are assigned by the database: MAX+1 is read and the row
// inserted by one statement inside a write transaction that holds SQLite's
// write lock (Open's connections begin with BEGIN IMMEDIATE), a unique index
// on (session_id, event_index) backs it up, and SQLITE_BUSY makes the store
// retry the whole transaction. Any number of Stores, in one process or
// several, can append to the same session without producing duplicate
// indexes.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	sqlitedrv "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	sandboxagent "github.com/sandbox-agent-go/sandbox-agent"
	"github.com/sandbox-agent-go/sandbox-agent/persist/internal/migrations"
)

// DriverName is the database/sql driver name registered by modernc.org/sqlite.
const DriverName = "sqlite"

// DefaultBusyTimeout is how long a write waits for another connection's write
// lock before it fails.
const DefaultBusyTimeout = 5 * time.Second

//go:embed migrations/*.sql
var migrationFS embed.FS

// Option configures Open and New.
type Option func(*options)

type options struct {
	busyTimeout time.Duration
}

// WithBusyTimeout sets how long a write may wait for the database's write
// lock, held by another connection or process, before it fails (default
// DefaultBusyTimeout). Open also sets it as the connections' busy_timeout.
func WithBusyTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.busyTimeout = d
		}
	}
}

// Store is a sandboxagent.SessionStore on a SQLite database. It is safe for
// concurrent use.
type Store struct {
	db          *sql.DB
	owned       bool
	busyTimeout time.Duration
	stmts       statements
	// writeSem serialises this Store's own write transactions, so they queue
	// in Go instead of spinning in SQLite's busy handler; other Stores and
	// processes are kept out by the database lock.
	writeSem chan struct{}
}

var _ sandboxagent.SessionStore = (*Store)(nil)

// Open opens (creating it if needed) the SQLite database at path and brings
// its schema up to date. path is a file name, ":memory:" for a private
// in-memory database, or a "file:" URI. File databases use WAL journaling,
// synchronous=NORMAL and foreign keys; writers wait for each other up to the
// busy timeout. Close the Store when done.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	if path == "" {
		return nil, fmt.Errorf("sqlite store: empty database path (use %q for an in-memory database)", ":memory:")
	}
	o := buildOptions(opts)
	dsn, memory := buildDSN(path, o.busyTimeout)
	db, err := sql.Open(DriverName, dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: open %s: %w", path, err)
	}
	if memory {
		// Every connection to ":memory:" is a database of its own: keep
		// exactly one, forever.
		db.SetMaxOpenConns(1)
		db.SetMaxIdleConns(1)
		db.SetConnMaxLifetime(0)
		db.SetConnMaxIdleTime(0)
	} else {
		// Opening a connection is costly (pragmas, WAL setup): keep them.
		n := max(4, runtime.GOMAXPROCS(0))
		db.SetMaxOpenConns(n)
		db.SetMaxIdleConns(n)
	}
	s, err := newStore(ctx, db, true, o)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite store: open %s: %w", path, err)
	}
	return s, nil
}

// New returns a Store on db, which must have been opened with the "sqlite"
// driver of modernc.org/sqlite, and brings the schema up to date. The caller
// keeps ownership of db: Close does not close it. Pragmas such as
// busy_timeout and journal_mode are the caller's choice (see Open for the
// ones it uses); writes that find the database locked are retried for the
// busy timeout either way. A ":memory:" db must be limited to one
// connection (db.SetMaxOpenConns(1)).
func New(ctx context.Context, db *sql.DB, opts ...Option) (*Store, error) {
	if db == nil {
		return nil, errors.New("sqlite store: nil *sql.DB")
	}
	s, err := newStore(ctx, db, false, buildOptions(opts))
	if err != nil {
		return nil, fmt.Errorf("sqlite store: %w", err)
	}
	return s, nil
}

func buildOptions(opts []Option) options {
	o := options{busyTimeout: DefaultBusyTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

func newStore(ctx context.Context, db *sql.DB, owned bool, o options) (*Store, error) {
	s := &Store{db: db, owned: owned, busyTimeout: o.busyTimeout, writeSem: make(chan struct{}, 1)}
	if err := s.migrate(ctx); err != nil {
		return nil, err
	}
	if err := s.stmts.prepare(ctx, db); err != nil {
		s.stmts.close()
		return nil, err
	}
	return s, nil
}

// statements are prepared once; database/sql prepares them again on each
// connection that runs them and keeps them there, so SQL is parsed once per
// connection, not per call.
type statements struct {
	getSession, listSessions, upsertSession *sql.Stmt
	listEvents, insertEvent, getEventByID   *sql.Stmt
}

func (st *statements) prepare(ctx context.Context, db *sql.DB) error {
	for _, p := range []struct {
		dst **sql.Stmt
		sql string
	}{
		{&st.getSession, `SELECT ` + sessionColumns + ` FROM sessions WHERE id = ?`},
		{&st.listSessions, `SELECT ` + sessionColumns + ` FROM sessions ORDER BY created_at, id LIMIT ? OFFSET ?`},
		{&st.upsertSession, upsertSessionSQL},
		// (session_id, event_index) is unique, so the id tie-break of the
		// listing order never applies.
		{&st.listEvents, `SELECT ` + eventColumns + ` FROM events WHERE session_id = ? ORDER BY event_index LIMIT ? OFFSET ?`},
		{&st.insertEvent, insertEventSQL},
		{&st.getEventByID, `SELECT ` + eventColumns + ` FROM events WHERE id = ?`},
	} {
		stmt, err := db.PrepareContext(ctx, p.sql)
		if err != nil {
			return fmt.Errorf("prepare: %w", err)
		}
		*p.dst = stmt
	}
	return nil
}

func (st *statements) close() {
	for _, stmt := range []*sql.Stmt{st.getSession, st.listSessions, st.upsertSession, st.listEvents, st.insertEvent, st.getEventByID} {
		if stmt != nil {
			stmt.Close()
		}
	}
}

// buildDSN turns path into a modernc.org/sqlite DSN with the store's pragmas
// and reports whether it names an in-memory database.
func buildDSN(p string, busy time.Duration) (dsn string, memory bool) {
	memory = p == ":memory:" || strings.Contains(p, ":memory:") || strings.Contains(p, "mode=memory")
	params := []string{
		"_pragma=" + fmt.Sprintf("busy_timeout(%d)", busy.Milliseconds()),
		"_pragma=foreign_keys(1)",
	}
	if !memory {
		params = append(params, "_pragma=journal_mode(WAL)", "_pragma=synchronous(NORMAL)")
	}
	// database/sql transactions then start with BEGIN IMMEDIATE.
	params = append(params, "_txlock=immediate")
	query := strings.Join(params, "&")
	switch {
	case strings.HasPrefix(p, "file:"):
		sep := "?"
		if strings.Contains(p, "?") {
			sep = "&"
		}
		return p + sep + query, memory
	case p == ":memory:":
		return "file::memory:?" + query, true
	default:
		// A URI, so that any file name works: escape what URIs treat
		// specially.
		name := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(filepath.Clean(p))
		return "file:" + name + "?" + query, memory
	}
}

// Close closes the database if Open opened it; a Store made by New leaves
// its *sql.DB open.
func (s *Store) Close() error {
	s.stmts.close()
	if !s.owned {
		return nil
	}
	return s.db.Close()
}

// DB returns the underlying database handle.
func (s *Store) DB() *sql.DB { return s.db }

const sessionColumns = `id, agent, agent_session_id, last_connection_id, created_at, destroyed_at, session_init_json, sandbox_id, config_options_json, modes_json`

const eventColumns = `id, event_index, session_id, created_at, connection_id, sender, payload_json`

// GetSession implements sandboxagent.SessionStore.
func (s *Store) GetSession(ctx context.Context, id string) (sandboxagent.SessionRecord, bool, error) {
	rows, err := s.stmts.getSession.QueryContext(ctx, id)
	if err != nil {
		return sandboxagent.SessionRecord{}, false, fmt.Errorf("sqlite store: get session: %w", err)
	}
	recs, err := scanSessions(rows)
	if err != nil {
		return sandboxagent.SessionRecord{}, false, fmt.Errorf("sqlite store: get session: %w", err)
	}
	if len(recs) == 0 {
		return sandboxagent.SessionRecord{}, false, nil
	}
	return recs[0], true, nil
}

// ListSessions implements sandboxagent.SessionStore.
func (s *Store) ListSessions(ctx context.Context, req sandboxagent.ListPageRequest) (sandboxagent.ListPage[sandboxagent.SessionRecord], error) {
	offset, limit := req.Offset(), req.PageSize()
	rows, err := s.stmts.listSessions.QueryContext(ctx, sandboxagent.StoreFetchLimit(limit), offset)
	if err != nil {
		return sandboxagent.ListPage[sandboxagent.SessionRecord]{}, fmt.Errorf("sqlite store: list sessions: %w", err)
	}
	recs, err := scanSessions(rows)
	if err != nil {
		return sandboxagent.ListPage[sandboxagent.SessionRecord]{}, fmt.Errorf("sqlite store: list sessions: %w", err)
	}
	return sandboxagent.StorePage(recs, offset, limit), nil
}

// UpdateSession implements sandboxagent.SessionStore.
func (s *Store) UpdateSession(ctx context.Context, rec sandboxagent.SessionRecord) error {
	if err := rec.Validate(); err != nil {
		return err
	}
	var destroyed any
	if rec.DestroyedAt != nil {
		destroyed = *rec.DestroyedAt
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.StmtContext(ctx, s.stmts.upsertSession).ExecContext(ctx,
			rec.ID, rec.Agent, rec.AgentSessionID, rec.LastConnectionID, rec.CreatedAt, destroyed,
			jsonArg(rec.SessionInit), textArg(rec.SandboxID), jsonArg(rec.ConfigOptions), jsonArg(rec.Modes))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite store: update session %q: %w", rec.ID, err)
	}
	return nil
}

const upsertSessionSQL = `INSERT INTO sessions (` + sessionColumns + `)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    agent = excluded.agent,
    agent_session_id = excluded.agent_session_id,
    last_connection_id = excluded.last_connection_id,
    created_at = excluded.created_at,
    destroyed_at = excluded.destroyed_at,
    session_init_json = excluded.session_init_json,
    sandbox_id = excluded.sandbox_id,
    config_options_json = excluded.config_options_json,
    modes_json = excluded.modes_json`

// ListEvents implements sandboxagent.SessionStore.
func (s *Store) ListEvents(ctx context.Context, req sandboxagent.ListEventsRequest) (sandboxagent.ListPage[sandboxagent.SessionEvent], error) {
	offset, limit := req.PageRequest().Offset(), req.PageRequest().PageSize()
	rows, err := s.stmts.listEvents.QueryContext(ctx, req.SessionID, sandboxagent.StoreFetchLimit(limit), offset)
	if err != nil {
		return sandboxagent.ListPage[sandboxagent.SessionEvent]{}, fmt.Errorf("sqlite store: list events: %w", err)
	}
	events, err := scanEvents(rows)
	if err != nil {
		return sandboxagent.ListPage[sandboxagent.SessionEvent]{}, fmt.Errorf("sqlite store: list events: %w", err)
	}
	return sandboxagent.StorePage(events, offset, limit), nil
}

// insertEventSQL assigns max+1 when ?2 is 0. It runs inside BEGIN IMMEDIATE,
// so no other writer can add an event between the MAX and the INSERT.
const insertEventSQL = `INSERT INTO events (` + eventColumns + `)
VALUES (?1,
    CASE WHEN ?2 > 0 THEN ?2 ELSE (SELECT COALESCE(MAX(event_index), 0) + 1 FROM events WHERE session_id = ?3) END,
    ?3, ?4, ?5, ?6, ?7)
ON CONFLICT (id) DO NOTHING
RETURNING event_index`

// InsertEvent implements sandboxagent.SessionStore.
func (s *Store) InsertEvent(ctx context.Context, sessionID string, ev sandboxagent.SessionEvent) (sandboxagent.SessionEvent, error) {
	ev, err := ev.Normalize(sessionID)
	if err != nil {
		return sandboxagent.SessionEvent{}, err
	}
	ev = ev.Clone()
	var stored sandboxagent.SessionEvent
	err = s.write(ctx, func(tx *sql.Tx) error {
		var index int64
		err := tx.StmtContext(ctx, s.stmts.insertEvent).QueryRowContext(ctx,
			ev.ID, ev.EventIndex, ev.SessionID, ev.CreatedAt, ev.ConnectionID, string(ev.Sender), string(ev.Payload)).Scan(&index)
		switch {
		case err == nil:
			stored = ev
			stored.EventIndex = index
			return nil
		case errors.Is(err, sql.ErrNoRows):
			// The ID exists already.
			rows, err := tx.StmtContext(ctx, s.stmts.getEventByID).QueryContext(ctx, ev.ID)
			if err != nil {
				return err
			}
			existing, err := scanEvents(rows)
			if err != nil {
				return err
			}
			if len(existing) != 1 || existing[0].SessionID != sessionID {
				return fmt.Errorf("%w: event id %q already stored for another session", sandboxagent.ErrStoreConflict, ev.ID)
			}
			stored = existing[0]
			return nil
		case isUniqueViolation(err):
			return fmt.Errorf("%w: session %q already has event index %d", sandboxagent.ErrStoreConflict, sessionID, ev.EventIndex)
		default:
			return err
		}
	})
	if err != nil {
		return sandboxagent.SessionEvent{}, fmt.Errorf("sqlite store: insert event into %q: %w", sessionID, err)
	}
	return stored, nil
}

// write runs fn in a write transaction. Open's connections begin
// transactions with BEGIN IMMEDIATE, which takes the database's write lock up
// front (waiting up to busy_timeout); for a New Store the first write
// statement takes it. If the database stays locked (SQLITE_BUSY), the whole
// transaction is retried with backoff until the busy timeout has passed.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case s.writeSem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.writeSem }()

	deadline := time.Now().Add(s.busyTimeout)
	delay := time.Millisecond
	for {
		err := s.writeOnce(ctx, fn)
		if err == nil || !isBusy(err) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("database stayed locked for %v: %w", s.busyTimeout, err)
		}
		// Full jitter, so that competing processes do not retry in step.
		t := time.NewTimer(time.Duration(rand.Int64N(int64(delay))) + time.Millisecond/2)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, 10*time.Millisecond)
	}
}

func (s *Store) writeOnce(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// --- migrations ---

// migrate applies the pending migrations, all in one write transaction so
// concurrent openers of the same file apply each migration once.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := migrations.Load(migrationFS, "migrations")
	if err != nil {
		return err
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at INTEGER NOT NULL
)`); err != nil {
			return err
		}
		applied := map[int64]bool{}
		rows, err := tx.QueryContext(ctx, `SELECT version FROM schema_migrations`)
		if err != nil {
			return err
		}
		for rows.Next() {
			var v int64
			if err := rows.Scan(&v); err != nil {
				rows.Close()
				return err
			}
			applied[v] = true
		}
		if err := rows.Close(); err != nil {
			return err
		}
		for _, m := range ms {
			if applied[m.Version] {
				continue
			}
			if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
				return fmt.Errorf("migration %s: %w", m.Name, err)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
				m.Version, m.Name, time.Now().UnixMilli()); err != nil {
				return fmt.Errorf("migration %s: %w", m.Name, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// --- helpers ---

func scanSessions(rows *sql.Rows) ([]sandboxagent.SessionRecord, error) {
	defer rows.Close()
	var recs []sandboxagent.SessionRecord
	for rows.Next() {
		var (
			r                            sandboxagent.SessionRecord
			destroyed                    sql.NullInt64
			sandbox                      sql.NullString
			sessionInit, config, modeRaw []byte
		)
		if err := rows.Scan(&r.ID, &r.Agent, &r.AgentSessionID, &r.LastConnectionID, &r.CreatedAt, &destroyed,
			&sessionInit, &sandbox, &config, &modeRaw); err != nil {
			return nil, err
		}
		if destroyed.Valid {
			r.DestroyedAt = &destroyed.Int64
		}
		r.SandboxID = sandbox.String
		r.SessionInit, r.ConfigOptions, r.Modes = sessionInit, config, modeRaw
		recs = append(recs, r)
	}
	return recs, rows.Err()
}

func scanEvents(rows *sql.Rows) ([]sandboxagent.SessionEvent, error) {
	defer rows.Close()
	var events []sandboxagent.SessionEvent
	for rows.Next() {
		var (
			e       sandboxagent.SessionEvent
			sender  string
			payload []byte
		)
		if err := rows.Scan(&e.ID, &e.EventIndex, &e.SessionID, &e.CreatedAt, &e.ConnectionID, &sender, &payload); err != nil {
			return nil, err
		}
		e.Sender, e.Payload = sandboxagent.SessionEventSender(sender), payload
		events = append(events, e)
	}
	return events, rows.Err()
}

// jsonArg stores an absent JSON value as NULL and anything else, including
// a JSON null, as text.
func jsonArg(m []byte) any {
	if len(m) == 0 {
		return nil
	}
	return string(m)
}

func textArg(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func sqliteCode(err error) (int, bool) {
	var se *sqlitedrv.Error
	if errors.As(err, &se) {
		return se.Code(), true
	}
	return 0, false
}

func isBusy(err error) bool {
	code, ok := sqliteCode(err)
	return ok && (code&0xff == sqlite3.SQLITE_BUSY || code&0xff == sqlite3.SQLITE_LOCKED)
}

func isUniqueViolation(err error) bool {
	code, ok := sqliteCode(err)
	return ok && (code == sqlite3.SQLITE_CONSTRAINT_UNIQUE || code == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY)
}
