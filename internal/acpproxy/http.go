package acpproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/acp"
	"github.com/sandbox-agent-go/sandbox-agent/internal/httpjson"
	"github.com/sandbox-agent-go/sandbox-agent/internal/problem"
	"github.com/sandbox-agent-go/sandbox-agent/internal/server"
	"github.com/sandbox-agent-go/sandbox-agent/internal/sse"
)

// Routes returns the /v1/acp routes.
func (r *Registry) Routes() []server.Route {
	return []server.Route{
		{Method: http.MethodGet, Pattern: "/v1/acp", Handler: r.handleList},
		{Method: http.MethodPost, Pattern: "/v1/acp/{server_id}", Handler: server.Handle(r.handlePost)},
		{Method: http.MethodGet, Pattern: "/v1/acp/{server_id}", Handler: server.Handle(r.handleStream)},
		{Method: http.MethodDelete, Pattern: "/v1/acp/{server_id}", Handler: r.handleDelete},
	}
}

func (r *Registry) handleList(w http.ResponseWriter, req *http.Request) {
	httpjson.Write(w, http.StatusOK, map[string]any{"servers": r.List()})
}

// accepts reports whether an Accept header allows one of the media types.
// An absent header accepts anything; parameters and q-values are ignored.
func accepts(header string, types ...string) bool {
	if strings.TrimSpace(header) == "" {
		return true
	}
	for part := range strings.SplitSeq(header, ",") {
		mt := strings.TrimSpace(part)
		if i := strings.IndexByte(mt, ';'); i >= 0 {
			mt = strings.TrimSpace(mt[:i])
		}
		for _, t := range types {
			if strings.EqualFold(mt, t) {
				return true
			}
		}
	}
	return false
}

func (r *Registry) handlePost(w http.ResponseWriter, req *http.Request) error {
	id := req.PathValue("server_id")
	mt, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
	if !strings.EqualFold(mt, "application/json") {
		return problem.UnsupportedMedia("content-type must be application/json")
	}
	if !accepts(req.Header.Get("Accept"), "application/json", "*/*", "application/*") {
		return problem.NotAcceptableMsg("accept must allow application/json")
	}
	body, err := httpjson.ReadBody(req)
	if err != nil {
		return err
	}
	// One pass validates and classifies; the body is rewritten only when it
	// spans lines (stdin framing is one message per line).
	env, perr := acp.Parse(body)
	if perr != nil && !errors.Is(perr, acp.ErrNotObject) {
		return problem.Invalid("invalid JSON body: " + perr.Error())
	}
	line := bytes.TrimSpace(body)
	if bytes.ContainsAny(line, "\r\n") {
		var b bytes.Buffer
		_ = json.Compact(&b, line) // valid: Parse accepted it
		line = b.Bytes()
	}
	agent := ""
	if v, ok := req.URL.Query()["agent"]; ok {
		agent = v[0]
		if !r.opts.Launcher.Known(agent) {
			return problem.Unsupported(agent)
		}
	}
	// Invalid messages are refused before Resolve, so they never start an
	// agent: a batch array (not supported by ACP's stdio framing) and a
	// request with a null id (invalid in JSON-RPC 2.0; its response could
	// not be told from another's, so it would wait for the full timeout).
	if perr != nil {
		return problem.Invalid(acp.ErrNotObject.Error())
	}
	if env.Kind == acp.Request && string(env.ID) == "null" {
		return problem.Invalid("a JSON-RPC request id must not be null (send a notification without id instead)")
	}
	inst, err := r.Resolve(req.Context(), id, agent)
	if err != nil {
		return postError(req, err)
	}
	if env.Kind != acp.Request {
		// Bounded like a request: an agent that stops reading stdin must not
		// hang the caller.
		ctx, cancel := context.WithTimeout(req.Context(), r.opts.RequestTimeout)
		defer cancel()
		if err := inst.write(ctx, line); err != nil {
			return postError(req, inst.writeError(err))
		}
		w.WriteHeader(http.StatusAccepted)
		return nil
	}
	resp, err := inst.call(req.Context(), env.ID, line)
	if err != nil {
		return postError(req, err)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(resp)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(resp)
	return nil
}

// postError is the answer to a failed POST: 503 server_shutting_down when
// the request ended because the server is shutting down (whatever the agent
// did meanwhile: shutdown kills it), nothing (nil) when the client went away.
func postError(req *http.Request, err error) error {
	if server.ShuttingDown(req.Context()) {
		return problem.ShuttingDown()
	}
	if errors.Is(err, context.Canceled) {
		return nil // the client went away; nobody to answer
	}
	return err
}

// Batching bounds for one SSE write.
const (
	maxBatch      = 512
	maxBatchBytes = 1 << 20
)

func (r *Registry) handleStream(w http.ResponseWriter, req *http.Request) error {
	if !accepts(req.Header.Get("Accept"), "text/event-stream", "*/*", "text/*") {
		return problem.NotAcceptableMsg("accept must allow text/event-stream")
	}
	var lastID uint64
	hasLast := false
	if v := strings.TrimSpace(req.Header.Get("Last-Event-ID")); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return problem.Invalid("Last-Event-ID must be a positive integer")
		}
		lastID, hasLast = n, true
	}
	id := req.PathValue("server_id")
	inst, ok := r.Get(id)
	if !ok {
		return problem.Session(id)
	}
	inst.serveStream(w, req, lastID, hasLast)
	return nil
}

