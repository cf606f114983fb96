package process

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/internal/httpjson"
	"github.com/sandbox-agent-go/sandbox-agent/internal/problem"
	"github.com/sandbox-agent-go/sandbox-agent/internal/server"
	"github.com/sandbox-agent-go/sandbox-agent/internal/sse"
)

// Routes returns the /v1/processes routes.
func (m *Manager) Routes() []server.Route {
	get, post, del := http.MethodGet, http.MethodPost, http.MethodDelete
	return []server.Route{
		{Method: get, Pattern: "/v1/processes", Handler: server.Handle(m.handleList)},
		{Method: post, Pattern: "/v1/processes", Handler: server.Handle(m.handleCreate)},
		{Method: get, Pattern: "/v1/processes/config", Handler: server.Handle(m.handleGetConfig)},
		{Method: post, Pattern: "/v1/processes/config", Handler: server.Handle(m.handleSetConfig)},
		{Method: post, Pattern: "/v1/processes/run", Handler: server.Handle(m.handleRun)},
		{Method: get, Pattern: "/v1/processes/{id}", Handler: server.Handle(m.handleGet)},
		{Method: del, Pattern: "/v1/processes/{id}", Handler: server.Handle(m.handleDelete)},
		{Method: post, Pattern: "/v1/processes/{id}/stop", Handler: server.Handle(m.handleStop)},
		{Method: post, Pattern: "/v1/processes/{id}/kill", Handler: server.Handle(m.handleKill)},
		{Method: get, Pattern: "/v1/processes/{id}/logs", Handler: server.Handle(m.handleLogs)},
		{Method: post, Pattern: "/v1/processes/{id}/input", Handler: server.Handle(m.handleInput)},
		{Method: post, Pattern: "/v1/processes/{id}/terminal/resize", Handler: server.Handle(m.handleResize)},
		{Method: get, Pattern: "/v1/processes/{id}/terminal/ws", Handler: server.Handle(m.handleTerminal), QueryToken: true},
	}
}

// shuttingDown reports whether r's wait ended because the server (or the
// Manager) is shutting down: such a request must get neither a success nor an
// empty answer, but 503 server_shutting_down.
func (m *Manager) shuttingDown(r *http.Request) bool {
	return server.ShuttingDown(r.Context()) || m.ctx.Err() != nil
}

func (m *Manager) handleGetConfig(w http.ResponseWriter, r *http.Request) error {
	httpjson.Write(w, http.StatusOK, m.Config())
	return nil
}

func (m *Manager) handleSetConfig(w http.ResponseWriter, r *http.Request) error {
	var b struct {
		MaxConcurrentProcesses  *uint64 `json:"maxConcurrentProcesses"`
		DefaultRunTimeoutMs     *uint64 `json:"defaultRunTimeoutMs"`
		MaxRunTimeoutMs         *uint64 `json:"maxRunTimeoutMs"`
		MaxOutputBytes          *uint64 `json:"maxOutputBytes"`
		MaxLogBytesPerProcess   *uint64 `json:"maxLogBytesPerProcess"`
		MaxInputBytesPerRequest *uint64 `json:"maxInputBytesPerRequest"`
	}
	if err := httpjson.Decode(r, &b); err != nil {
		return err
	}
	var c Config
	for _, f := range []struct {
		name string
		src  *uint64
		dst  *uint64
	}{
		{"maxConcurrentProcesses", b.MaxConcurrentProcesses, &c.MaxConcurrentProcesses},
		{"defaultRunTimeoutMs", b.DefaultRunTimeoutMs, &c.DefaultRunTimeoutMs},
		{"maxRunTimeoutMs", b.MaxRunTimeoutMs, &c.MaxRunTimeoutMs},
		{"maxOutputBytes", b.MaxOutputBytes, &c.MaxOutputBytes},
		{"maxLogBytesPerProcess", b.MaxLogBytesPerProcess, &c.MaxLogBytesPerProcess},
		{"maxInputBytesPerRequest", b.MaxInputBytesPerRequest, &c.MaxInputBytesPerRequest},
	} {
		if f.src == nil {
			return httpjson.MissingField(f.name)
		}
		*f.dst = *f.src
	}
	c, err := m.SetConfig(c)
	if err != nil {
		return err
	}
	httpjson.Write(w, http.StatusOK, c)
	return nil
}

