package postgres

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// connPool is the small connection pool behind Open: at most max
// connections, idle ones reused LIFO and pinged after a second of idleness.
// It implements DB with the semantics of *pgxpool.Pool: a connection is
// returned when Exec returns, when Rows are closed (or exhausted), when a
// Row is scanned, when a Tx commits or rolls back and when BatchResults are
// closed.
//
// (pgxpool itself needs github.com/jackc/puddle/v2, which this module does
// not depend on; New accepts a *pgxpool.Pool all the same.)
type connPool struct {
	cfg *pgx.ConnConfig
	sem chan struct{} // one token per open or opening connection in use

	mu     sync.Mutex
	idle   []idleConn
	closed bool
}

type idleConn struct {
	conn  *pgx.Conn
	since time.Time
}

var errPoolClosed = errors.New("postgres store: connection pool closed")

// pingAfterIdle is how long a connection may sit idle before it is pinged
// on reuse.
const pingAfterIdle = time.Second

func newConnPool(cfg *pgx.ConnConfig, maxConns int) *connPool {
	return &connPool{cfg: cfg, sem: make(chan struct{}, maxConns)}
}

func (p *connPool) acquire(ctx context.Context) (*pgx.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			<-p.sem
			return nil, errPoolClosed
		}
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			break
		}
		ic := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		if time.Since(ic.since) < pingAfterIdle {
			return ic.conn, nil
		}
		if err := ic.conn.Ping(ctx); err == nil {
			return ic.conn, nil
		}
		closeConn(ic.conn)
		if err := ctx.Err(); err != nil {
			<-p.sem
			return nil, err
		}
	}
	conn, err := pgx.ConnectConfig(ctx, p.cfg)
	if err != nil {
		<-p.sem
		return nil, err
	}
	return conn, nil
}

// release returns conn to the pool, or closes it when it is broken, busy or
// still inside a transaction.
func (p *connPool) release(conn *pgx.Conn) {
	defer func() { <-p.sem }()
	if conn.IsClosed() || conn.PgConn().IsBusy() || conn.PgConn().TxStatus() != 'I' {
		closeConn(conn)
		return
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		closeConn(conn)
		return
	}
	p.idle = append(p.idle, idleConn{conn: conn, since: time.Now()})
	p.mu.Unlock()
}

// Close closes the idle connections now and the others when they are
// released.
func (p *connPool) Close() {
	p.mu.Lock()
	p.closed = true
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, ic := range idle {
		closeConn(ic.conn)
	}
}

func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}

func (p *connPool) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	conn, err := p.acquire(ctx)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	defer p.release(conn)
	return conn.Exec(ctx, sql, args...)
}

func (p *connPool) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	conn, err := p.acquire(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := conn.Query(ctx, sql, args...)
	if err != nil {
		if rows != nil {
			rows.Close()
		}
		p.release(conn)
		return nil, err
	}
	return &poolRows{Rows: rows, release: func() { p.release(conn) }}, nil
}

func (p *connPool) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	rows, err := p.Query(ctx, sql, args...)
	return &poolRow{rows: rows, err: err}
}

func (p *connPool) Begin(ctx context.Context) (pgx.Tx, error) {
	conn, err := p.acquire(ctx)
	if err != nil {
		return nil, err
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		p.release(conn)
		return nil, err
	}
	return &poolTx{Tx: tx, release: func() { p.release(conn) }}, nil
}

func (p *connPool) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	conn, err := p.acquire(ctx)
	if err != nil {
		return errBatchResults{err: err}
	}
	return &poolBatchResults{BatchResults: conn.SendBatch(ctx, b), release: func() { p.release(conn) }}
}

// poolRows releases its connection once the rows are closed or exhausted.
type poolRows struct {
	pgx.Rows
	release func()
	done    bool
}

func (r *poolRows) finish() {
	if !r.done {
		r.done = true
		r.Rows.Close()
		r.release()
	}
}

func (r *poolRows) Next() bool {
	if r.done {
		return false
	}
	if r.Rows.Next() {
		return true
	}
	r.finish()
	return false
}

func (r *poolRows) Close() { r.finish() }

// poolRow is QueryRow's result: the first row of a poolRows.
type poolRow struct {
	rows pgx.Rows
	err  error
}

func (r *poolRow) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	r.rows.Close()
	return r.rows.Err()
}

// poolTx releases its connection when it commits or rolls back.
type poolTx struct {
	pgx.Tx
	release func()
	done    bool
}

func (t *poolTx) finish() {
	if !t.done {
		t.done = true
		t.release()
	}
}

func (t *poolTx) Commit(ctx context.Context) error {
	err := t.Tx.Commit(ctx)
	t.finish()
	return err
}

func (t *poolTx) Rollback(ctx context.Context) error {
	err := t.Tx.Rollback(ctx)
	t.finish()
	return err
}

// poolBatchResults releases its connection when closed. (Batches that begin
// a transaction, pgx.Batch.BeginTx, are not supported: the store sends none,
// and the pool is not handed out.)
type poolBatchResults struct {
	pgx.BatchResults
	release func()
	done    bool
}

func (b *poolBatchResults) Close() error {
	err := b.BatchResults.Close()
	if !b.done {
		b.done = true
		b.release()
	}
	return err
}

// errBatchResults is the result of a batch that could not be sent.
type errBatchResults struct{ err error }

func (e errBatchResults) Exec() (pgconn.CommandTag, error) { return pgconn.CommandTag{}, e.err }
func (e errBatchResults) Query() (pgx.Rows, error)         { return nil, e.err }
func (e errBatchResults) QueryRow() pgx.Row                { return &poolRow{err: e.err} }
func (e errBatchResults) Close() error                     { return e.err }
func (e errBatchResults) Tx() pgx.Tx                       { return nil }
