package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	sandboxagent "github.com/sandbox-agent-go/sandbox-agent"
	"github.com/sandbox-agent-go/sandbox-agent/persist/postgres"
	"github.com/sandbox-agent-go/sandbox-agent/persist/storetest"
)

// URLEnv names the variable holding the test server's connection string;
// scripts/pg-test-server.sh start prints it.
const URLEnv = "SANDBOX_AGENT_TEST_POSTGRES_URL"

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testURL returns the test server's URL. Without one the test is skipped,
// except in CI (CI=true), which must never skip these tests silently.
func testURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(URLEnv)
	if u == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set; CI must run the PostgreSQL tests: start a server with eval \"$(scripts/pg-test-server.sh start)\"", URLEnv)
		}
		t.Skipf("%s is not set; start a server with: eval \"$(scripts/pg-test-server.sh start)\"", URLEnv)
	}
	return u
}

// adminConn is a plain connection for test setup, closed at cleanup.
func adminConn(t testing.TB) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), testURL(t))
	if err != nil {
		t.Fatalf("connect to the test server: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// testSchema returns a fresh random schema name; the schema is dropped at
// cleanup (after the stores using it are closed).
func testSchema(t testing.TB) string {
	t.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	name := "sa_test_" + hex.EncodeToString(b)
	url := testURL(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Errorf("drop schema %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS "`+name+`" CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", name, err)
		}
	})
	return name
}

