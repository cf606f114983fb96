package process

//lint:file-ignore ST1005 decodeBase64 reproduces upstream's error wording

import (
	"encoding/base64"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/sandbox-agent-go/sandbox-agent/internal/problem"
)

// lossyUTF8 decodes b as UTF-8, replacing each maximal invalid subpart with
// one U+FFFD (the Unicode recommendation Rust's from_utf8_lossy follows).
func lossyUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	sb.Grow(len(b) + 16)
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError || n > 1 {
			sb.Write(b[i : i+n])
			i += n
			continue
		}
		sb.WriteString("\uFFFD")
		i += maximalSubpart(b[i:])
	}
	return sb.String()
}

// maximalSubpart is the length of the longest prefix of b that starts a
// well-formed sequence (at least 1); b[0] does not start a valid one.
func maximalSubpart(b []byte) int {
	c := b[0]
	var need int
	lo, hi := byte(0x80), byte(0xBF)
	switch {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
		need = 2
	case c == 0xED:
		need, hi = 2, 0x9F
	case c == 0xF0:
		need, lo = 3, 0x90
	case c >= 0xF1 && c <= 0xF3:
		need = 3
	case c == 0xF4:
		need, hi = 3, 0x8F
	default:
		return 1
	}
	n := 1
	for k := 0; k < need && n < len(b); k++ {
		x := b[n]
		if k == 0 && (x < lo || x > hi) || k > 0 && (x < 0x80 || x > 0xBF) {
			break
		}
		n++
	}
	return n
}

const b64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

// decodeBase64 decodes standard padded base64 with error texts shaped like
// upstream's (Rust base64 crate), hence their capitals and full stops.
func decodeBase64(s string) ([]byte, error) {
	pad := len(s) - len(strings.TrimRight(s, "="))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if strings.IndexByte(b64Alphabet, c) >= 0 || (c == '=' && i >= len(s)-pad) {
			continue
		}
		return nil, fmt.Errorf("Invalid symbol %d, offset %d.", c, i)
	}
	if len(s)%4 != 0 {
		return nil, fmt.Errorf("Invalid input length: %d", len(s))
	}
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		if pad > 2 {
			return nil, fmt.Errorf("Invalid padding")
		}
		last := len(s) - pad - 1
		return nil, fmt.Errorf("Invalid last symbol %d, offset %d.", s[last], last)
	}
	return b, nil
}

// decodeInput decodes an input payload by encoding (empty: def).
func decodeInput(data string, encoding *string, def string) ([]byte, error) {
	enc := def
	if encoding != nil {
		enc = *encoding
	}
	switch enc {
	case "base64":
		b, err := decodeBase64(data)
		if err != nil {
			return nil, problem.Invalid("invalid base64 input: " + err.Error())
		}
		return b, nil
	case "utf8", "text":
		return []byte(data), nil
	}
	return nil, problem.Invalid("encoding must be one of: base64, utf8, text")
}
