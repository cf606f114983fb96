// Package sse encodes and decodes Server-Sent Events. It is hand-written on
// http.ResponseController so the server controls ids, batching and
// heartbeats exactly; the SDK uses the Reader half.
package sse

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"
)

// Writer writes events into a buffer and sends them on Flush, so a burst of
// messages costs one write and one flush instead of one per message.
type Writer struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	buf []byte
}

// Start sends the SSE response headers and returns a Writer.
func Start(w http.ResponseWriter) (*Writer, error) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Del("Content-Length")
	w.WriteHeader(http.StatusOK)
	sw := &Writer{w: w, rc: http.NewResponseController(w), buf: make([]byte, 0, 4096)}
	return sw, sw.Flush()
}

// Event appends one event. data may hold newlines; each line becomes its own
// data field so the receiver reassembles it exactly.
func (s *Writer) Event(event string, id uint64, data []byte) {
	s.buf = AppendEvent(s.buf, event, id, data)
}

// AppendEvent appends the wire form of one event to b. id 0 omits the id field.
func AppendEvent(b []byte, event string, id uint64, data []byte) []byte {
	if event != "" {
		b = append(b, "event: "...)
		b = append(b, event...)
		b = append(b, '\n')
	}
	if id != 0 {
		b = append(b, "id: "...)
		b = strconv.AppendUint(b, id, 10)
		b = append(b, '\n')
	}
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		b = append(b, "data: "...)
		b = append(b, bytes.TrimSuffix(data[:i], []byte{'\r'})...)
		b = append(b, '\n')
		data = data[i+1:]
	}
	b = append(b, "data: "...)
	b = append(b, data...)
	return append(b, '\n', '\n')
}

// Comment appends a comment line (used for heartbeats).
func (s *Writer) Comment(text string) {
	s.buf = append(s.buf, ':')
	if text != "" {
		s.buf = append(s.buf, ' ')
		s.buf = append(s.buf, text...)
	}
	s.buf = append(s.buf, '\n', '\n')
}

// Buffered reports how many bytes wait for Flush.
func (s *Writer) Buffered() int { return len(s.buf) }

// Flush writes buffered events and flushes the connection.
func (s *Writer) Flush() error {
	if len(s.buf) > 0 {
		_, err := s.w.Write(s.buf)
		s.buf = s.buf[:0]
		if err != nil {
			return err
		}
	}
	return s.rc.Flush()
}

// Event is one decoded event.
type Event struct {
	Event string // "message" when the stream named none
	ID    string // last id seen on the stream (sticky, per the SSE spec)
	HasID bool   // this event carried an id field
	Data  []byte
}

// MaxLine bounds one SSE line on the reading side.
const MaxLine = 64 << 20

// ErrLineTooLong is returned when a line exceeds MaxLine.
var ErrLineTooLong = errors.New("sse: line too long")

// Reader decodes events from a stream.
type Reader struct {
	r      *bufio.Reader
	lastID string
}

// NewReader returns a Reader over r.
func NewReader(r io.Reader) *Reader { return &Reader{r: bufio.NewReaderSize(r, 64<<10)} }

// LastID is the last event id seen.
func (r *Reader) LastID() string { return r.lastID }

// Next returns the next event that carries data. Comments are skipped.
func (r *Reader) Next() (Event, error) {
	var ev Event
	var data []byte
	hasData := false
	for {
		line, err := r.readLine()
		if err != nil {
			return Event{}, err
		}
		if len(line) == 0 {
			if hasData {
				if ev.Event == "" {
					ev.Event = "message"
				}
				ev.ID = r.lastID
				ev.Data = data
				return ev, nil
			}
			ev = Event{}
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		switch string(field) {
		case "event":
			ev.Event = string(value)
		case "id":
			r.lastID = string(value)
			ev.HasID = true
		case "data":
			if hasData {
				data = append(data, '\n')
			}
			data = append(data, value...)
			hasData = true
		}
	}
}

func (r *Reader) readLine() ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > MaxLine {
			return nil, ErrLineTooLong
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if err == io.EOF && len(line) > 0 {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		line = bytes.TrimSuffix(line, []byte{'\n'})
		return bytes.TrimSuffix(line, []byte{'\r'}), nil
	}
}
