package postgres

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// These tests use the package's connection pool directly. TestMain (with
// goleak) is in postgres_test.go.

func testPool(t *testing.T, maxConns int) *connPool {
	t.Helper()
	url := os.Getenv("SANDBOX_AGENT_TEST_POSTGRES_URL")
	if url == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("SANDBOX_AGENT_TEST_POSTGRES_URL is not set; CI must run the PostgreSQL tests")
		}
		t.Skip("SANDBOX_AGENT_TEST_POSTGRES_URL is not set")
	}
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	p := newConnPool(cfg, maxConns)
	t.Cleanup(p.Close)
	return p
}

func TestPoolWaitsForAFreeConnection(t *testing.T) {
	ctx := t.Context()
	p := testPool(t, 2)
	tx1, err := p.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tx2, err := p.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := p.Exec(short, "SELECT 1"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("with both connections in use: err = %v, want context.DeadlineExceeded", err)
	}
	done := make(chan error, 1)
	go func() {
		var one int
		done <- p.QueryRow(ctx, "SELECT 1").Scan(&one)
	}()
	time.Sleep(20 * time.Millisecond)
	if err := tx1.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("waiter after a commit: %v", err)
	}
	if err := tx2.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	// Rollback after commit is harmless and releases nothing twice.
	if err := tx1.Rollback(ctx); !errors.Is(err, pgx.ErrTxClosed) {
		t.Errorf("rollback after commit: %v", err)
	}
	if n := len(p.sem); n != 0 {
		t.Errorf("%d connections still checked out", n)
	}
}

func TestPoolReleasesOnEveryPath(t *testing.T) {
	ctx := t.Context()
	p := testPool(t, 1)
	check := func(step string) {
		t.Helper()
		if n := len(p.sem); n != 0 {
			t.Fatalf("after %s: %d connections checked out", step, n)
		}
	}
	if _, err := p.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	check("Exec")
	if _, err := p.Exec(ctx, "SELECT * FROM no_such_table"); err == nil {
		t.Fatal("query on a missing table succeeded")
	}
	check("failed Exec")
	rows, err := p.Query(ctx, "SELECT generate_series(1, 5)")
	if err != nil {
		t.Fatal(err)
	}
	rows.Next()
	rows.Close()
	check("Rows.Close after one row")
	rows, err = p.Query(ctx, "SELECT generate_series(1, 3)")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
	}
	check("Rows exhausted")
	rows.Close()
	check("Rows closed twice")
	var x int
	if err := p.QueryRow(ctx, "SELECT 1 WHERE false").Scan(&x); !errors.Is(err, pgx.ErrNoRows) {
		t.Fatalf("no rows: %v", err)
	}
	check("QueryRow without rows")
	if err := p.QueryRow(ctx, "SELECT 1/0").Scan(&x); err == nil {
		t.Fatal("division by zero succeeded")
	}
	check("QueryRow error")
	b := &pgx.Batch{}
	b.Queue("SELECT 1")
	b.Queue("SELECT 1/0")
	if err := p.SendBatch(ctx, b).Close(); err == nil {
		t.Fatal("failing batch succeeded")
	}
	check("failed batch")
	tx, err := p.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT 1/0"); err == nil {
		t.Fatal("division by zero succeeded")
	}
	if err := tx.Commit(ctx); err == nil {
		t.Fatal("commit of a failed transaction succeeded")
	}
	check("failed commit")
	// The connection that went back after all that is usable.
	if err := p.QueryRow(ctx, "SELECT 2").Scan(&x); err != nil || x != 2 {
		t.Fatalf("reuse: %d %v", x, err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := p.Exec(canceled, "SELECT 1"); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled context: %v", err)
	}
	check("canceled Exec")
	p.Close()
	if _, err := p.Exec(ctx, "SELECT 1"); !errors.Is(err, errPoolClosed) {
		t.Errorf("Exec after Close: %v", err)
	}
	check("after Close")
}