func (in *Instance) serveStream(w http.ResponseWriter, req *http.Request, lastID uint64, hasLast bool) {
	st := in.stream
	g := &writeGuard{rc: http.NewResponseController(w)}
	// A write blocked on a client that stopped reading fails at once when
	// the request ends (shutdown, client gone), the reader is cut off or
	// the stream closes: nothing waits out the write deadline.
	stop := context.AfterFunc(req.Context(), g.abort)
	defer stop()
	rd, gap := st.subscribe(lastID, hasLast, g.abort)
	defer st.unsubscribe(rd)
	sw, err := sse.Start(w)
	if err != nil || req.Method == http.MethodHead {
		return
	}
	if gap != nil {
		sw.Event("message", 0, acp.Notify(acp.MethodGap, acp.GapParams{AfterEventID: gap.after, NextEventID: gap.next, MissedEvents: gap.missed, Reset: gap.reset}))
	}
	hb := time.NewTicker(in.opts.Heartbeat)
	defer hb.Stop()
	batch := make([]entry, 0, maxBatch)
	for {
		var wait <-chan struct{}
		batch, wait = st.next(rd, batch[:0], maxBatch, maxBatchBytes)
		for _, e := range batch {
			sw.Event("message", e.seq, e.data)
		}
		if sw.Buffered() > 0 {
			// A reader that cannot take a batch within the slow-reader
			// timeout is cut off instead of stalling the agent.
			g.setDeadline(time.Now().Add(in.opts.SlowReaderTimeout))
			err := sw.Flush()
			g.wrote()
			if err != nil {
				return
			}
			if len(batch) > 0 {
				// What the POSTs waiting on the ordering invariant wait for.
				st.markFlushed(rd, batch[len(batch)-1].seq)
			}
		}
		if len(batch) > 0 {
			continue
		}
		if wait == nil { // cut off or server closed
			return
		}
		select {
		case <-wait:
		case <-hb.C:
			sw.Comment("heartbeat")
		case <-rd.cutCh:
			return
		case <-st.doneCh:
			return
		case <-req.Context().Done():
			return
		}
	}
}

// writeGuard sets an SSE response's write deadline. Once aborted (from
// another goroutine: the stream closed, the reader was cut off or the
// request ended) a write in progress, and any later one, gets at most
// abortGrace: a client that stopped reading cannot hold the handler (and
// shutdown) for a whole slow-reader timeout, while a reading client still
// gets the last batch and a clean end of stream (an idle stream's deadline
// is not touched, so net/http's final chunk goes out normally).
type writeGuard struct {
	mu      sync.Mutex
	rc      *http.ResponseController
	writing bool
	aborted bool
}

// abortGrace bounds a write once the stream is ending.
const abortGrace = 100 * time.Millisecond

// setDeadline is called before a flush; wrote after it.
func (g *writeGuard) setDeadline(t time.Time) {
	g.mu.Lock()
	g.writing = true
	if end := time.Now().Add(abortGrace); g.aborted && t.After(end) {
		t = end
	}
	_ = g.rc.SetWriteDeadline(t)
	g.mu.Unlock()
}

func (g *writeGuard) wrote() {
	g.mu.Lock()
	g.writing = false
	g.mu.Unlock()
}

func (g *writeGuard) abort() {
	g.mu.Lock()
	if !g.aborted {
		g.aborted = true
		if g.writing {
			_ = g.rc.SetWriteDeadline(time.Now().Add(abortGrace))
		}
	}
	g.mu.Unlock()
}

func (r *Registry) handleDelete(w http.ResponseWriter, req *http.Request) {
	// The response is bounded whatever the agent does: close escalates to
	// SIGKILL after KillGrace.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(req.Context()), 5*time.Second)
	defer cancel()
	r.Delete(ctx, req.PathValue("server_id"))
	w.WriteHeader(http.StatusNoContent)
}
