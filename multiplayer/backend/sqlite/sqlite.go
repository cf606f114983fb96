// Package sqlite is the local multiplayer backend: one process, its actors'
// registry, state, durable events, key-value storage and schedules in one
// SQLite database (the pure-Go modernc.org/sqlite, WAL journal), and an
// in-process bus.
//
// One process owns a data directory: Open takes an exclusive flock on
// Dir/LOCK and fails at once with ErrLocked while another Backend, in this
// process or another, holds it. The kernel drops the lock when the process
// dies, so a killed process's directory opens again at once; Owners it held
// are released at Open and their actors' next Claim has the next generation.
//
// Ownership: the node is the process. The database records, per actor, the
// last claimed generation and the generation of the live Owner; every write
// of an Owner runs in one transaction that first checks that its
// generation is still the live one, so a released, destroyed or closed
// Owner's write fails with backend.ErrFenced (or backend.ErrClosed) and
// changes nothing.
//
// Writes go through one connection (SQLite has one writer anyway; queueing
// in database/sql honours each call's context), reads through a pool.
// synchronous=NORMAL: a committed write survives the process being killed;
// after a power loss the last writes before it may be lost.
//
// The bus is in process. Request calls the Serve handler in the caller's
// goroutine with the caller's context. Publish copies the message once and
// queues it for every subscriber; each subscriber has its own bounded queue
// (Options.SubscriberQueue messages) drained in publish order by one
// goroutine that exists only while the queue is not empty. Publish never
// waits for a subscriber: when a subscriber's queue is full, that
// subscriber misses the message (it is logged), as NATS drops messages for
// a slow consumer. Subscribers must not modify the msg they are given; it
// is shared between them.
package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/quartz"
	"github.com/gofrs/flock"
	sqlitedrv "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/sandbox-agent-go/sandbox-agent/multiplayer/backend"
)

// ErrLocked: another Backend holds the data directory (Open's error wraps
// it and names the directory).
var ErrLocked = errors.New("sqlite backend: data directory is in use by another process")

// Defaults of Options and of the limit arguments.
const (
	// DefaultBusyTimeout bounds how long a statement waits for SQLite's
	// write lock (only a checkpoint can hold it against us).
	DefaultBusyTimeout = 5 * time.Second
	// DefaultSubscriberQueue is how many published messages a subscriber
	// may fall behind before it misses messages.
	DefaultSubscriberQueue = 1024
	// DefaultLimit is what Events and DueSchedules return at most when
	// their limit is <= 0.
	DefaultLimit = 1000
)

// DBFile and LockFile are the names Open uses inside Options.Dir.
const (
	DBFile   = "multiplayer.db"
	LockFile = "LOCK"
)

// Options configure Open.
type Options struct {
	// Dir is the data directory, created (0700) if missing. Required.
	Dir string
	// Logger receives the backend's own events; nil discards them.
	Logger *slog.Logger
	// Clock stamps creation and event times; nil is the real clock.
	Clock quartz.Clock
	// SubscriberQueue bounds each subscriber's backlog (default
	// DefaultSubscriberQueue).
	SubscriberQueue int
}

//go:embed migrations/*.sql
var migrationFS embed.FS

// Backend is a backend.Backend on a SQLite database in one data directory.
type Backend struct {
	dir    string
	nodeID string
	log    *slog.Logger
	clock  quartz.Clock
	lock   *flock.Flock
	// w has exactly one connection: every write transaction.
	w *sql.DB
	// r is the read pool (query_only).
	r   *sql.DB
	st  statements
	bus *bus

	// life is held shared by every database operation and exclusively by
	// Close, so Close waits for operations in flight and nothing starts
	// after it.
	life   sync.RWMutex
	closed bool

	mu     sync.Mutex
	owners map[string]*owner // actor id → live Owner of this Backend
}

var _ backend.Backend = (*Backend)(nil)

