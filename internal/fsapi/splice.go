package fsapi

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/internal/problem"
)

// Large uploads bypass net/http's body reader: the handler takes the
// connection over (HTTP/1.x only) and moves the body from the socket into
// the temporary file with splice(2), so the bytes never cross user space.
// The atomic write (temp file, fsync, rename) and every answer are the
// same as on the normal path; the connection is closed after the answer.
const (
	// spliceMinBytes: smaller bodies are not worth giving up keep-alive.
	spliceMinBytes = 8 << 20
	// spliceChunk is how much is spliced between read-deadline refreshes
	// and context checks (a cancellation also interrupts a chunk at once,
	// through the read deadline).
	spliceChunk = 16 << 20
	// defaultBodyIdle bounds how long a stalled client can hold a spliced
	// upload when Options.BodyIdleTimeout is zero.
	defaultBodyIdle = 30 * time.Second
)

// spliceBody is a request body read straight from a hijacked connection.
type spliceBody struct {
	head []byte   // body bytes net/http had already buffered
	conn net.Conn // the rest: remain bytes
	n    int64    // declared Content-Length
	// short is set when the client sent fewer bytes than declared.
	short bool
	// ctx is the request's: once it ends (the server shuts down; after the
	// hijack net/http no longer watches the client) the copy stops.
	ctx context.Context
	// idle bounds each wait for the client's next bytes (the hijack
	// bypasses the server's body idle timeout, so it is applied here).
	idle time.Duration
}

// idleErr turns a read that timed out because the client sent nothing for
// b.idle into the 408 problem the server's own body timeout answers; a
// deadline that expired because ctx ended stays what it was.
func (b *spliceBody) idleErr(err error) error {
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) && b.ctx.Err() == nil {
		return bodyIdleTimeout(b.idle)
	}
	return err
}

// bodyIdleTimeout is the problem for a body that delivered nothing for d:
// the same as internal/server's, so both upload paths answer alike.
func bodyIdleTimeout(d time.Duration) error {
	return problem.New(problem.RequestTimeout, http.StatusRequestTimeout, "Request Timeout",
		"the request body delivered nothing for "+d.String())
}

// watch arms ctx's cancellation on the socket: a pending read (or splice)
// fails at once through a deadline in the past. The deadline refreshes of
// the copy loops happen before their ctx checks, so a cancellation cannot
// be overwritten unnoticed.
func (b *spliceBody) watch() (stop func() bool) {
	return context.AfterFunc(b.ctx, func() { _ = b.conn.SetReadDeadline(time.Unix(1, 0)) })
}

// Read makes spliceBody an io.Reader for the paths that cannot splice
// (writing in place to a device or FIFO).
func (b *spliceBody) Read(p []byte) (int, error) {
	if len(b.head) > 0 {
		n := copy(p, b.head)
		b.head = b.head[n:]
		b.n -= int64(n)
		return n, nil
	}
	if b.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	_ = b.conn.SetReadDeadline(time.Now().Add(b.idle))
	if err := b.ctx.Err(); err != nil {
		return 0, err
	}
	defer b.watch()()
	n, err := b.conn.Read(p)
	b.n -= int64(n)
	if err == io.EOF && b.n > 0 {
		b.short = true
		err = io.ErrUnexpectedEOF
	}
	return n, b.idleErr(err)
}

// writeTo moves the whole body into f: the buffered head with write(2),
// the rest with splice(2) through *os.File's ReadFrom.
func (b *spliceBody) writeTo(f *os.File) (int64, error) {
	var total int64
	if len(b.head) > 0 {
		n, err := f.Write(b.head)
		total += int64(n)
		b.n -= int64(n)
		b.head = nil
		if err != nil {
			return total, err
		}
	}
	defer b.watch()()
	for b.n > 0 {
		_ = b.conn.SetReadDeadline(time.Now().Add(b.idle))
		if err := b.ctx.Err(); err != nil {
			return total, &spliceReadError{err}
		}
		n, err := f.ReadFrom(io.LimitReader(b.conn, min(b.n, spliceChunk)))
		total += n
		b.n -= n
		if err != nil {
			return total, &spliceReadError{b.idleErr(err)}
		}
		if n == 0 {
			b.short = true
			return total, &spliceReadError{io.ErrUnexpectedEOF}
		}
	}
	return total, nil
}

// spliceReadError marks a failure on the socket side (or one splice cannot
// attribute; either way the upload is incomplete and nothing is kept).
type spliceReadError struct{ err error }

func (e *spliceReadError) Error() string { return "reading the upload: " + e.err.Error() }
func (e *spliceReadError) Unwrap() error { return e.err }

// hijackUpload takes the connection over for a large HTTP/1.x upload. It
// returns the body and a function that sends the answer a handler writes to
// the given ResponseWriter, then closes the connection. idle bounds each
// wait for body bytes (0: defaultBodyIdle). ok is false when
// the request is not eligible (then nothing was touched).
func hijackUpload(w http.ResponseWriter, r *http.Request, idle time.Duration) (body *spliceBody, answer func(func(http.ResponseWriter)), ok bool) {
	if r.ProtoMajor != 1 || r.ContentLength < spliceMinBytes || len(r.TransferEncoding) > 0 {
		return nil, nil, false
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, nil, false
	}
	_ = conn.SetDeadline(time.Time{})
	if strings.EqualFold(r.Header.Get("Expect"), "100-continue") {
		// net/http sends this on the first body read, which we bypass.
		_, _ = io.WriteString(conn, "HTTP/1.1 100 Continue\r\n\r\n")
	}
	head := make([]byte, min(int64(brw.Reader.Buffered()), r.ContentLength))
	_, _ = io.ReadFull(brw.Reader, head)
	header := w.Header().Clone() // CORS and the like, set before the handler
	answer = func(write func(http.ResponseWriter)) {
		rec := &recordedResponse{header: header}
		write(rec)
		resp := &http.Response{
			StatusCode:    rec.status,
			ProtoMajor:    1,
			ProtoMinor:    1,
			Header:        rec.header,
			ContentLength: int64(rec.body.Len()),
			Body:          io.NopCloser(&rec.body),
			Close:         true,
		}
		bw := bufio.NewWriter(conn)
		_ = conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if err := resp.Write(bw); err == nil {
			_ = bw.Flush()
		}
		// Half-close and drain a little before closing: closing with
		// unread body bytes would reset the connection and could destroy
		// the answer before the client reads it (net/http does the same).
		if tc, ok := conn.(interface{ CloseWrite() error }); ok {
			_ = tc.CloseWrite()
			_ = conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			_, _ = io.Copy(io.Discard, io.LimitReader(conn, 4<<20))
		}
		_ = conn.Close()
	}
	if idle <= 0 {
		idle = defaultBodyIdle
	}
	return &spliceBody{head: head, conn: conn, n: r.ContentLength, ctx: r.Context(), idle: idle}, answer, true
}

// recordedResponse is an in-memory http.ResponseWriter, so the usual
// answer helpers can write for a hijacked connection.
type recordedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recordedResponse) Header() http.Header { return r.header }

func (r *recordedResponse) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *recordedResponse) Write(p []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(p)
}

// errUploadIncomplete is reported (to the log) when a client went away.
var errUploadIncomplete = errors.New("the client sent fewer bytes than its Content-Length")

func (b *spliceBody) describe(err error) error {
	if b.short {
		return fmt.Errorf("%w: %w", errUploadIncomplete, err)
	}
	return err
}
