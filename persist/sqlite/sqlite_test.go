package sqlite_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	sandboxagent "github.com/sandbox-agent-go/sandbox-agent"
	"github.com/sandbox-agent-go/sandbox-agent/persist/sqlite"
	"github.com/sandbox-agent-go/sandbox-agent/persist/storetest"
)

const (
	helperEnvDB      = "SANDBOX_AGENT_SQLITE_HELPER_DB"
	helperEnvSession = "SANDBOX_AGENT_SQLITE_HELPER_SESSION"
	helperEnvCount   = "SANDBOX_AGENT_SQLITE_HELPER_COUNT"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnvDB) != "" {
		os.Exit(helperWriter())
	}
	goleak.VerifyTestMain(m)
}

func openStore(t testing.TB, path string, opts ...sqlite.Option) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func TestConformanceFile(t *testing.T) {
	storetest.Run(t, func(t *testing.T) sandboxagent.SessionStore {
		return openStore(t, filepath.Join(t.TempDir(), "sessions.db"))
	})
}

func TestConformanceMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) sandboxagent.SessionStore {
		return openStore(t, ":memory:")
	})
}

// plainDSN opens path without the store's locking pragmas (no busy_timeout,
// rollback journal, deferred transactions), so lock conflicts surface as
// SQLITE_BUSY and go through the store's retry loop. synchronous=OFF only
// spares the test the fsyncs.
func plainDSN(path string) string { return path + "?_pragma=synchronous(OFF)" }

