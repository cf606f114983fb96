package server

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/internal/problem"
)

// guard wraps every request's ResponseWriter and body. It exists for three
// promises the handlers cannot keep on their own:
//
//   - An error answer to a request whose body was not read to its end goes
//     out at once and closes the connection. Left alone, net/http first tries
//     to drain the unread body (up to 256 KiB) before it writes the answer and
//     again before it reuses the connection, so a client that announced a
//     body and sends nothing holds the connection — and a file descriptor —
//     forever, and never even sees its 401.
//   - A body that delivers nothing for bodyIdle ends the request with 408:
//     the read deadline is armed only while a Read is blocked, so an upload
//     that keeps moving is never cut, and no deadline is left behind to fire
//     in net/http's background read after the body ended.
//   - A handler that returns without answering because the server is shutting
//     down (its context ended with ErrShuttingDown) leaves a 503
//     server_shutting_down, never net/http's empty 200.
type guard struct {
	http.ResponseWriter
	rc       *http.ResponseController
	req      *http.Request
	log      *slog.Logger // where Handle reports errors it cannot answer
	wrote    bool
	hijacked bool
	body     guardBody
}

// guardBody is the request body seen by handlers.
type guardBody struct {
	g        *guard
	rc       io.ReadCloser
	idle     time.Duration
	eof      bool
	timedOut bool
}

func newGuard(w http.ResponseWriter, r *http.Request, bodyIdle time.Duration, log *slog.Logger) *guard {
	g := &guard{ResponseWriter: w, rc: http.NewResponseController(w), req: r, log: log}
	if r.Body != nil && r.Body != http.NoBody {
		g.body = guardBody{g: g, rc: r.Body, idle: bodyIdle}
		r.Body = &g.body
	} else {
		g.body.eof = true
	}
	return g
}

func (b *guardBody) Read(p []byte) (int, error) {
	if b.timedOut {
		return 0, bodyTimeout(b.idle)
	}
	armed := b.idle > 0 && b.g.rc.SetReadDeadline(time.Now().Add(b.idle)) == nil
	n, err := b.rc.Read(p)
	if armed {
		_ = b.g.rc.SetReadDeadline(time.Time{})
	}
	switch {
	case err == io.EOF:
		b.eof = true
	case err != nil && errors.Is(err, os.ErrDeadlineExceeded):
		b.timedOut = true
		return n, bodyTimeout(b.idle)
	}
	return n, err
}

func (b *guardBody) Close() error { return b.rc.Close() }

// bodyTimeout is the error a stalled body read returns; it is a problem, so
// every handler that reports body errors through problem.WriteError (or
// httpjson) answers 408.
func bodyTimeout(d time.Duration) error {
	return problem.New(problem.RequestTimeout, http.StatusRequestTimeout, "Request Timeout",
		"the request body delivered nothing for "+d.String())
}

func (g *guard) Unwrap() http.ResponseWriter { return g.ResponseWriter }

func (g *guard) WriteHeader(code int) {
	if !g.wrote {
		g.wrote = true
		if code >= 400 && !g.body.eof {
			g.abandonBody()
		}
	}
	g.ResponseWriter.WriteHeader(code)
}

func (g *guard) Write(p []byte) (int, error) {
	if !g.wrote {
		g.WriteHeader(http.StatusOK)
	}
	return g.ResponseWriter.Write(p)
}

// FlushError is found by http.ResponseController before Unwrap: a flush
// commits the status too.
func (g *guard) FlushError() error {
	g.wrote = true
	return g.rc.Flush()
}

// Hijack is found by http.ResponseController and coder/websocket before
// Unwrap, so the guard knows the connection is no longer net/http's.
func (g *guard) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := g.rc.Hijack()
	if err == nil {
		g.hijacked, g.wrote = true, true
	}
	return c, brw, err
}

// abandonBody makes the connection close after this answer without
// draining the rest of the body: an expired read deadline ends net/http's
// drain at once instead of waiting on the client.
func (g *guard) abandonBody() {
	g.Header().Set("Connection", "close")
	_ = g.rc.SetReadDeadline(time.Now())
}

// finish runs after the handler: a request that ended unanswered because
// of shutdown or a stalled body gets its problem answer.
func (g *guard) finish() {
	if g.wrote || g.hijacked {
		return
	}
	switch {
	case g.body.timedOut:
		problem.WriteError(g, bodyTimeout(g.body.idle))
	case ShuttingDown(g.req.Context()):
		problem.Write(g, problem.ShuttingDown())
	}
}
