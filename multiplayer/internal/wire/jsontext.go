package wire

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// The helpers here walk JSON text that json.Valid has already accepted, so
// they index without re-checking the grammar; every index is still bounded by
// len(src) so that a bug shows up as a wrong result in the fuzz test, never as
// a panic on input a client controls.

func skipWS(src []byte, i int) int {
	for i < len(src) {
		switch src[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipString returns the index after the string starting at src[i] == '"',
// and whether it contains a backslash.
func skipString(src []byte, i int) (int, bool) {
	esc := false
	for i++; i < len(src); i++ {
		switch src[i] {
		case '\\':
			esc = true
			i++
		case '"':
			return i + 1, esc
		}
	}
	return len(src), esc
}

// skipValue returns the index after the value starting at src[i].
func skipValue(src []byte, i int) int {
	if i >= len(src) {
		return i
	}
	switch src[i] {
	case '"':
		j, _ := skipString(src, i)
		return j
	case '{', '[':
		depth := 0
		for i < len(src) {
			switch src[i] {
			case '"':
				i, _ = skipString(src, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	default: // number, true, false, null
		for i < len(src) {
			switch src[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
			i++
		}
		return i
	}
}

// isNumberStart reports whether c starts a JSON number.
func isNumberStart(c byte) bool { return c == '-' || (c >= '0' && c <= '9') }

// isIntegerToken reports whether a valid JSON number token has no fraction or
// exponent.
func isIntegerToken(tok []byte) bool {
	return !bytes.ContainsAny(tok, ".eE")
}

// maxSafeDigits is len("9007199254740991"): an integer token with fewer digits
// is always a safe JavaScript integer.
const maxSafeDigits = 16

// isSafeInteger reports whether an integer token is within ±(2^53−1).
func isSafeInteger(tok []byte) bool {
	d := tok
	if len(d) > 0 && d[0] == '-' {
		d = d[1:]
	}
	if len(d) < maxSafeDigits {
		return true
	}
	if len(d) > maxSafeDigits {
		return false
	}
	return string(d) <= "9007199254740991"
}

// stringStartsWithDollar reports whether the JSON string token raw (quotes
// included) decodes to a string starting with '$'.
func stringStartsWithDollar(raw []byte, esc bool) bool {
	if len(raw) < 3 {
		return false
	}
	if raw[1] == '$' {
		return true
	}
	if !esc || raw[1] != '\\' {
		return false
	}
	s, ok := unquoteJSON(raw)
	return ok && len(s) > 0 && s[0] == '$'
}

// unquoteJSON decodes a JSON string token (quotes included). It allocates
// only when the token has escapes.
func unquoteJSON(raw []byte) ([]byte, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return nil, false
	}
	body := raw[1 : len(raw)-1]
	if bytes.IndexByte(body, '\\') < 0 {
		return body, true
	}
	return appendUnquoted(make([]byte, 0, len(body)), body)
}

// appendUnquoted appends the decoded content of a JSON string body (without
// quotes) to dst.
func appendUnquoted(dst, body []byte) ([]byte, bool) {
	for i := 0; i < len(body); {
		c := body[i]
		if c != '\\' {
			j := bytes.IndexByte(body[i:], '\\')
			if j < 0 {
				j = len(body) - i
			}
			dst = append(dst, body[i:i+j]...)
			i += j
			continue
		}
		if i+1 >= len(body) {
			return dst, false
		}
		switch body[i+1] {
		case '"', '\\', '/':
			dst = append(dst, body[i+1])
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, ok := hex4(body, i+2)
			if !ok {
				return dst, false
			}
			i += 6
			if utf16.IsSurrogate(r) {
				if r2, ok := hex4(body, i+2); ok && i+1 < len(body) && body[i] == '\\' && body[i+1] == 'u' {
					if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
						i += 6
						dst = utf8.AppendRune(dst, d)
						continue
					}
				}
				r = utf8.RuneError
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default:
			return dst, false
		}
		i += 2
	}
	return dst, true
}

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes a raw
// U+FFFD (so that re-reading the output gives the same text); HTML characters are left alone (JSON.parse does not
// care and the output never lands in HTML).
func appendJSONString[S ~string | ~[]byte](dst []byte, s S) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		var r rune
		var size int
		switch v := any(s).(type) {
		case string:
			r, size = utf8.DecodeRuneInString(v[i:])
		case []byte:
			r, size = utf8.DecodeRune(v[i:])
		}
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\uFFFD"...)
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendJSNumber appends f as JavaScript's JSON.stringify would: integers up
// to 1e21 in plain digits (so Date.now()-sized values stay exact integers that
// Go decodes into int64), exponent form outside [1e-6, 1e21), and null for
// NaN and ±Infinity, which JSON cannot express.
func appendJSNumber(dst []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	if f == 0 {
		return append(dst, '0') // JSON.stringify(-0) is "0"
	}
	abs := math.Abs(f)
	if abs >= 1e21 || abs < 1e-6 {
		n := len(dst)
		dst = strconv.AppendFloat(dst, f, 'e', -1, 64)
		// Go writes "1e-07"; JavaScript writes "1e-7".
		if m := len(dst); m-n >= 4 && dst[m-4] == 'e' && dst[m-2] == '0' {
			dst[m-2] = dst[m-1]
			dst = dst[:m-1]
		}
		return dst
	}
	return strconv.AppendFloat(dst, f, 'f', -1, 64)
}

// validJSON reports whether b is one valid JSON value.
func validJSON(b []byte) bool { return json.Valid(b) }

// container is what one pre-pass learns about each array and object of a
// JSON text, so that the walkers never look ahead: n is the element (or
// member) count, and pair tells a two-element array whose first element is a
// string starting with '$' — a JSON-compat pair. Looking ahead instead (skip
// the second element, check for ']') would cost O(size × depth) on nested
// pairs, which a client controls.
type container struct {
	off  int
	n    uint32
	pair bool
}

// containers indexes the containers of valid JSON src in document order.
type containers struct {
	c      []container
	k      int
	compat bool // for the CBOR walker: v4 semantics
}

// scanContainers fills cs for src (already json.Valid).
func scanContainers(cs *containers, src []byte) {
	cs.c, cs.k = cs.c[:0], 0
	type open struct {
		idx       int
		obj       bool
		expectKey bool
		dollar    bool
	}
	var stackBuf [32]open
	stack := stackBuf[:0]
	for i := 0; i < len(src); {
		c := src[i]
		switch c {
		case ' ', '\t', '\n', '\r', ':':
			i++
			continue
		case ',':
			if top := len(stack) - 1; top >= 0 && stack[top].obj {
				stack[top].expectKey = true
			}
			i++
			continue
		case ']', '}':
			if top := len(stack) - 1; top >= 0 {
				o := stack[top]
				if !o.obj && o.dollar && cs.c[o.idx].n == 2 {
					cs.c[o.idx].pair = true
				}
				stack = stack[:top]
			}
			i++
			continue
		}
		// A value, or an object key.
		if top := len(stack) - 1; top >= 0 {
			o := &stack[top]
			if o.obj && o.expectKey {
				o.expectKey = false
				i, _ = skipString(src, i)
				continue
			}
			cs.c[o.idx].n++
			if !o.obj && cs.c[o.idx].n == 1 && c == '"' {
				j, esc := skipString(src, i)
				o.dollar = stringStartsWithDollar(src[i:j], esc)
				i = j
				continue
			}
		}
		switch c {
		case '[', '{':
			cs.c = append(cs.c, container{off: i})
			stack = append(stack, open{idx: len(cs.c) - 1, obj: c == '{', expectKey: c == '{'})
			i++
		default:
			i = skipValue(src, i)
		}
	}
}

// at returns the container starting at src[i]. Walkers move forward only, so
// the cursor does too; containers inside skipped values are passed over.
func (cs *containers) at(i int) container {
	for cs.k < len(cs.c) && cs.c[cs.k].off < i {
		cs.k++
	}
	if cs.k < len(cs.c) && cs.c[cs.k].off == i {
		return cs.c[cs.k]
	}
	return container{off: i} // unreachable on valid JSON
}

// pairAt splits the compat pair at src[i] == '[' into its tag token (quotes
// included) and the index of its second element.
func pairAt(src []byte, i int) (tag []byte, val int) {
	i = skipWS(src, i+1)
	j, _ := skipString(src, i)
	tag = src[i:j]
	val = skipWS(src, skipWS(src, j)+1) // past ','
	return tag, val
}

// closeArray returns the index after the ']' that follows index i.
func closeArray(src []byte, i int) int {
	return skipWS(src, i) + 1
}