// Open opens the data directory opts.Dir: it takes the directory's lock,
// opens (or creates) its database, brings the schema up to date and
// releases every ownership a previous process left behind.
func Open(ctx context.Context, opts Options) (*Backend, error) {
	if opts.Dir == "" {
		return nil, errors.New("sqlite backend: Options.Dir is empty")
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("sqlite backend: %w", err)
	}
	lk := flock.New(filepath.Join(opts.Dir, LockFile))
	locked, err := lk.TryLock()
	if err != nil {
		return nil, fmt.Errorf("sqlite backend: lock %s: %w", opts.Dir, err)
	}
	if !locked {
		return nil, fmt.Errorf("%w: %s", ErrLocked, opts.Dir)
	}
	b := &Backend{
		dir:    opts.Dir,
		log:    opts.Logger,
		clock:  opts.Clock,
		lock:   lk,
		owners: map[string]*owner{},
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if b.clock == nil {
		b.clock = quartz.NewReal()
	}
	queue := opts.SubscriberQueue
	if queue <= 0 {
		queue = DefaultSubscriberQueue
	}
	b.bus = newBus(b.log, queue)
	if err := b.open(ctx); err != nil {
		b.closeDBs()
		_ = lk.Unlock()
		return nil, fmt.Errorf("sqlite backend: open %s: %w", opts.Dir, err)
	}
	b.log.Info("multiplayer sqlite backend open", "dir", opts.Dir, "node", b.nodeID)
	return b, nil
}

func (b *Backend) open(ctx context.Context) error {
	path := filepath.Join(b.dir, DBFile)
	var err error
	if b.w, err = sql.Open("sqlite", dsn(path, false)); err != nil {
		return err
	}
	b.w.SetMaxOpenConns(1)
	b.w.SetMaxIdleConns(1)
	b.w.SetConnMaxLifetime(0)
	b.w.SetConnMaxIdleTime(0)
	if b.r, err = sql.Open("sqlite", dsn(path, true)); err != nil {
		return err
	}
	n := max(4, runtime.GOMAXPROCS(0))
	b.r.SetMaxOpenConns(n)
	b.r.SetMaxIdleConns(n)
	if err := b.migrate(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return b.st.prepare(ctx, b.w, b.r)
}

// statements are the hot paths' statements, parsed once: on the one writer
// connection, and on each read connection that runs them.
type statements struct {
	fence, saveState, appendEvent, put *sql.Stmt // writer
	loadState, kvGet, events           *sql.Stmt // readers
}

// sqlAppend assigns MAX+1; it runs in a write transaction, so no other
// append comes between.
const sqlAppend = `INSERT INTO actor_events (actor_id, seq, name, args, generation, created_at)
VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM actor_events WHERE actor_id = ?1), ?2, ?3, ?4, ?5)
RETURNING seq`

func (st *statements) prepare(ctx context.Context, w, r *sql.DB) error {
	for _, p := range []struct {
		dst **sql.Stmt
		db  *sql.DB
		sql string
	}{
		{&st.fence, w, `SELECT owner_gen FROM actors WHERE actor_id = ? AND destroyed_at IS NULL`},
		{&st.saveState, w, `INSERT INTO actor_state (actor_id, rev, generation, blob) VALUES (?, 1, ?, ?)
ON CONFLICT (actor_id) DO UPDATE SET rev = rev + 1, generation = excluded.generation, blob = excluded.blob`},
		{&st.appendEvent, w, sqlAppend},
		{&st.put, w, `INSERT INTO actor_kv (actor_id, ns, key, value) VALUES (?, ?, ?, ?)
ON CONFLICT (actor_id, ns, key) DO UPDATE SET value = excluded.value`},
		{&st.loadState, r, `SELECT blob FROM actor_state WHERE actor_id = ?`},
		{&st.kvGet, r, `SELECT value FROM actor_kv WHERE actor_id = ? AND ns = ? AND key = ?`},
		{&st.events, r, `SELECT seq, name, args, generation, created_at FROM actor_events
WHERE actor_id = ? AND seq > ? ORDER BY seq LIMIT ?`},
	} {
		stmt, err := p.db.PrepareContext(ctx, p.sql)
		if err != nil {
			return fmt.Errorf("prepare: %w", err)
		}
		*p.dst = stmt
	}
	return nil
}

func (st *statements) close() {
	for _, s := range []*sql.Stmt{st.fence, st.saveState, st.appendEvent, st.put, st.loadState, st.kvGet, st.events} {
		if s != nil {
			s.Close()
		}
	}
}

// dsn is the modernc.org/sqlite DSN of the database file: WAL, and
// transactions that take the write lock when they begin.
func dsn(path string, readOnly bool) string {
	params := []string{
		"_pragma=" + fmt.Sprintf("busy_timeout(%d)", DefaultBusyTimeout.Milliseconds()),
		"_pragma=journal_mode(WAL)",
		"_pragma=synchronous(NORMAL)",
	}
	if readOnly {
		params = append(params, "_pragma=query_only(1)")
	} else {
		params = append(params, "_txlock=immediate")
	}
	name := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(filepath.Clean(path))
	return "file:" + name + "?" + strings.Join(params, "&")
}

// migrate applies the pending migrations, makes the node id and clears the
// ownerships of a previous process, in one transaction. (persist's
// migration loader is internal to persist/, so its few lines are here.)
func (b *Backend) migrate(ctx context.Context) error {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return err
	}
	return b.writeTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at INTEGER NOT NULL
)`); err != nil {
			return err
		}
		var current int64
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
			return err
		}
		// ReadDir sorts by name, and names start with a zero-padded
		// version.
		for _, e := range entries {
			name := strings.TrimSuffix(e.Name(), ".sql")
			digits, _, _ := strings.Cut(name, "_")
			v, err := strconv.ParseInt(digits, 10, 64)
			if err != nil || v < 1 {
				return fmt.Errorf("migration file %q is not named NNNN_name.sql", e.Name())
			}
			if v <= current {
				continue
			}
			text, err := fs.ReadFile(migrationFS, "migrations/"+e.Name())
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, string(text)); err != nil {
				return fmt.Errorf("migration %s: %w", name, err)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
				v, name, time.Now().UnixMilli()); err != nil {
				return err
			}
		}
		err := tx.QueryRowContext(ctx, `SELECT v FROM meta WHERE k = 'node_id'`).Scan(&b.nodeID)
		if errors.Is(err, sql.ErrNoRows) {
			b.nodeID = "local-" + randomHex(6)
			_, err = tx.ExecContext(ctx, `INSERT INTO meta (k, v) VALUES ('node_id', ?)`, b.nodeID)
		}
		if err != nil {
			return err
		}
		// We hold the directory lock: nobody else can own anything.
		_, err = tx.ExecContext(ctx, `UPDATE actors SET owner_gen = 0 WHERE owner_gen != 0`)
		return err
	})
}

// NodeID is stable for the data directory (stored in its database).
func (b *Backend) NodeID() string { return b.nodeID }

// Dir is the data directory.
func (b *Backend) Dir() string { return b.dir }

// Bus is the in-process bus.
func (b *Backend) Bus() backend.Bus { return b.bus }

// enter starts a database operation; leave ends it.
func (b *Backend) enter() error {
	b.life.RLock()
	if b.closed {
		b.life.RUnlock()
		return backend.ErrClosed
	}
	return nil
}

func (b *Backend) leave() { b.life.RUnlock() }

// writeTx runs fn in a write transaction on the writer connection.
func (b *Backend) writeTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := b.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

const actorColumns = `actor_id, name, key_json, input, created_at`

// GetOrCreate implements backend.Backend.
func (b *Backend) GetOrCreate(ctx context.Context, name string, key []string, input json.RawMessage) (backend.Actor, bool, error) {
	if err := b.enter(); err != nil {
		return backend.Actor{}, false, fmt.Errorf("sqlite backend: get or create: %w", err)
	}
	defer b.leave()
	// Most calls find the actor: try the read pool before the writer.
	a, err := b.get(ctx, b.r, name, key)
	if err == nil {
		return a, false, nil
	}
	if !errors.Is(err, backend.ErrNotFound) {
		return backend.Actor{}, false, fmt.Errorf("sqlite backend: get or create %s %q: %w", name, key, err)
	}
	created := false
	err = b.writeTx(ctx, func(tx *sql.Tx) error {
		// Writes are serialised: nobody creates it between the two.
		a, err = b.get(ctx, tx, name, key)
		if !errors.Is(err, backend.ErrNotFound) {
			return err
		}
		a, err = b.insert(ctx, tx, name, key, input)
		created = err == nil
		return err
	})
	if err != nil {
		return backend.Actor{}, false, fmt.Errorf("sqlite backend: get or create %s %q: %w", name, key, err)
	}
	return a, created, nil
}

// Create implements backend.Backend.
func (b *Backend) Create(ctx context.Context, name string, key []string, input json.RawMessage) (backend.Actor, error) {
	if err := b.enter(); err != nil {
		return backend.Actor{}, fmt.Errorf("sqlite backend: create: %w", err)
	}
	defer b.leave()
	var a backend.Actor
	err := b.writeTx(ctx, func(tx *sql.Tx) error {
		var err error
		a, err = b.insert(ctx, tx, name, key, input)
		return err
	})
	if err != nil {
		return backend.Actor{}, fmt.Errorf("sqlite backend: create %s %q: %w", name, key, err)
	}
	return a, nil
}

func (b *Backend) insert(ctx context.Context, tx *sql.Tx, name string, key []string, input json.RawMessage) (backend.Actor, error) {
	keyJSON, err := json.Marshal(nonNil(key))
	if err != nil {
		return backend.Actor{}, err
	}
	a := backend.Actor{
		ID:        randomHex(12),
		Name:      name,
		Key:       slices.Clone(key),
		Input:     cloneOrNil(input),
		CreatedAt: b.clock.Now().UTC(),
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO actors (`+actorColumns+`, key_canon) VALUES (?, ?, ?, ?, ?, ?)`,
		a.ID, name, string(keyJSON), blobArg(a.Input), a.CreatedAt.UnixNano(), backend.CanonicalKey(key))
	if isUniqueViolation(err) {
		return backend.Actor{}, backend.ErrDuplicateKey
	}
	if err != nil {
		return backend.Actor{}, err
	}
	return a, nil
}