type runBody struct {
	Command        *string           `json:"command"`
	Args           []string          `json:"args"`
	Cwd            *string           `json:"cwd"`
	Env            map[string]string `json:"env"`
	TimeoutMs      *uint64           `json:"timeoutMs"`
	MaxOutputBytes *uint64           `json:"maxOutputBytes"`
}

func (m *Manager) handleRun(w http.ResponseWriter, r *http.Request) error {
	var b runBody
	if err := httpjson.Decode(r, &b); err != nil {
		return err
	}
	if b.Command == nil {
		return httpjson.MissingField("command")
	}
	res, err := m.Run(r.Context(), RunRequest{Command: *b.Command, Args: b.Args, Cwd: b.Cwd, Env: b.Env,
		TimeoutMs: b.TimeoutMs, MaxOutputBytes: b.MaxOutputBytes})
	if err != nil {
		if m.shuttingDown(r) {
			return problem.ShuttingDown()
		}
		if r.Context().Err() != nil {
			return nil // client gone; the group was killed
		}
		return err
	}
	httpjson.Write(w, http.StatusOK, res)
	return nil
}

type createBody struct {
	Command     *string           `json:"command"`
	Args        []string          `json:"args"`
	Cwd         *string           `json:"cwd"`
	Env         map[string]string `json:"env"`
	TTY         bool              `json:"tty"`
	Interactive bool              `json:"interactive"`
}

func (m *Manager) handleCreate(w http.ResponseWriter, r *http.Request) error {
	var b createBody
	if err := httpjson.Decode(r, &b); err != nil {
		return err
	}
	if b.Command == nil {
		return httpjson.MissingField("command")
	}
	// An "owner" in the body is ignored: API processes are always "user".
	info, err := m.Create(r.Context(), CreateRequest{Command: *b.Command, Args: b.Args, Cwd: b.Cwd, Env: b.Env,
		TTY: b.TTY, Interactive: b.Interactive}, OwnerUser)
	if err != nil {
		return err
	}
	httpjson.Write(w, http.StatusOK, info)
	return nil
}

func (m *Manager) handleList(w http.ResponseWriter, r *http.Request) error {
	var owner Owner
	if v, ok := r.URL.Query()["owner"]; ok && len(v) > 0 {
		switch o := Owner(v[0]); o {
		case OwnerUser, OwnerDesktop, OwnerSystem:
			owner = o
		default:
			return httpjson.QueryError(fmt.Sprintf("unknown variant `%s`, expected one of `user`, `desktop`, `system`", v[0]))
		}
	}
	httpjson.Write(w, http.StatusOK, struct {
		Processes []Info `json:"processes"`
	}{m.List(owner)})
	return nil
}

func (m *Manager) handleGet(w http.ResponseWriter, r *http.Request) error {
	info, err := m.Get(r.PathValue("id"))
	if err != nil {
		return err
	}
	httpjson.Write(w, http.StatusOK, info)
	return nil
}

func (m *Manager) handleDelete(w http.ResponseWriter, r *http.Request) error {
	if err := m.Delete(r.PathValue("id")); err != nil {
		return err
	}
	httpjson.NoContent(w)
	return nil
}

// maxStopWaitMs bounds ?waitMs= (the wait also ends with the request).
const maxStopWaitMs = 300_000

func (m *Manager) handleStop(w http.ResponseWriter, r *http.Request) error {
	return m.handleSignal(w, r, m.Stop)
}
func (m *Manager) handleKill(w http.ResponseWriter, r *http.Request) error {
	return m.handleSignal(w, r, m.Kill)
}

