package main

// Micro-benchmarks of the per-line work our proxy does on agent stdout, on
// the exact line the bench agent floods. They back the profile findings in
// BENCHMARKS.md:
//
//	go test ./bench -run XXX -bench FloodLine -benchmem
//
// acp.Parse validates and classifies in one hand-written pass; json.Valid
// is shown beside it as the cost it replaced.

import (
	"encoding/json"
	"strconv"
	"testing"

	"github.com/sandbox-agent-go/sandbox-agent/acp"
)

func floodLine() []byte {
	b := notification(nil, 12345, []byte("abcdefghijklmnopqrstuvwxyzabcdef"))
	return b[:len(b)-1]
}

// notification mirrors bench/agent's line (that package is a command and
// cannot be imported).
func notification(b []byte, seq int, text []byte) []byte {
	b = append(b, `{"jsonrpc":"2.0","method":"session/update","params":{"seq":`...)
	b = strconv.AppendInt(b, int64(seq), 10)
	b = append(b, `,"sessionId":"bench","update":{"content":{"text":"`...)
	b = append(b, text...)
	b = append(b, `","type":"text"},"sessionUpdate":"agent_message_chunk"}}}`...)
	return append(b, '\n')
}

func BenchmarkFloodLine(b *testing.B) {
	line := floodLine()
	b.Run("json.Valid", func(b *testing.B) {
		b.SetBytes(int64(len(line)))
		b.ReportAllocs()
		for b.Loop() {
			if !json.Valid(line) {
				b.Fatal("invalid")
			}
		}
	})
	b.Run("acp.Parse", func(b *testing.B) {
		b.SetBytes(int64(len(line)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := acp.Parse(line); err != nil {
				b.Fatal(err)
			}
		}
	})
}