// querier is a *sql.DB or a *sql.Tx.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func (b *Backend) get(ctx context.Context, q querier, name string, key []string) (backend.Actor, error) {
	return scanActor(q.QueryRowContext(ctx, `SELECT `+actorColumns+` FROM actors WHERE name = ? AND key_canon = ? AND destroyed_at IS NULL`,
		name, backend.CanonicalKey(key)))
}

// Get implements backend.Backend.
func (b *Backend) Get(ctx context.Context, name string, key []string) (backend.Actor, error) {
	if err := b.enter(); err != nil {
		return backend.Actor{}, fmt.Errorf("sqlite backend: get: %w", err)
	}
	defer b.leave()
	a, err := b.get(ctx, b.r, name, key)
	if err != nil {
		return backend.Actor{}, fmt.Errorf("sqlite backend: get %s %q: %w", name, key, err)
	}
	return a, nil
}

// Lookup implements backend.Backend.
func (b *Backend) Lookup(ctx context.Context, actorID string) (backend.Actor, error) {
	if err := b.enter(); err != nil {
		return backend.Actor{}, fmt.Errorf("sqlite backend: lookup: %w", err)
	}
	defer b.leave()
	a, err := scanActor(b.r.QueryRowContext(ctx, `SELECT `+actorColumns+` FROM actors WHERE actor_id = ? AND destroyed_at IS NULL`, actorID))
	if err != nil {
		return backend.Actor{}, fmt.Errorf("sqlite backend: lookup %s: %w", actorID, err)
	}
	return a, nil
}