func (m *Manager) handleSignal(w http.ResponseWriter, r *http.Request,
	fn func(ctx context.Context, id string, wait time.Duration) (Info, error)) error {
	wait := m.stopWait
	ms, ok, err := httpjson.QueryUint(r, "waitMs")
	if err != nil {
		return err
	}
	if ok {
		wait = time.Duration(min(ms, maxStopWaitMs)) * time.Millisecond
	}
	info, err := fn(r.Context(), r.PathValue("id"), wait)
	if m.shuttingDown(r) {
		return problem.ShuttingDown() // the wait was cut short: the process is being killed
	}
	if err != nil {
		return err
	}
	httpjson.Write(w, http.StatusOK, info)
	return nil
}

// LogsDroppedHeader is set to "true" on the logs answer (JSON or SSE) of an
// exited process whose log ring the exited-log budget released; the JSON
// answer then also has "logsDropped": true and no entries.
const LogsDroppedHeader = "X-Sandbox-Agent-Logs-Dropped"

// logEntryJSON is upstream's ProcessLogEntry.
type logEntryJSON struct {
	Sequence    uint64 `json:"sequence"`
	Stream      string `json:"stream"`
	TimestampMs int64  `json:"timestampMs"`
	Data        []byte `json:"data"` // base64
	Encoding    string `json:"encoding"`
}

func toJSON(e entry) logEntryJSON {
	return logEntryJSON{Sequence: e.seq, Stream: e.stream.String(), TimestampMs: e.ts, Data: e.data, Encoding: "base64"}
}

// streamEndGrace is how long the last writes of a follow stream ended by
// Close or shutdown may take: enough for a reading client to get the
// stream's end, short enough to keep shutdown well under its budget.
const streamEndGrace = 100 * time.Millisecond

// Follow batches: bounded per wake-up so a big replay streams in pieces.
const (
	followBatchEntries = 256
	followBatchBytes   = 1 << 20
)

func (m *Manager) handleLogs(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	var f filter
	if v, ok := q["stream"]; ok && len(v) > 0 {
		var valid bool
		if f, valid = parseFilter(v[0]); !valid {
			return httpjson.QueryError(fmt.Sprintf("unknown variant `%s`, expected one of `stdout`, `stderr`, `combined`, `pty`", v[0]))
		}
	}
	tail, hasTail, err := httpjson.QueryUint(r, "tail")
	if err != nil {
		return err
	}
	since, _, err := httpjson.QueryUint(r, "since")
	if err != nil {
		return err
	}
	follow, err := httpjson.QueryBool(r, "follow")
	if err != nil {
		return err
	}
	p, err := m.lookup(r.PathValue("id"))
	if err != nil {
		return err
	}
	if f == 0 {
		f = filterCombined
		if p.tty {
			f = filterPTY
		}
	}
	// The exited-log budget may have released this ring: say so rather than
	// pass an empty log off as a silent process.
	dropped := p.logs.isDropped()
	if dropped {
		w.Header().Set(LogsDroppedHeader, "true")
	}
	if !follow {
		var es []entry
		if hasTail {
			es, _ = p.logs.tail(since, f, tail)
		} else {
			es, _ = p.logs.read(since, f, math.MaxInt, math.MaxInt)
		}
		out := make([]logEntryJSON, len(es))
		for i, e := range es {
			out[i] = toJSON(e)
		}
		httpjson.Write(w, http.StatusOK, struct {
			ProcessID   string         `json:"processId"`
			Stream      string         `json:"stream"`
			Entries     []logEntryJSON `json:"entries"`
			LogsDropped bool           `json:"logsDropped,omitempty"`
		}{p.id, f.String(), out, dropped})
		return nil
	}
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return problem.Invalid("Last-Event-ID must be a positive integer")
		}
		since = max(since, n)
	}
	if r.Method == http.MethodHead {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		w.WriteHeader(http.StatusOK)
		return nil
	}
	if !m.track() {
		return errShuttingDown()
	}
	defer m.wg.Done()
	m.followLogs(w, r, p, f, since, tail, hasTail)
	return nil
}

