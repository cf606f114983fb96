package wire

import (
	"encoding/json"
	"strings"
	"testing"
)

// eventArgs is a ~1 KB chat broadcast, the fan-out hot path.
var eventArgs = json.RawMessage(`[{"userId":"user-123","text":"` + strings.Repeat("lorem ipsum ", 80) +
	`","createdAt":1796000000123,"seq":42,"tags":["a","b"],"meta":{"edited":false,"ratio":0.5}}]`)

func BenchmarkEncodeEvent(b *testing.B) {
	if n := len(eventArgs); n < 1000 || n > 1100 {
		b.Fatalf("payload is %d bytes", n)
	}
	for _, v := range []variant{{"json", JSON, 0}, {"bare-v4", BARE, 4}, {"bare-v3", BARE, 3}} {
		b.Run(v.name, func(b *testing.B) {
			m := ToClient{Kind: Event, Name: "chat.user", Args: eventArgs}
			b.ReportAllocs()
			b.SetBytes(int64(len(eventArgs)))
			for b.Loop() {
				if _, _, err := EncodeToClient(v.enc, v.version, m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecodeAction(b *testing.B) {
	for _, v := range []variant{{"json", JSON, 0}, {"bare-v4", BARE, 4}} {
		b.Run(v.name, func(b *testing.B) {
			frame := encodeToServer(b, v.enc, v.version, ToServer{Kind: Action, ID: 9, Name: "prompt", Args: eventArgs})
			b.ReportAllocs()
			b.SetBytes(int64(len(frame)))
			for b.Loop() {
				if _, _, err := DecodeToServer(v.enc, frame); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