func scanActor(row *sql.Row) (backend.Actor, error) {
	var (
		a       backend.Actor
		keyJSON string
		input   []byte
		created int64
	)
	err := row.Scan(&a.ID, &a.Name, &keyJSON, &input, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return backend.Actor{}, backend.ErrNotFound
	}
	if err != nil {
		return backend.Actor{}, err
	}
	if err := json.Unmarshal([]byte(keyJSON), &a.Key); err != nil {
		return backend.Actor{}, fmt.Errorf("actor %s: bad stored key: %w", a.ID, err)
	}
	if len(a.Key) == 0 {
		a.Key = nil
	}
	if len(input) > 0 {
		a.Input = input
	}
	a.CreatedAt = time.Unix(0, created).UTC()
	return a, nil
}

// Claim implements backend.Backend. Another Owner of this process is the
// only one that can be live, so an *OwnedError names this node.
func (b *Backend) Claim(ctx context.Context, actorID string) (backend.Owner, error) {
	if err := b.enter(); err != nil {
		return nil, fmt.Errorf("sqlite backend: claim: %w", err)
	}
	defer b.leave()
	var (
		a   backend.Actor
		gen uint64
	)
	err := b.writeTx(ctx, func(tx *sql.Tx) error {
		var (
			err   error
			owner uint64
		)
		a, err = scanActor(tx.QueryRowContext(ctx, `SELECT `+actorColumns+` FROM actors WHERE actor_id = ? AND destroyed_at IS NULL`, actorID))
		if err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx, `SELECT generation, owner_gen FROM actors WHERE actor_id = ?`, actorID).Scan(&gen, &owner); err != nil {
			return err
		}
		if owner != 0 {
			return &backend.OwnedError{ActorID: actorID, Node: b.nodeID}
		}
		gen++
		_, err = tx.ExecContext(ctx, `UPDATE actors SET generation = ?, owner_gen = ? WHERE actor_id = ?`, gen, gen, actorID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite backend: claim %s: %w", actorID, err)
	}
	o := &owner{b: b, actor: a, gen: gen, lost: make(chan struct{})}
	b.mu.Lock()
	b.owners[actorID] = o
	b.mu.Unlock()
	return o, nil
}

// Events implements backend.Backend. An unknown actor has no events.
func (b *Backend) Events(ctx context.Context, actorID string, after uint64, limit int) ([]backend.Event, error) {
	if err := b.enter(); err != nil {
		return nil, fmt.Errorf("sqlite backend: events: %w", err)
	}
	defer b.leave()
	if limit <= 0 {
		limit = DefaultLimit
	}
	rows, err := b.st.events.QueryContext(ctx, actorID, int64(min(after, 1<<63-1)), limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite backend: events of %s: %w", actorID, err)
	}
	defer rows.Close()
	var evs []backend.Event
	for rows.Next() {
		var (
			e    backend.Event
			args []byte
			t    int64
		)
		if err := rows.Scan(&e.Seq, &e.Name, &args, &e.Generation, &t); err != nil {
			return nil, fmt.Errorf("sqlite backend: events of %s: %w", actorID, err)
		}
		e.Args, e.Time = args, time.Unix(0, t).UTC()
		evs = append(evs, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite backend: events of %s: %w", actorID, err)
	}
	return evs, nil
}

// DueSchedules implements backend.Backend. Schedules due at the same
// instant come in actor id, then schedule id, order.
func (b *Backend) DueSchedules(ctx context.Context, now time.Time, limit int) ([]backend.Schedule, error) {
	if err := b.enter(); err != nil {
		return nil, fmt.Errorf("sqlite backend: due schedules: %w", err)
	}
	defer b.leave()
	if limit <= 0 {
		limit = DefaultLimit
	}
	ss, err := scanSchedules(b.r.QueryContext(ctx, `SELECT `+scheduleColumns+` FROM schedules
WHERE due_at <= ? ORDER BY due_at, actor_id, id LIMIT ?`, now.UnixNano(), limit))
	if err != nil {
		return nil, fmt.Errorf("sqlite backend: due schedules: %w", err)
	}
	return ss, nil
}

const scheduleColumns = `actor_id, id, due_at, action, args`

func scanSchedules(rows *sql.Rows, err error) ([]backend.Schedule, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ss []backend.Schedule
	for rows.Next() {
		var (
			s    backend.Schedule
			at   int64
			args []byte
		)
		if err := rows.Scan(&s.ActorID, &s.ID, &at, &s.Action, &args); err != nil {
			return nil, err
		}
		s.At, s.Args = time.Unix(0, at).UTC(), args
		ss = append(ss, s)
	}
	return ss, rows.Err()
}

// Close releases every Owner of this Backend (their Lost channels close),
// stops the bus, closes the database and drops the directory lock. A second
// Close returns nil.
func (b *Backend) Close() error {
	b.life.Lock()
	defer b.life.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	b.bus.close()
	ctx, cancel := context.WithTimeout(context.Background(), DefaultBusyTimeout)
	defer cancel()
	var errs []error
	if err := b.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE actors SET owner_gen = 0 WHERE owner_gen != 0`)
		return err
	}); err != nil {
		// The next Open clears them anyway.
		errs = append(errs, fmt.Errorf("release owners: %w", err))
	}
	b.mu.Lock()
	owners := b.owners
	b.owners = map[string]*owner{}
	b.mu.Unlock()
	for _, o := range owners {
		o.markLost()
	}
	errs = append(errs, b.closeDBs()...)
	if err := b.lock.Unlock(); err != nil {
		errs = append(errs, fmt.Errorf("unlock: %w", err))
	}
	b.log.Info("multiplayer sqlite backend closed", "dir", b.dir, "node", b.nodeID)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlite backend: close %s: %w", b.dir, err)
	}
	return nil
}

func (b *Backend) closeDBs() []error {
	b.st.close()
	var errs []error
	for _, db := range []*sql.DB{b.r, b.w} {
		if db != nil {
			if err := db.Close(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errs
}

// --- helpers ---

func randomHex(n int) string {
	buf := make([]byte, n)
	_, _ = rand.Read(buf) // never fails (crypto/rand)
	return hex.EncodeToString(buf)
}

func nonNil(key []string) []string {
	if key == nil {
		return []string{}
	}
	return key
}

func cloneOrNil(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return slices.Clone(b)
}

// blobArg stores nil as NULL and anything else, even empty, as a blob.
func blobArg(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

func isUniqueViolation(err error) bool {
	var se *sqlitedrv.Error
	if !errors.As(err, &se) {
		return false
	}
	return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}
