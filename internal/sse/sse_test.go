package sse

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name  string
		event string
		id    uint64
		data  string
	}{
		{"json", "message", 7, `{"jsonrpc":"2.0","method":"x"}`},
		{"multi-line", "log", 1, "a\nb\r\nc"},
		{"no id", "message", 0, `{}`},
		{"empty data", "message", 2, ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := AppendEvent(nil, tt.event, tt.id, []byte(tt.data))
			b = append([]byte(": heartbeat\n\n"), b...)
			r := NewReader(bytes.NewReader(b))
			ev, err := r.Next()
			if err != nil {
				t.Fatal(err)
			}
			want := strings.ReplaceAll(tt.data, "\r\n", "\n")
			if ev.Event != tt.event || string(ev.Data) != want || ev.HasID != (tt.id != 0) {
				t.Fatalf("%+v", ev)
			}
			if _, err := r.Next(); err != io.EOF {
				t.Fatalf("want EOF, got %v", err)
			}
		})
	}
}

func TestReaderCRLFAndDefaults(t *testing.T) {
	r := NewReader(strings.NewReader("id: 3\r\ndata: x\r\n\r\ndata: y\n\n"))
	ev, _ := r.Next()
	if ev.Event != "message" || ev.ID != "3" || string(ev.Data) != "x" {
		t.Fatalf("%+v", ev)
	}
	ev, _ = r.Next()
	if ev.ID != "3" || ev.HasID || string(ev.Data) != "y" {
		t.Fatalf("sticky id: %+v", ev)
	}
	if _, err := NewReader(strings.NewReader("data: cut")).Next(); err != io.ErrUnexpectedEOF {
		t.Fatalf("truncated stream: %v", err)
	}
}

func BenchmarkAppendEvent(b *testing.B) {
	data := []byte(`{"jsonrpc":"2.0","method":"session/update","params":{"sessionId":"s","update":{"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":"hello"}}}}`)
	buf := make([]byte, 0, 64<<10)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for i := 0; b.Loop(); i++ {
		buf = AppendEvent(buf[:0], "message", uint64(i+1), data)
	}
}