// followLogs replays the matching entries after since (the last tail of
// them, when asked) and then streams new ones. Unlike upstream it ends
// cleanly once the process has exited and every entry has been sent; it also
// ends on DELETE, Close or client disconnect.
func (m *Manager) followLogs(w http.ResponseWriter, r *http.Request, p *proc, f filter, since, tail uint64, hasTail bool) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(m.ctx, cancel)()
	// Every write has a deadline (the slow-reader timeout) so a client that
	// stopped reading is cut off instead of holding this goroutine; when ctx
	// ends (Close, shutdown, client gone) the deadline shrinks to
	// streamEndGrace, which aborts a write already blocked on a stalled
	// reader (Close never waits for one) yet leaves a reading client time
	// to get the stream's clean end.
	rc := http.NewResponseController(w)
	cut := make(chan struct{})
	stopCut := context.AfterFunc(ctx, func() {
		_ = rc.SetWriteDeadline(time.Now().Add(streamEndGrace))
		close(cut)
	})
	defer func() {
		if !stopCut() {
			<-cut // the connection stays unwritable: it is being torn down
			return
		}
		// A kept-alive connection must not carry our deadline into its
		// next request.
		_ = rc.SetWriteDeadline(time.Time{})
	}()
	// armed sets the deadline for the next write; false once ctx ended
	// (checked after setting, so the cut above is never overridden).
	armed := func() bool {
		_ = rc.SetWriteDeadline(time.Now().Add(m.slow))
		return ctx.Err() == nil
	}
	if !armed() {
		return
	}
	sw, err := sse.Start(w)
	if err != nil {
		return
	}
	heartbeat := time.NewTicker(m.heartbeat)
	defer heartbeat.Stop()
	cursor := since
	first := true
	for {
		drained := isClosed(p.drained) // before reading: nothing is appended after drained
		notify := p.logs.wait()
		var batch []entry
		if first && hasTail {
			batch, cursor = p.logs.tail(cursor, f, tail)
		} else {
			batch, cursor = p.logs.read(cursor, f, followBatchEntries, followBatchBytes)
		}
		first = false
		if len(batch) > 0 {
			for _, e := range batch {
				data, _ := json.Marshal(toJSON(e))
				sw.Event("log", e.seq, data)
			}
			if !armed() || sw.Flush() != nil {
				return
			}
			continue
		}
		if drained {
			return
		}
		select {
		case <-notify:
		case <-p.drained:
		case <-p.removed:
			return
		case <-ctx.Done():
			return
		case <-heartbeat.C:
			sw.Comment("")
			if !armed() || sw.Flush() != nil {
				return
			}
		}
	}
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func (m *Manager) handleInput(w http.ResponseWriter, r *http.Request) error {
	var b struct {
		Data     *string `json:"data"`
		Encoding *string `json:"encoding"`
	}
	if err := httpjson.Decode(r, &b); err != nil {
		return err
	}
	if b.Data == nil {
		return httpjson.MissingField("data")
	}
	data, err := decodeInput(*b.Data, b.Encoding, "base64")
	if err == nil {
		err = m.checkInputSize(len(data))
	}
	if err != nil {
		return err
	}
	n, err := m.Input(r.Context(), r.PathValue("id"), data)
	if err != nil {
		if m.shuttingDown(r) {
			return problem.ShuttingDown()
		}
		if r.Context().Err() != nil {
			return nil
		}
		return err
	}
	httpjson.Write(w, http.StatusOK, struct {
		BytesWritten int `json:"bytesWritten"`
	}{n})
	return nil
}

type resizeBody struct {
	Cols *uint16 `json:"cols"`
	Rows *uint16 `json:"rows"`
}

func (m *Manager) handleResize(w http.ResponseWriter, r *http.Request) error {
	var b resizeBody
	if err := httpjson.Decode(r, &b); err != nil {
		return err
	}
	if b.Cols == nil {
		return httpjson.MissingField("cols")
	}
	if b.Rows == nil {
		return httpjson.MissingField("rows")
	}
	if err := m.Resize(r.PathValue("id"), *b.Cols, *b.Rows); err != nil {
		return err
	}
	httpjson.Write(w, http.StatusOK, struct {
		Cols uint16 `json:"cols"`
		Rows uint16 `json:"rows"`
	}{*b.Cols, *b.Rows})
	return nil
}