func openStore(t testing.TB, schema string, opts ...postgres.Option) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), testURL(t), append([]postgres.Option{postgres.WithSchema(schema)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	testURL(t)
	storetest.Run(t, func(t *testing.T) sandboxagent.SessionStore {
		return openStore(t, testSchema(t))
	})
}

// TestTwoStoresSameSchema is the §11.10 regression: independent Stores with
// their own connection pools, as separate SDK processes would have, append
// to the same sessions without duplicate indexes.
func TestTwoStoresSameSchema(t *testing.T) {
	schema := testSchema(t)
	storetest.ConcurrentInsert(t, openStore(t, schema), openStore(t, schema, postgres.WithMaxConns(2)), openStore(t, schema, postgres.WithMaxConns(8)))
}

// TestConcurrentOpen opens many Stores on a new schema at once: the
// migrations must run exactly once.
func TestConcurrentOpen(t *testing.T) {
	schema := testSchema(t)
	var wg sync.WaitGroup
	stores := make([]*postgres.Store, 8)
	errs := make([]error, len(stores))
	for i := range stores {
		wg.Go(func() {
			stores[i], errs[i] = postgres.Open(t.Context(), testURL(t), postgres.WithSchema(schema), postgres.WithMaxConns(1))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
			continue
		}
		stores[i].Close()
	}
	if got := migrationVersions(t, schema); !slices.Equal(got, []int64{1, 2}) {
		t.Errorf("migration versions %v, want [1 2]", got)
	}
}

func TestNewWithCallerConnection(t *testing.T) {
	ctx := t.Context()
	schema := testSchema(t)
	conn := adminConn(t)
	s, err := postgres.New(ctx, conn, postgres.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	if s.Schema() != schema {
		t.Errorf("Schema() = %q", s.Schema())
	}
	if err := s.UpdateSession(ctx, sandboxagent.SessionRecord{ID: "s", Agent: "a", CreatedAt: 1}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		ev, err := s.InsertEvent(ctx, "s", event(`{}`))
		if err != nil || ev.EventIndex != int64(i+1) {
			t.Fatalf("insert %d: %+v %v", i, ev, err)
		}
	}
	// Close leaves a caller's DB open.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := conn.Ping(ctx); err != nil {
		t.Errorf("caller's connection closed by Store.Close: %v", err)
	}
	// A second Store on the same schema sees the data; New works inside a
	// caller's transaction too.
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	s2, err := postgres.New(ctx, tx, postgres.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	if ev, err := s2.InsertEvent(ctx, "s", event(`{}`)); err != nil || ev.EventIndex != 4 {
		t.Fatalf("insert in a transaction: %+v %v", ev, err)
	}
}

func TestSchemaOption(t *testing.T) {
	ctx := t.Context()
	url := testURL(t)
	for _, bad := range []string{"", "1abc", "a-b", "a b", `a"b`, "public;drop", "ü"} {
		if _, err := postgres.Open(ctx, url, postgres.WithSchema(bad)); !errors.Is(err, sandboxagent.ErrStoreInvalidInput) {
			t.Errorf("schema %q: err = %v, want ErrStoreInvalidInput", bad, err)
		}
	}
	// Names are quoted: case matters and reserved words work.
	upper := "Sa_Test_" + strings.ToUpper(testSchema(t)[8:])
	t.Cleanup(func() {
		adminConn(t).Exec(context.Background(), `DROP SCHEMA IF EXISTS "`+upper+`" CASCADE`)
	})
	s := openStore(t, upper)
	if err := s.UpdateSession(ctx, sandboxagent.SessionRecord{ID: "x", CreatedAt: 1}); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := adminConn(t).QueryRow(ctx, `SELECT count(*) FROM "`+upper+`".sessions`).Scan(&n); err != nil || n != 1 {
		t.Errorf("sessions in %q: %d (%v)", upper, n, err)
	}
}

// TestDefaultSchema opens a store without WithSchema on a database of its
// own and checks the tables land in "public".
func TestDefaultSchema(t *testing.T) {
	ctx := t.Context()
	admin := adminConn(t)
	b := make([]byte, 6)
	rand.Read(b)
	dbName := "sa_test_db_" + hex.EncodeToString(b)
	if _, err := admin.Exec(ctx, `CREATE DATABASE `+dbName); err != nil {
		t.Skipf("cannot create a database for this test: %v", err)
	}
	t.Cleanup(func() {
		admin.Exec(context.Background(), `DROP DATABASE IF EXISTS `+dbName+` WITH (FORCE)`)
	})
	cfg := admin.Config().Copy()
	cfg.Database = dbName
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	s, err := postgres.New(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if s.Schema() != "public" {
		t.Errorf("default schema %q", s.Schema())
	}
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' AND table_name IN ('sessions', 'events', 'sandbox_agent_schema_migrations')`).Scan(&n); err != nil || n != 3 {
		t.Errorf("tables in public: %d (%v), want 3", n, err)
	}
}

func TestSchemaShape(t *testing.T) {
	ctx := t.Context()
	schema := testSchema(t)
	openStore(t, schema)
	rows, err := adminConn(t).Query(ctx, `SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = $1 AND table_name IN ('sessions', 'events') ORDER BY table_name, ordinal_position`, schema)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var tbl, col, typ string
		if err := rows.Scan(&tbl, &col, &typ); err != nil {
			t.Fatal(err)
		}
		got = append(got, tbl+"."+col+" "+typ)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"events.id text", "events.event_index bigint", "events.session_id text", "events.created_at bigint",
		"events.connection_id text", "events.sender text", "events.payload_json jsonb",
		"sessions.id text", "sessions.agent text", "sessions.agent_session_id text", "sessions.last_connection_id text",
		"sessions.created_at bigint", "sessions.destroyed_at bigint", "sessions.session_init_json jsonb",
		"sessions.sandbox_id text", "sessions.config_options_json jsonb", "sessions.modes_json jsonb",
	}
	if !slices.Equal(got, want) {
		t.Errorf("columns:\n got %v\nwant %v", got, want)
	}
	// The constraint holds for writers that bypass the store.
	admin := adminConn(t)
	if _, err := admin.Exec(ctx, `INSERT INTO "`+schema+`".events VALUES ('a', 1, 's', 1, 'c', 'agent', '{}'), ('b', 1, 's', 1, 'c', 'agent', '{}')`); err == nil {
		t.Error("two events with the same (session_id, event_index) were accepted")
	}
}

// TestUpgradesTypeScriptSchema migrates tables laid out by the TypeScript
// SDK's PostgreSQL driver, including duplicate indexes.
func TestUpgradesTypeScriptSchema(t *testing.T) {
	ctx := t.Context()
	schema := testSchema(t)
	q := `"` + schema + `"`
	admin := adminConn(t)
	for _, stmt := range []string{
		`CREATE SCHEMA ` + q,
		`CREATE TABLE ` + q + `.sessions (id TEXT PRIMARY KEY, agent TEXT NOT NULL, agent_session_id TEXT NOT NULL, last_connection_id TEXT NOT NULL, created_at BIGINT NOT NULL, destroyed_at BIGINT, session_init_json JSONB)`,
		`CREATE TABLE ` + q + `.events (id TEXT PRIMARY KEY, event_index BIGINT NOT NULL, session_id TEXT NOT NULL, created_at BIGINT NOT NULL, connection_id TEXT NOT NULL, sender TEXT NOT NULL, payload_json JSONB NOT NULL)`,
		`CREATE INDEX idx_events_session_order ON ` + q + `.events(session_id, event_index, id)`,
		`INSERT INTO ` + q + `.sessions VALUES ('old', 'codex', 'ag', 'conn', 100, NULL, '{"cwd":"/w"}')`,
		`INSERT INTO ` + q + `.events VALUES ('e1', 1, 'old', 1, 'c', 'client', '{"n":1}'), ('e2b', 2, 'old', 3, 'c', 'client', '{}'), ('e2a', 2, 'old', 2, 'c', 'agent', '{}'), ('e3', 3, 'old', 4, 'c', 'agent', '{}')`,
	} {
		if _, err := admin.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	s := openStore(t, schema)
	rec, ok, err := s.GetSession(ctx, "old")
	if err != nil || !ok || rec.Agent != "codex" || rec.DestroyedAt != nil || rec.Modes != nil {
		t.Fatalf("upgraded record %+v %v %v", rec, ok, err)
	}
	page, err := s.ListEvents(ctx, sandboxagent.ListEventsRequest{SessionID: "old"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range page.Items {
		got = append(got, fmt.Sprintf("%d:%s", e.EventIndex, e.ID))
	}
	if want := []string{"1:e1", "2:e2a", "3:e2b", "4:e3"}; !slices.Equal(got, want) {
		t.Errorf("renumbered events %v, want %v", got, want)
	}
	if ev, err := s.InsertEvent(ctx, "old", event(`{}`)); err != nil || ev.EventIndex != 5 {
		t.Errorf("next index %d (%v), want 5", ev.EventIndex, err)
	}
}

func TestUnstorableText(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, testSchema(t))
	_, err := s.InsertEvent(ctx, "s", event(`{"text":"nul \u0000 here"}`))
	if !errors.Is(err, sandboxagent.ErrStoreInvalidInput) {
		t.Errorf(`payload with \u0000: err = %v, want ErrStoreInvalidInput`, err)
	}
	err = s.UpdateSession(ctx, sandboxagent.SessionRecord{ID: "s", Agent: "bad\x00agent", CreatedAt: 1})
	if !errors.Is(err, sandboxagent.ErrStoreInvalidInput) {
		t.Errorf("NUL in a text column: err = %v, want ErrStoreInvalidInput", err)
	}
	// The store still works afterwards.
	if ev, err := s.InsertEvent(ctx, "s", event(`{}`)); err != nil || ev.EventIndex != 1 {
		t.Errorf("insert after rejected input: %+v %v", ev, err)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := t.Context()
	if _, err := postgres.Open(ctx, "not a :: valid url ://"); err == nil {
		t.Error("Open with a bad connection string succeeded")
	}
	if _, err := postgres.New(ctx, nil); err == nil {
		t.Error("New(nil) succeeded")
	}
	dead, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := postgres.Open(dead, "postgres://nobody@127.0.0.1:1/x?sslmode=disable&connect_timeout=1"); err == nil {
		t.Error("Open against a closed port succeeded")
	}
}

// TestPoolUnderLoad runs many goroutines through a two-connection pool.
func TestPoolUnderLoad(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, testSchema(t), postgres.WithMaxConns(2))
	var wg sync.WaitGroup
	for g := range 10 {
		wg.Go(func() {
			for i := range 10 {
				if _, err := s.InsertEvent(ctx, fmt.Sprintf("s%d", g%3), event(`{}`)); err != nil {
					t.Error(err)
					return
				}
				if _, err := s.ListEvents(ctx, sandboxagent.ListEventsRequest{SessionID: fmt.Sprintf("s%d", i%3), Limit: 2}); err != nil {
					t.Error(err)
					return
				}
				if _, _, err := s.GetSession(ctx, "none"); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	total := 0
	for i := range 3 {
		page, err := s.ListEvents(ctx, sandboxagent.ListEventsRequest{SessionID: fmt.Sprintf("s%d", i), Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		total += len(page.Items)
	}
	if total != 100 {
		t.Errorf("%d events stored, want 100", total)
	}
}

func BenchmarkInsertEvent(b *testing.B) {
	storetest.BenchmarkInsertEvent(b, openStore(b, testSchema(b), postgres.WithMaxConns(16)))
}

func migrationVersions(t *testing.T, schema string) []int64 {
	t.Helper()
	rows, err := adminConn(t).Query(t.Context(), `SELECT version FROM "`+schema+`".`+postgres.MigrationsTable+` ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	v, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func event(payload string) sandboxagent.SessionEvent {
	return sandboxagent.SessionEvent{ConnectionID: "c", Sender: sandboxagent.SessionEventSenderAgent, Payload: json.RawMessage(payload)}
}
