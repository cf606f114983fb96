package process

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/coder/websocket"

	"github.com/sandbox-agent-go/sandbox-agent/internal/httpjson"
	"github.com/sandbox-agent-go/sandbox-agent/internal/problem"
)

// Terminal WebSocket protocol (upstream's): the server sends a text frame
// {"processId","type":"ready"}, then the PTY output as binary frames, and
// {"exitCode","type":"exit"} before closing once the process has exited and
// its output is sent. The client sends text JSON frames: input (utf8 by
// default, or base64), resize and close. Bad frames get a text frame
// {"message","type":"error"} and the socket stays open. Control frames keep
// upstream's alphabetically sorted keys.

// terminalChunk bounds one binary output frame.
const terminalChunk = 64 << 10

// upgradeError reproduces the pre-upgrade checks (and texts) of upstream's
// framework; they run before the process lookup.
func upgradeError(r *http.Request) (int, string) {
	if r.Method != http.MethodGet {
		return http.StatusMethodNotAllowed, "Request method must be `GET`"
	}
	if !headerHasToken(r.Header, "Connection", "upgrade") {
		return http.StatusBadRequest, "Connection header did not include 'upgrade'"
	}
	if !headerHasToken(r.Header, "Upgrade", "websocket") {
		return http.StatusBadRequest, "`Upgrade` header did not include 'websocket'"
	}
	if r.Header.Get("Sec-WebSocket-Version") != "13" {
		return http.StatusBadRequest, "`Sec-WebSocket-Version` header did not include '13'"
	}
	if r.Header.Get("Sec-WebSocket-Key") == "" {
		return http.StatusBadRequest, "`Sec-WebSocket-Key` header missing"
	}
	return 0, ""
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

func (m *Manager) handleTerminal(w http.ResponseWriter, r *http.Request) error {
	if status, msg := upgradeError(r); status != 0 {
		return &httpjson.TextError{Status: status, Msg: msg}
	}
	p, err := m.lookup(r.PathValue("id"))
	if err != nil {
		return err
	}
	if !p.tty {
		return errNotTTY()
	}
	if !m.track() {
		return errShuttingDown()
	}
	defer m.wg.Done()
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		InsecureSkipVerify: len(m.origins) == 0,
		OriginPatterns:     m.origins,
	})
	if err != nil {
		return nil // Accept answered the request
	}
	m.serveTerminal(r.Context(), c, p)
	return nil
}

func readyFrame(id string) []byte {
	q, _ := json.Marshal(id)
	return append(append([]byte(`{"processId":`), q...), `,"type":"ready"}`...)
}

func exitFrame(code *int) []byte {
	v := "null"
	if code != nil {
		v = strconv.Itoa(*code)
	}
	return []byte(`{"exitCode":` + v + `,"type":"exit"}`)
}

func errorFrame(msg string) []byte {
	q, _ := json.Marshal(msg)
	return append(append([]byte(`{"message":`), q...), `,"type":"error"}`...)
}

