package e2b

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

func frame(flags byte, msg string) []byte {
	b := []byte{flags, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], uint32(len(msg)))
	return append(b, msg...)
}

// TestReadFrame: the envelope reader's cases, errors included, which envd
// sends in the end-stream frame of an HTTP 200.
func TestReadFrame(t *testing.T) {
	big := []byte{0, 0xff, 0xff, 0xff, 0xff}
	for _, tc := range []struct {
		name    string
		stream  []byte
		msgs    []string
		wantErr func(error) bool
	}{
		{"data then end", append(frame(0, `{"a":1}`), frame(2, `{}`)...), []string{`{"a":1}`}, func(err error) bool { return errors.Is(err, io.EOF) }},
		{"error end", frame(2, `{"error":{"code":"invalid_argument","message":"bad cmd"}}`), nil, func(err error) bool {
			var ce *connectError
			return errors.As(err, &ce) && ce.Code == "invalid_argument" && ce.Message == "bad cmd"
		}},
		{"no end frame", frame(0, `{}`), []string{`{}`}, func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) }},
		{"truncated", frame(0, `{"a":1}`)[:7], nil, func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) }},
		{"oversized", big, nil, func(err error) bool { return err != nil && !errors.Is(err, io.EOF) }},
		{"compressed", frame(1, `x`), nil, func(err error) bool { return err != nil && !errors.Is(err, io.EOF) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := bytes.NewReader(tc.stream)
			var got []string
			for {
				msg, err := readFrame(r)
				if err != nil {
					if !tc.wantErr(err) {
						t.Fatalf("err %v", err)
					}
					break
				}
				got = append(got, string(msg))
			}
			if len(got) != len(tc.msgs) || (len(got) > 0 && got[0] != tc.msgs[0]) {
				t.Fatalf("messages %q, want %q", got, tc.msgs)
			}
		})
	}
	// And envelope is what readFrame reads.
	b, err := envelope(map[string]int{"x": 1})
	if err != nil {
		t.Fatal(err)
	}
	if msg, err := readFrame(bytes.NewReader(b)); err != nil || string(msg) != `{"x":1}` {
		t.Fatalf("round trip: %q %v", msg, err)
	}
}
