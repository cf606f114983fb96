// Package postgres is a sandboxagent.SessionStore backed by PostgreSQL,
// using github.com/jackc/pgx/v5.
//
// The tables live in one schema (default "public", see WithSchema) and use
// the column names and types of the TypeScript SDK's PostgreSQL driver
// (BIGINT times and indexes, JSONB documents), plus the 0.4 SDK's
// sandbox_id, config_options_json and modes_json. Applied migrations are
// recorded in the schema's sandbox_agent_schema_migrations table (not
// "schema_migrations", which other migration tools commonly own in "public").
//
// Event indexes are assigned by the database: each insert takes a
// transaction-scoped advisory lock on its session, then inserts MAX+1, all in
// one round trip, and a UNIQUE (session_id, event_index) constraint backs it
// up. Any number of Stores and processes can append to one session without
// producing duplicate indexes.
//
// JSONB keeps the meaning of JSON documents, not their bytes: key order,
// whitespace and escapes may change, and PostgreSQL rejects the \u0000
// escape (reported as sandboxagent.ErrStoreInvalidInput).
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"regexp"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	sandboxagent "github.com/sandbox-agent-go/sandbox-agent"
	"github.com/sandbox-agent-go/sandbox-agent/persist/internal/migrations"
)

// DefaultSchema is the schema used without WithSchema.
const DefaultSchema = "public"

// MigrationsTable is the name of the table, in the store's schema, that
// records applied migrations.
const MigrationsTable = "sandbox_agent_schema_migrations"

//go:embed migrations/*.sql
var migrationFS embed.FS

var schemaNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// DB is what the store needs from a connection pool. *pgxpool.Pool
// satisfies it, and so does a pgx.Tx (the store then works inside that
// transaction). A *pgx.Conn satisfies it too but is not safe for concurrent
// use.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Begin(ctx context.Context) (pgx.Tx, error)
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// Option configures Open and New.
type Option func(*options)

type options struct {
	schema   string
	maxConns int
}

// WithSchema selects the schema holding the tables (default "public"). The
// name must match ^[A-Za-z_][A-Za-z0-9_]*$; it is quoted, so it is
// case-sensitive. The schema is created if it does not exist.
func WithSchema(name string) Option {
	return func(o *options) { o.schema = name }
}

// WithMaxConns caps the connections Open's pool opens (default
// max(4, GOMAXPROCS)). New ignores it.
func WithMaxConns(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.maxConns = n
		}
	}
}

// Store is a sandboxagent.SessionStore on a PostgreSQL schema. It is safe
// for concurrent use when its DB is.
type Store struct {
	db     DB
	pool   *pgxpool.Pool // set when Open created the pool
	schema string
	q      queries
}

var _ sandboxagent.SessionStore = (*Store)(nil)

// Open connects to the database described by connString (a postgres:// URL
// or key=value string as understood by pgx), creates the schema and tables
// if needed and returns a Store with its own connection pool. Close it when
// done.
func Open(ctx context.Context, connString string, opts ...Option) (*Store, error) {
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("postgres store: %w", err)
	}
	cfg.MaxConns = int32(o.maxConns)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres store: %w", err)
	}
	s, err := newStore(ctx, pool, o)
	if err != nil {
		pool.Close()
		return nil, err
	}
	s.pool = pool
	return s, nil
}

// New returns a Store on db, typically a *pgxpool.Pool, after creating the
// schema and tables if needed. The caller keeps ownership of db.
func New(ctx context.Context, db DB, opts ...Option) (*Store, error) {
	if db == nil {
		return nil, errors.New("postgres store: nil DB")
	}
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	return newStore(ctx, db, o)
}

func buildOptions(opts []Option) (options, error) {
	o := options{schema: DefaultSchema, maxConns: max(4, runtime.GOMAXPROCS(0))}
	for _, opt := range opts {
		opt(&o)
	}
	if !schemaNameRE.MatchString(o.schema) {
		return o, fmt.Errorf("postgres store: %w: schema name %q must match %s", sandboxagent.ErrStoreInvalidInput, o.schema, schemaNameRE)
	}
	return o, nil
}

func newStore(ctx context.Context, db DB, o options) (*Store, error) {
	s := &Store{db: db, schema: o.schema, q: buildQueries(quoteIdent(o.schema))}
	if err := s.migrate(ctx); err != nil {
		return nil, fmt.Errorf("postgres store: schema %s: %w", o.schema, err)
	}
	return s, nil
}

// Close closes the connection pool if Open created it; a Store made by New
// leaves its DB alone. It always returns nil.
func (s *Store) Close() error {
	if s.pool != nil {
		s.pool.Close()
	}
	return nil
}