// serveTerminal pumps PTY output to the socket while a second goroutine
// handles client frames. It returns once the socket is closed.
func (m *Manager) serveTerminal(ctx context.Context, c *websocket.Conn, p *proc) {
	limit := int64(m.Config().MaxInputBytesPerRequest)
	c.SetReadLimit(min(max(32<<10, limit/3*4+4096), 64<<20))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(m.ctx, cancel)()
	// Once the request or the Manager ends, tear the socket down at once:
	// this also cuts short a close handshake with a client that stopped
	// reading, so Close never waits for it.
	defer context.AfterFunc(ctx, func() { _ = c.CloseNow() })()
	// write bounds every frame by the slow-reader timeout: a client that
	// stops reading is cut off (coder/websocket closes the connection when a
	// write's context ends).
	write := func(ctx context.Context, typ websocket.MessageType, b []byte) error {
		wctx, cancel := context.WithTimeout(ctx, m.slow)
		defer cancel()
		return c.Write(wctx, typ, b)
	}

	cursor := p.logs.lastSeq() // no replay: only output produced from now on
	if write(ctx, websocket.MessageText, readyFrame(p.id)) != nil {
		_ = c.CloseNow()
		return
	}
	// The reader's context must outlive a graceful close (cancelling a
	// Read's context tears the connection down), so it has its own.
	rctx, rcancel := context.WithCancel(context.Background())
	closeReq, readerDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(readerDone)
		m.readTerminal(rctx, c, p, closeReq, write)
	}()
	defer func() {
		rcancel()
		<-readerDone
	}()

	buf := make([]byte, 0, terminalChunk)
	for {
		drained := isClosed(p.drained)
		notify := p.logs.wait()
		var batch []entry
		batch, cursor = p.logs.read(cursor, filterPTY, followBatchEntries, terminalChunk)
		if len(batch) > 0 {
			buf = buf[:0]
			for _, e := range batch {
				buf = append(buf, e.data...)
			}
			if write(ctx, websocket.MessageBinary, buf) != nil {
				_ = c.CloseNow()
				return
			}
			continue
		}
		if drained {
			p.mu.Lock()
			code := p.exitCode
			p.mu.Unlock()
			if write(ctx, websocket.MessageText, exitFrame(code)) != nil {
				_ = c.CloseNow()
				return
			}
			_ = c.Close(websocket.StatusNoStatusRcvd, "")
			return
		}
		select {
		case <-notify:
		case <-p.drained:
		case <-closeReq:
			_ = c.Close(websocket.StatusNoStatusRcvd, "")
			return
		case <-readerDone:
			if isClosed(closeReq) {
				_ = c.Close(websocket.StatusNoStatusRcvd, "")
			} else {
				_ = c.CloseNow()
			}
			return
		case <-ctx.Done():
			_ = c.CloseNow()
			return
		}
	}
}

type terminalFrame struct {
	Type     *string `json:"type"`
	Data     *string `json:"data"`
	Encoding *string `json:"encoding"`
	Cols     *uint16 `json:"cols"`
	Rows     *uint16 `json:"rows"`
}

// readTerminal handles client frames until the socket fails or the client
// asks to close (then it closes closeReq and stops reading, leaving the
// close handshake to the caller).
func (m *Manager) readTerminal(ctx context.Context, c *websocket.Conn, p *proc, closeReq chan struct{},
	write func(context.Context, websocket.MessageType, []byte) error) {
	reply := func(msg string) bool { return write(ctx, websocket.MessageText, errorFrame(msg)) == nil }
	for {
		typ, data, err := c.Read(ctx)
		if err != nil {
			return
		}
		if typ != websocket.MessageText {
			if !reply("binary input is not supported; use text JSON frames") {
				return
			}
			continue
		}
		msg := m.handleFrame(ctx, p, data)
		if msg == "close" {
			close(closeReq)
			return
		}
		if msg != "" && !reply(msg) {
			return
		}
	}
}

// handleFrame applies one client frame; it returns "" on success, "close"
// for a close frame, or the error message to send back.
func (m *Manager) handleFrame(ctx context.Context, p *proc, data []byte) string {
	var f terminalFrame
	if err := json.Unmarshal(data, &f); err != nil {
		return "invalid terminal frame: " + httpjson.Describe(err)
	}
	if f.Type == nil {
		return "invalid terminal frame: missing field `type`"
	}
	switch *f.Type {
	case "input":
		if f.Data == nil {
			return "invalid terminal frame: missing field `data`"
		}
		b, err := decodeInput(*f.Data, f.Encoding, "utf8")
		if err == nil {
			err = m.checkInputSize(len(b))
		}
		if err == nil {
			_, err = p.write(ctx, b)
		}
		return problemText(err)
	case "resize":
		if f.Cols == nil {
			return "invalid terminal frame: missing field `cols`"
		}
		if f.Rows == nil {
			return "invalid terminal frame: missing field `rows`"
		}
		return problemText(p.resize(*f.Cols, *f.Rows))
	case "close":
		return "close"
	}
	return fmt.Sprintf("invalid terminal frame: unknown variant `%s`, expected one of `input`, `resize`, `close`", *f.Type)
}

func problemText(err error) string {
	if err == nil {
		return ""
	}
	var p *problem.Problem
	if errors.As(err, &p) {
		return p.Detail
	}
	return err.Error()
}
