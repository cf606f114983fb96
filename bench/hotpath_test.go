package main

// Micro-benchmarks of the per-line work our proxy does on agent stdout, on
// the exact line the bench agent floods. They back the profile findings in
// BENCHMARKS.md:
//
//	go test ./bench -run XXX -bench FloodLine -benchmem
//
// validateJSON is a prototype (not used by the server) showing what a
// single-pass hand-written validator costs next to encoding/json.Valid,
// which acp.Parse runs on every line.

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
	b.Run("prototype-validateJSON", func(b *testing.B) {
		b.SetBytes(int64(len(line)))
		b.ReportAllocs()
		for b.Loop() {
			if !validateJSON(line) {
				b.Fatal("invalid")
			}
		}
	})
}

func TestValidateJSONMatchesEncodingJSON(t *testing.T) {
	cases := []string{
		string(floodLine()), `{}`, `[]`, `{"a":1}`, `{"a":1,}`, `{"a" 1}`, `[1,2,]`, `"x"`, `"\u00e9\n"`, `"\x"`,
		`"\u12"`, "\"a\tb\"", `-0`, `-`, `01`, `1.`, `1.5e+10`, `1e`, `true`, `tru`, `null`, ` { "a" : [ true , false , null ] } `,
		`{"a":{"b":[{"c":"}"}]}}`, `{"a":"b"} x`, ``, `  `, `{"a":-1.25E-3}`, `[[[[[]]]]]`, `{"\"":"\\"}`, `{1:2}`,
	}
	for _, c := range cases {
		if got, want := validateJSON([]byte(c)), json.Valid([]byte(c)); got != want {
			t.Errorf("%q: validateJSON %v, json.Valid %v", c, got, want)
		}
	}
}

// validateJSON reports whether b is exactly one JSON value (RFC 8259, as
// encoding/json.Valid accepts it), in one pass without a state machine.
func validateJSON(b []byte) bool {
	i, ok := value(b, skipSpace(b, 0), 0)
	return ok && skipSpace(b, i) == len(b)
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\t' || b[i] == '\r') {
		i++
	}
	return i
}

const maxDepth = 10000

func value(b []byte, i, depth int) (int, bool) {
	if i >= len(b) || depth > maxDepth {
		return i, false
	}
	switch c := b[i]; {
	case c == '{':
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == '}' {
			return i + 1, true
		}
		for {
			if i >= len(b) || b[i] != '"' {
				return i, false
			}
			var ok bool
			if i, ok = str(b, i); !ok {
				return i, false
			}
			i = skipSpace(b, i)
			if i >= len(b) || b[i] != ':' {
				return i, false
			}
			if i, ok = value(b, skipSpace(b, i+1), depth+1); !ok {
				return i, false
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return i, false
			}
			if b[i] == '}' {
				return i + 1, true
			}
			if b[i] != ',' {
				return i, false
			}
			i = skipSpace(b, i+1)
		}
	case c == '[':
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1, true
		}
		for {
			var ok bool
			if i, ok = value(b, i, depth+1); !ok {
				return i, false
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return i, false
			}
			if b[i] == ']' {
				return i + 1, true
			}
			if b[i] != ',' {
				return i, false
			}
			i = skipSpace(b, i+1)
		}
	case c == '"':
		return str(b, i)
	case c == '-' || (c >= '0' && c <= '9'):
		return number(b, i)
	case c == 't':
		return lit(b, i, "true")
	case c == 'f':
		return lit(b, i, "false")
	case c == 'n':
		return lit(b, i, "null")
	}
	return i, false
}

func lit(b []byte, i int, s string) (int, bool) {
	if len(b)-i < len(s) || string(b[i:i+len(s)]) != s {
		return i, false
	}
	return i + len(s), true
}

func str(b []byte, i int) (int, bool) {
	for i++; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1, true
		case c < 0x20:
			return i, false
		case c == '\\':
			i++
			if i >= len(b) {
				return i, false
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(b)-i < 5 {
					return i, false
				}
				for _, h := range b[i+1 : i+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return i, false
					}
				}
				i += 4
			default:
				return i, false
			}
		}
	}
	return i, false
}

func digits(b []byte, i int) (int, bool) {
	s := i
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i, i > s
}

func number(b []byte, i int) (int, bool) {
	if b[i] == '-' {
		i++
	}
	if i >= len(b) {
		return i, false
	}
	if b[i] == '0' {
		i++
	} else {
		var ok bool
		if i, ok = digits(b, i); !ok {
			return i, false
		}
	}
	if i < len(b) && b[i] == '.' {
		var ok bool
		if i, ok = digits(b, i+1); !ok {
			return i, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		var ok bool
		if i, ok = digits(b, i); !ok {
			return i, false
		}
	}
	return i, true
}