// Schema returns the schema holding the store's tables.
func (s *Store) Schema() string { return s.schema }

type queries struct {
	getSession, listSessions, upsertSession string
	listEvents, insertEvent, getEventByID   string
}

const (
	sessionColumns = `id, agent, agent_session_id, last_connection_id, created_at, destroyed_at, session_init_json::text, sandbox_id, config_options_json::text, modes_json::text`
	eventColumns   = `id, event_index, session_id, created_at, connection_id, sender, payload_json::text`
)

func buildQueries(schema string) queries {
	sessions, events := schema+".sessions", schema+".events"
	return queries{
		getSession:   `SELECT ` + sessionColumns + ` FROM ` + sessions + ` WHERE id = $1`,
		listSessions: `SELECT ` + sessionColumns + ` FROM ` + sessions + ` ORDER BY created_at, id COLLATE "C" LIMIT $1 OFFSET $2`,
		upsertSession: `INSERT INTO ` + sessions + ` (id, agent, agent_session_id, last_connection_id, created_at, destroyed_at, session_init_json, sandbox_id, config_options_json, modes_json)
VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9::jsonb, $10::jsonb)
ON CONFLICT (id) DO UPDATE SET
    agent = EXCLUDED.agent,
    agent_session_id = EXCLUDED.agent_session_id,
    last_connection_id = EXCLUDED.last_connection_id,
    created_at = EXCLUDED.created_at,
    destroyed_at = EXCLUDED.destroyed_at,
    session_init_json = EXCLUDED.session_init_json,
    sandbox_id = EXCLUDED.sandbox_id,
    config_options_json = EXCLUDED.config_options_json,
    modes_json = EXCLUDED.modes_json`,
		// (session_id, event_index) is unique, so the id tie-break of the
		// listing order never applies.
		listEvents: `SELECT ` + eventColumns + ` FROM ` + events + ` WHERE session_id = $1 ORDER BY event_index LIMIT $2 OFFSET $3`,
		// $2 = 0 assigns MAX+1. Run after the session's advisory lock was
		// taken by an earlier statement of the same transaction, so its
		// snapshot sees every committed event of the session.
		insertEvent: `INSERT INTO ` + events + ` (id, event_index, session_id, created_at, connection_id, sender, payload_json)
VALUES ($1,
    CASE WHEN $2::bigint > 0 THEN $2::bigint
         ELSE (SELECT COALESCE(MAX(event_index), 0) + 1 FROM ` + events + ` WHERE session_id = $3) END,
    $3, $4, $5, $6, $7::jsonb)
ON CONFLICT (id) DO NOTHING
RETURNING event_index`,
		getEventByID: `SELECT ` + eventColumns + ` FROM ` + events + ` WHERE id = $1`,
	}
}

// GetSession implements sandboxagent.SessionStore.
func (s *Store) GetSession(ctx context.Context, id string) (sandboxagent.SessionRecord, bool, error) {
	rows, err := s.db.Query(ctx, s.q.getSession, id)
	if err != nil {
		return sandboxagent.SessionRecord{}, false, s.wrap("get session", err)
	}
	recs, err := scanSessions(rows)
	if err != nil {
		return sandboxagent.SessionRecord{}, false, s.wrap("get session", err)
	}
	if len(recs) == 0 {
		return sandboxagent.SessionRecord{}, false, nil
	}
	return recs[0], true, nil
}

// ListSessions implements sandboxagent.SessionStore.
func (s *Store) ListSessions(ctx context.Context, req sandboxagent.ListPageRequest) (sandboxagent.ListPage[sandboxagent.SessionRecord], error) {
	offset, limit := req.Offset(), req.PageSize()
	rows, err := s.db.Query(ctx, s.q.listSessions, sandboxagent.StoreFetchLimit(limit), int64(offset))
	if err != nil {
		return sandboxagent.ListPage[sandboxagent.SessionRecord]{}, s.wrap("list sessions", err)
	}
	recs, err := scanSessions(rows)
	if err != nil {
		return sandboxagent.ListPage[sandboxagent.SessionRecord]{}, s.wrap("list sessions", err)
	}
	return sandboxagent.StorePage(recs, offset, limit), nil
}

// UpdateSession implements sandboxagent.SessionStore.
func (s *Store) UpdateSession(ctx context.Context, rec sandboxagent.SessionRecord) error {
	if err := rec.Validate(); err != nil {
		return err
	}
	var sandbox any
	if rec.SandboxID != "" {
		sandbox = rec.SandboxID
	}
	_, err := s.db.Exec(ctx, s.q.upsertSession,
		rec.ID, rec.Agent, rec.AgentSessionID, rec.LastConnectionID, rec.CreatedAt, rec.DestroyedAt,
		jsonArg(rec.SessionInit), sandbox, jsonArg(rec.ConfigOptions), jsonArg(rec.Modes))
	if err != nil {
		return s.wrap(fmt.Sprintf("update session %q", rec.ID), err)
	}
	return nil
}