// TestConformanceNew runs the suite on a caller-owned *sql.DB opened
// without the store's pragmas.
func TestConformanceNew(t *testing.T) {
	storetest.Run(t, func(t *testing.T) sandboxagent.SessionStore {
		db, err := sql.Open(sqlite.DriverName, plainDSN(filepath.Join(t.TempDir(), "plain.db")))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		s, err := sqlite.New(t.Context(), db)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestTwoStoresSameFile is the §11.10 regression: two independent Stores
// (separate connection pools, as two SDK processes would have) append to
// the same sessions and never produce a duplicate index.
func TestTwoStoresSameFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shared.db")
	storetest.ConcurrentInsert(t, openStore(t, path), openStore(t, path), openStore(t, path))
}

func TestTwoStoresSameFileNoPragmas(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shared-plain.db")
	var stores []sandboxagent.SessionStore
	for range 2 {
		db, err := sql.Open(sqlite.DriverName, plainDSN(path))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		s, err := sqlite.New(t.Context(), db, sqlite.WithBusyTimeout(30*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		stores = append(stores, s)
	}
	storetest.ConcurrentInsert(t, stores...)
}

// TestSeparateProcesses appends to one session from this process and two
// child processes at once.
func TestSeparateProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	path := filepath.Join(t.TempDir(), "multiprocess.db")
	s := openStore(t, path)
	const perWriter = 100
	ctx := t.Context()
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for range 2 {
		wg.Go(func() {
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), helperEnvDB+"="+path, helperEnvSession+"=shared", helperEnvCount+"="+strconv.Itoa(perWriter))
			if out, err := cmd.CombinedOutput(); err != nil {
				errs <- fmt.Errorf("helper process: %v\n%s", err, out)
			}
		})
	}
	wg.Go(func() {
		for i := range perWriter {
			if _, err := s.InsertEvent(ctx, "shared", sandboxagent.SessionEvent{ConnectionID: "parent", Sender: sandboxagent.SessionEventSenderClient, Payload: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))}); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var got []int64
	for cursor := ""; ; {
		page, err := s.ListEvents(ctx, sandboxagent.ListEventsRequest{SessionID: "shared", Cursor: cursor, Limit: 128})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Items {
			got = append(got, e.EventIndex)
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	if len(got) != 3*perWriter {
		t.Fatalf("%d events, want %d", len(got), 3*perWriter)
	}
	for i, idx := range got {
		if idx != int64(i+1) {
			t.Fatalf("event %d has index %d, want %d", i, idx, i+1)
		}
	}
}

// helperWriter is the child process of TestSeparateProcesses.
func helperWriter() int {
	n, _ := strconv.Atoi(os.Getenv(helperEnvCount))
	ctx := context.Background()
	s, err := sqlite.Open(ctx, os.Getenv(helperEnvDB))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer s.Close()
	for i := range n {
		_, err := s.InsertEvent(ctx, os.Getenv(helperEnvSession), sandboxagent.SessionEvent{ConnectionID: strconv.Itoa(os.Getpid()), Sender: sandboxagent.SessionEventSenderAgent, Payload: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return 0
}

func TestReopenKeepsDataAndIndexes(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "reopen.db")
	s1, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s1.UpdateSession(ctx, sandboxagent.SessionRecord{ID: "s", Agent: "claude", CreatedAt: 7, Modes: json.RawMessage(`null`)}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := s1.InsertEvent(ctx, "s", event(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := openStore(t, path)
	rec, ok, err := s2.GetSession(ctx, "s")
	if err != nil || !ok || rec.Agent != "claude" || string(rec.Modes) != "null" {
		t.Fatalf("after reopen: %+v %v %v", rec, ok, err)
	}
	ev, err := s2.InsertEvent(ctx, "s", event(`{}`))
	if err != nil || ev.EventIndex != 4 {
		t.Fatalf("index after reopen = %d (%v), want 4", ev.EventIndex, err)
	}
	var versions []int64
	rows, err := s2.DB().QueryContext(ctx, `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		versions = append(versions, v)
	}
	rows.Close()
	if !slices.Equal(versions, []int64{1, 2}) {
		t.Errorf("schema_migrations versions = %v, want [1 2] (applied once)", versions)
	}
	var mode string
	if err := s2.DB().QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q (%v), want wal", mode, err)
	}
	var fk int
	if err := s2.DB().QueryRowContext(ctx, `PRAGMA foreign_keys`).Scan(&fk); err != nil || fk != 1 {
		t.Errorf("foreign_keys = %d (%v), want 1", fk, err)
	}
}

// TestUpgradesTypeScriptDatabase opens a database laid out by the TypeScript
// SDK's SQLite driver, including the duplicate indexes its concurrent
// writers produce.
func TestUpgradesTypeScriptDatabase(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "upstream.db")
	db, err := sql.Open(sqlite.DriverName, path)
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`CREATE TABLE sessions (id TEXT PRIMARY KEY, agent TEXT NOT NULL, agent_session_id TEXT NOT NULL, last_connection_id TEXT NOT NULL, created_at INTEGER NOT NULL, destroyed_at INTEGER, session_init_json TEXT)`,
		`CREATE TABLE events (id TEXT PRIMARY KEY, event_index INTEGER NOT NULL, session_id TEXT NOT NULL, created_at INTEGER NOT NULL, connection_id TEXT NOT NULL, sender TEXT NOT NULL, payload_json TEXT NOT NULL)`,
		`CREATE INDEX idx_events_session_order ON events(session_id, event_index, id)`,
		`INSERT INTO sessions VALUES ('old', 'codex', 'ag-1', 'conn-1', 100, 200, '{"cwd":"/w","mcpServers":[]}')`,
		`INSERT INTO events VALUES ('e1', 1, 'old', 1, 'c', 'client', '{"n":1}')`,
		`INSERT INTO events VALUES ('e2b', 2, 'old', 3, 'c2', 'client', '{"n":2,"from":"b"}')`,
		`INSERT INTO events VALUES ('e2a', 2, 'old', 2, 'c1', 'agent', '{"n":2,"from":"a"}')`,
		`INSERT INTO events VALUES ('e3', 3, 'old', 4, 'c', 'agent', '{"n":3}')`,
		`INSERT INTO events VALUES ('x1', 1, 'clean', 1, 'c', 'agent', '{}')`,
		`INSERT INTO events VALUES ('x5', 5, 'clean', 1, 'c', 'agent', '{}')`,
	} {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	db.Close()

	s := openStore(t, path)
	rec, ok, err := s.GetSession(ctx, "old")
	if err != nil || !ok {
		t.Fatalf("GetSession(old) = %v, %v", ok, err)
	}
	if rec.Agent != "codex" || rec.DestroyedAt == nil || *rec.DestroyedAt != 200 || string(rec.SessionInit) != `{"cwd":"/w","mcpServers":[]}` || rec.SandboxID != "" || rec.Modes != nil || rec.ConfigOptions != nil {
		t.Errorf("upgraded record = %+v", rec)
	}
	page, err := s.ListEvents(ctx, sandboxagent.ListEventsRequest{SessionID: "old"})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range page.Items {
		ids = append(ids, fmt.Sprintf("%d:%s", e.EventIndex, e.ID))
	}
	if want := []string{"1:e1", "2:e2a", "3:e2b", "4:e3"}; !slices.Equal(ids, want) {
		t.Errorf("renumbered events = %v, want %v", ids, want)
	}
	// Sessions without duplicates keep their indexes, gaps included.
	page, err = s.ListEvents(ctx, sandboxagent.ListEventsRequest{SessionID: "clean"})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 2 || page.Items[0].EventIndex != 1 || page.Items[1].EventIndex != 5 {
		t.Errorf("clean session events = %+v", page.Items)
	}
	if ev, err := s.InsertEvent(ctx, "old", event(`{}`)); err != nil || ev.EventIndex != 5 {
		t.Errorf("next index = %d (%v), want 5", ev.EventIndex, err)
	}
	if _, err := s.InsertEvent(ctx, "old", sandboxagent.SessionEvent{EventIndex: 2, Sender: sandboxagent.SessionEventSenderAgent, Payload: json.RawMessage(`{}`)}); !errors.Is(err, sandboxagent.ErrStoreConflict) {
		t.Errorf("duplicate explicit index after upgrade: %v, want ErrStoreConflict", err)
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := sqlite.Open(t.Context(), ""); err == nil {
		t.Error("Open with an empty path succeeded")
	}
	if _, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "missing-dir", "x.db")); err == nil {
		t.Error("Open in a missing directory succeeded")
	}
	if _, err := sqlite.New(t.Context(), nil); err == nil {
		t.Error("New(nil) succeeded")
	}
}

func TestOddFileNames(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"with space.db", "q?mark.db", "hash#.db", "pct%41.db"} {
		p := filepath.Join(dir, name)
		s := openStore(t, p)
		if err := s.UpdateSession(t.Context(), sandboxagent.SessionRecord{ID: "x", CreatedAt: 1}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: database not created under its own name: %v", name, err)
		}
	}
}

func TestCanceledWriteWhileLockedByAnotherStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "locked.db")
	s := openStore(t, path, sqlite.WithBusyTimeout(time.Minute))
	// Hold the write lock from a separate connection.
	other, err := sql.Open(sqlite.DriverName, path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(t.Context(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = s.InsertEvent(ctx, "s", event(`{}`))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("insert under a held lock: err = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("insert gave up after %v; the context deadline was 200ms", d)
	}
	if _, err := conn.ExecContext(t.Context(), "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if ev, err := s.InsertEvent(t.Context(), "s", event(`{}`)); err != nil || ev.EventIndex != 1 {
		t.Errorf("insert after the lock was released: %+v, %v", ev, err)
	}
}

func TestBusyTimeoutExpires(t *testing.T) {
	path := filepath.Join(t.TempDir(), "busy.db")
	s := openStore(t, path, sqlite.WithBusyTimeout(150*time.Millisecond))
	other, err := sql.Open(sqlite.DriverName, path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(t.Context(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	defer conn.ExecContext(context.Background(), "ROLLBACK")
	start := time.Now()
	if err := s.UpdateSession(t.Context(), sandboxagent.SessionRecord{ID: "x", CreatedAt: 1}); err == nil {
		t.Error("write under a held lock succeeded")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("write gave up after %v; the busy timeout was 150ms", d)
	}
}

func BenchmarkInsertEventFile(b *testing.B) {
	storetest.BenchmarkInsertEvent(b, openStore(b, filepath.Join(b.TempDir(), "bench.db")))
}

func BenchmarkInsertEventMemory(b *testing.B) {
	storetest.BenchmarkInsertEvent(b, openStore(b, ":memory:"))
}

func event(payload string) sandboxagent.SessionEvent {
	return sandboxagent.SessionEvent{ConnectionID: "c", Sender: sandboxagent.SessionEventSenderAgent, Payload: json.RawMessage(payload)}
}
