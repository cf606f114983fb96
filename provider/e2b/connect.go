package e2b

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// The Connect protocol's streaming envelope: a flags byte, a big-endian
// uint32 length, the message. envd speaks it with JSON messages, so a few
// lines replace generated stubs. A server's errors arrive in the
// end-stream envelope of an HTTP 200, not as an HTTP status.
const (
	flagCompressed = 0x01
	flagEndStream  = 0x02
	// maxFrame bounds one message: envd's output chunks are small, so a
	// larger length is a broken stream, not something to allocate.
	maxFrame = 16 << 20
)

// envelope frames one JSON message.
func envelope(msg any) ([]byte, error) {
	b, err := json.Marshal(msg)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 5, 5+len(b))
	binary.BigEndian.PutUint32(out[1:], uint32(len(b)))
	return append(out, b...), nil
}

// connectError is the error of an end-stream envelope.
type connectError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *connectError) Error() string { return "envd: " + e.Code + ": " + e.Message }

// readFrame reads the next envelope. At the end of the stream it returns
// io.EOF, or the *connectError the server ended it with.
func readFrame(r io.Reader) ([]byte, error) {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.ErrUnexpectedEOF // no end-stream envelope
		}
		return nil, err
	}
	n := binary.BigEndian.Uint32(h[1:])
	if n > maxFrame {
		return nil, fmt.Errorf("envd: a %d-byte message exceeds %d", n, maxFrame)
	}
	if h[0]&flagCompressed != 0 {
		return nil, errors.New("envd: compressed message (none was accepted)")
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	if h[0]&flagEndStream != 0 {
		var end struct {
			Error *connectError `json:"error"`
		}
		if err := json.Unmarshal(b, &end); err != nil {
			return nil, fmt.Errorf("envd: end of stream: %w", err)
		}
		if end.Error != nil {
			return nil, end.Error
		}
		return nil, io.EOF
	}
	return b, nil
}