// ListEvents implements sandboxagent.SessionStore.
func (s *Store) ListEvents(ctx context.Context, req sandboxagent.ListEventsRequest) (sandboxagent.ListPage[sandboxagent.SessionEvent], error) {
	offset, limit := req.PageRequest().Offset(), req.PageRequest().PageSize()
	rows, err := s.db.Query(ctx, s.q.listEvents, req.SessionID, sandboxagent.StoreFetchLimit(limit), int64(offset))
	if err != nil {
		return sandboxagent.ListPage[sandboxagent.SessionEvent]{}, s.wrap("list events", err)
	}
	events, err := scanEvents(rows)
	if err != nil {
		return sandboxagent.ListPage[sandboxagent.SessionEvent]{}, s.wrap("list events", err)
	}
	return sandboxagent.StorePage(events, offset, limit), nil
}

// maxAssignAttempts bounds the retries of an insert whose assigned index
// collided; with the advisory lock that does not happen, but a DB that
// splits a batch over connections would break the lock.
const maxAssignAttempts = 5

// InsertEvent implements sandboxagent.SessionStore.
func (s *Store) InsertEvent(ctx context.Context, sessionID string, ev sandboxagent.SessionEvent) (sandboxagent.SessionEvent, error) {
	ev, err := ev.Normalize(sessionID)
	if err != nil {
		return sandboxagent.SessionEvent{}, err
	}
	ev = ev.Clone()
	op := fmt.Sprintf("insert event into %q", sessionID)
	for attempt := 1; ; attempt++ {
		index, inserted, err := s.insertOnce(ctx, ev)
		switch {
		case err == nil && inserted:
			ev.EventIndex = index
			return ev, nil
		case err == nil:
			return s.existingEvent(ctx, ev, op)
		case isUniqueViolation(err) && ev.EventIndex == 0 && attempt < maxAssignAttempts:
			continue
		case isUniqueViolation(err) && ev.EventIndex == 0:
			return sandboxagent.SessionEvent{}, fmt.Errorf("postgres store: %s: %w: no free event index after %d attempts: %w", op, sandboxagent.ErrStoreConflict, attempt, err)
		case isUniqueViolation(err):
			return sandboxagent.SessionEvent{}, fmt.Errorf("postgres store: %s: %w: session already has event index %d", op, sandboxagent.ErrStoreConflict, ev.EventIndex)
		default:
			return sandboxagent.SessionEvent{}, s.wrap(op, err)
		}
	}
}

// insertOnce sends the advisory lock and the insert as one batch: one round
// trip, one implicit transaction. inserted is false when the event ID exists.
func (s *Store) insertOnce(ctx context.Context, ev sandboxagent.SessionEvent) (index int64, inserted bool, err error) {
	b := &pgx.Batch{}
	if ev.EventIndex == 0 {
		b.Queue(`SELECT pg_advisory_xact_lock($1)`, s.sessionLockKey(ev.SessionID))
	}
	b.Queue(s.q.insertEvent, ev.ID, ev.EventIndex, ev.SessionID, ev.CreatedAt, ev.ConnectionID, string(ev.Sender), string(ev.Payload))
	br := s.db.SendBatch(ctx, b)
	if ev.EventIndex == 0 {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return 0, false, err
		}
	}
	err = br.QueryRow().Scan(&index)
	closeErr := br.Close()
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return 0, false, closeErr
	case err != nil:
		return 0, false, err
	case closeErr != nil:
		return 0, false, closeErr
	}
	return index, true, nil
}

// existingEvent resolves an insert whose ID was already stored: the same
// session makes it idempotent, another session is a conflict.
func (s *Store) existingEvent(ctx context.Context, ev sandboxagent.SessionEvent, op string) (sandboxagent.SessionEvent, error) {
	rows, err := s.db.Query(ctx, s.q.getEventByID, ev.ID)
	if err != nil {
		return sandboxagent.SessionEvent{}, s.wrap(op, err)
	}
	existing, err := scanEvents(rows)
	if err != nil {
		return sandboxagent.SessionEvent{}, s.wrap(op, err)
	}
	if len(existing) != 1 || existing[0].SessionID != ev.SessionID {
		return sandboxagent.SessionEvent{}, fmt.Errorf("postgres store: %s: %w: event id %q already stored for another session", op, sandboxagent.ErrStoreConflict, ev.ID)
	}
	return existing[0], nil
}

// sessionLockKey is the advisory lock serialising index assignment for one
// session of this schema.
func (s *Store) sessionLockKey(sessionID string) int64 {
	return lockKey("sandbox-agent/events", s.schema, sessionID)
}

func lockKey(parts ...string) int64 {
	h := fnv.New64a()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return int64(h.Sum64())
}

// wrap prefixes err and classifies the PostgreSQL errors that mean "this
// input cannot be stored".
func (s *Store) wrap(op string, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "22P05", // untranslatable_character: \u0000 in JSONB
			"22021", // character_not_in_repertoire: NUL or invalid UTF-8 in text
			"22P02": // invalid_text_representation
			return fmt.Errorf("postgres store: %s: %w: %w", op, sandboxagent.ErrStoreInvalidInput, err)
		}
	}
	return fmt.Errorf("postgres store: %s: %w", op, err)
}

// --- migrations ---

// migrate creates the schema and applies pending migrations in one
// transaction, serialised between concurrent openers by an advisory lock.
// When everything is in place already it runs no DDL, so a role without
// CREATE privileges can use a prepared schema.
func (s *Store) migrate(ctx context.Context) (err error) {
	ms, err := migrations.Load(migrationFS, "migrations")
	if err != nil {
		return err
	}
	schema := quoteIdent(s.schema)
	table := schema + "." + quoteIdent(MigrationsTable)

	tx, err := s.db.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = tx.Rollback(rctx)
		}
	}()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockKey("sandbox-agent/migrate", s.schema)); err != nil {
		return err
	}
	var schemaExists bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, s.schema).Scan(&schemaExists); err != nil {
		return err
	}
	if !schemaExists {
		if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+schema); err != nil {
			return err
		}
	}
	var tableExists bool
	if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&tableExists); err != nil {
		return err
	}
	if !tableExists {
		if _, err := tx.Exec(ctx, `CREATE TABLE `+table+` (
    version    BIGINT PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at BIGINT NOT NULL
)`); err != nil {
			return err
		}
	}
	applied := map[int64]bool{}
	rows, err := tx.Query(ctx, `SELECT version FROM `+table)
	if err != nil {
		return err
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return err
	}
	for _, v := range versions {
		applied[v] = true
	}
	for _, m := range ms {
		if applied[m.Version] {
			continue
		}
		if _, err := tx.Exec(ctx, strings.ReplaceAll(m.SQL, "{{schema}}", schema)); err != nil {
			return fmt.Errorf("migration %s: %w", m.Name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO `+table+` (version, name, applied_at) VALUES ($1, $2, $3)`,
			m.Version, m.Name, time.Now().UnixMilli()); err != nil {
			return fmt.Errorf("migration %s: %w", m.Name, err)
		}
	}
	return tx.Commit(ctx)
}

// --- helpers ---

func quoteIdent(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

func scanSessions(rows pgx.Rows) ([]sandboxagent.SessionRecord, error) {
	defer rows.Close()
	var recs []sandboxagent.SessionRecord
	for rows.Next() {
		var (
			r                            sandboxagent.SessionRecord
			sandbox                      *string
			sessionInit, config, modeRaw *string
		)
		if err := rows.Scan(&r.ID, &r.Agent, &r.AgentSessionID, &r.LastConnectionID, &r.CreatedAt, &r.DestroyedAt,
			&sessionInit, &sandbox, &config, &modeRaw); err != nil {
			return nil, err
		}
		if sandbox != nil {
			r.SandboxID = *sandbox
		}
		r.SessionInit, r.ConfigOptions, r.Modes = rawJSON(sessionInit), rawJSON(config), rawJSON(modeRaw)
		recs = append(recs, r)
	}
	return recs, rows.Err()
}

func scanEvents(rows pgx.Rows) ([]sandboxagent.SessionEvent, error) {
	defer rows.Close()
	var events []sandboxagent.SessionEvent
	for rows.Next() {
		var (
			e       sandboxagent.SessionEvent
			sender  string
			payload string
		)
		if err := rows.Scan(&e.ID, &e.EventIndex, &e.SessionID, &e.CreatedAt, &e.ConnectionID, &sender, &payload); err != nil {
			return nil, err
		}
		e.Sender, e.Payload = sandboxagent.SessionEventSender(sender), []byte(payload)
		events = append(events, e)
	}
	return events, rows.Err()
}

func rawJSON(s *string) []byte {
	if s == nil {
		return nil
	}
	return []byte(*s)
}

// jsonArg passes an absent JSON value as NULL and anything else, including
// a JSON null, as the document's text.
func jsonArg(m []byte) any {
	if len(m) == 0 {
		return nil
	}
	return string(m)
}

func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}
