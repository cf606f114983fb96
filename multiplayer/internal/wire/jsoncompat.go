package wire

import (
	"bytes"
	"encoding/base64"
	"sync"
)

// The JSON-compat value layer over JSON text (see doc.go for the rules).

const (
	tagBigInt      = "$BigInt"
	tagUint8Array  = "$Uint8Array"
	tagArrayBuffer = "$ArrayBuffer"
	tagUndefined   = "$Undefined"
	tagSet         = "$Set"
)

var containersPool = sync.Pool{New: func() any { return new(containers) }}

// getContainers scans src with a pooled index: the hot paths (an Event per
// broadcast) then allocate nothing for it.
func getContainers(src []byte) *containers {
	cs := containersPool.Get().(*containers)
	scanContainers(cs, src)
	return cs
}

func putContainers(cs *containers) {
	if cap(cs.c) > 1<<12 {
		return // do not pin one huge message's index
	}
	cs.compat = false
	containersPool.Put(cs)
}

// reviveJSON converts the JSON-compat value src (already json.Valid) to
// canonical JSON appended to dst.
func reviveJSON(dst, src []byte) (_ []byte, undef bool, err error) {
	cs := getContainers(src)
	defer putContainers(cs)
	dst, _, undef, err = reviveJSONValue(dst, src, 0, cs)
	return dst, undef, err
}

// reviveJSONValue converts the value at src[i]. undef reports a revived
// undefined, for which nothing was appended: the caller drops the object
// member or writes null in an array.
func reviveJSONValue(dst, src []byte, i int, cs *containers) (_ []byte, next int, undef bool, err error) {
	i = skipWS(src, i)
	if i >= len(src) {
		return dst, i, false, malformed("truncated JSON")
	}
	switch src[i] {
	case '{':
		dst = append(dst, '{')
		i = skipWS(src, i+1)
		n := 0
		if i < len(src) && src[i] == '}' {
			return append(dst, '}'), i + 1, false, nil
		}
		for i < len(src) {
			mark := len(dst)
			if n > 0 {
				dst = append(dst, ',')
			}
			i = skipWS(src, i)
			j, _ := skipString(src, i)
			dst = append(dst, src[i:j]...)
			dst = append(dst, ':')
			i = skipWS(src, j)
			i++ // ':'
			var u bool
			dst, i, u, err = reviveJSONValue(dst, src, i, cs)
			if err != nil {
				return dst, i, false, err
			}
			if u {
				dst = dst[:mark] // an undefined member is no member
			} else {
				n++
			}
			i = skipWS(src, i)
			if i < len(src) && src[i] == ',' {
				i++
				continue
			}
			break
		}
		return append(dst, '}'), i + 1, false, nil
	case '[':
		if cs.at(i).pair {
			tag, val := pairAt(src, i)
			return reviveJSONTagged(dst, src, tag, val, cs)
		}
		dst, i, err = reviveJSONArray(dst, src, i, cs)
		return dst, i, false, err
	default:
		j := skipValue(src, i)
		dst = append(dst, src[i:j]...)
		return dst, j, false, nil
	}
}

// reviveJSONArray revives a plain array starting at src[i] == '['.
func reviveJSONArray(dst, src []byte, i int, cs *containers) (_ []byte, next int, err error) {
	dst = append(dst, '[')
	i = skipWS(src, i+1)
	if i < len(src) && src[i] == ']' {
		return append(dst, ']'), i + 1, nil
	}
	for n := 0; i < len(src); n++ {
		if n > 0 {
			dst = append(dst, ',')
		}
		var u bool
		dst, i, u, err = reviveJSONValue(dst, src, i, cs)
		if err != nil {
			return dst, i, err
		}
		if u {
			dst = append(dst, "null"...)
		}
		i = skipWS(src, i)
		if i < len(src) && src[i] == ',' {
			i++
			continue
		}
		break
	}
	return append(dst, ']'), i + 1, nil
}

// reviveJSONTagged revives a ["$tag", value] pair; tagTok is the tag's string
// token and val the index of the value. next is the index after the pair.
func reviveJSONTagged(dst, src, tagTok []byte, val int, cs *containers) (_ []byte, next int, undef bool, err error) {
	tag, ok := unquoteJSON(tagTok)
	if !ok {
		return dst, val, false, malformed("bad JSON string")
	}
	switch string(tag) {
	case tagBigInt:
		s, end, ok := jsonStringAt(src, val)
		if !ok {
			return dst, val, false, badValue("%s value is not a string", tagBigInt)
		}
		if dst, ok = appendBigIntDigits(dst, s); !ok {
			return dst, val, false, badValue("%s value %q is not an integer", tagBigInt, s)
		}
		return dst, closeArray(src, end), false, nil
	case tagUint8Array, tagArrayBuffer:
		s, end, ok := jsonStringAt(src, val)
		if !ok {
			return dst, val, false, badValue("%s value is not a string", tag)
		}
		if dst, ok = appendCanonicalBase64(dst, s); !ok {
			return dst, val, false, badValue("%s value is not base64", tag)
		}
		return dst, closeArray(src, end), false, nil
	case tagUndefined:
		return dst, closeArray(src, skipValue(src, val)), true, nil
	case tagSet:
		if val >= len(src) || src[val] != '[' {
			return dst, val, false, badValue("%s value is not an array", tagSet)
		}
		// The array after the tag is the list of elements, never itself a
		// pair; each element is revived as usual.
		dst, next, err = reviveJSONArray(dst, src, val, cs)
		return dst, closeArray(src, next), false, err
	}
	if len(tag) < 2 || tag[1] != '$' {
		return dst, val, false, badValue("unknown JSON-compat tag %q", tag)
	}
	// An escaped user array ["$$x", v] is the user's ["$x", v].
	dst = append(dst, '[')
	dst = appendJSONString(dst, tag[1:])
	dst = append(dst, ',')
	var u bool
	dst, next, u, err = reviveJSONValue(dst, src, val, cs)
	if u {
		dst = append(dst, "null"...)
	}
	return append(dst, ']'), closeArray(src, next), false, err
}

// jsonStringAt decodes the JSON string at src[i], if it is one, and returns
// the index after it.
func jsonStringAt(src []byte, i int) ([]byte, int, bool) {
	if i >= len(src) || src[i] != '"' {
		return nil, i, false
	}
	j, _ := skipString(src, i)
	s, ok := unquoteJSON(src[i:j])
	return s, j, ok
}

// appendBigIntDigits appends the decimal integer s (as bigint.toString()
// writes it: an optional '-' then digits) as a JSON number with leading zeros
// removed.
func appendBigIntDigits(dst, s []byte) ([]byte, bool) {
	neg := len(s) > 0 && s[0] == '-'
	if neg {
		s = s[1:]
	}
	if len(s) == 0 {
		return dst, false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return dst, false
		}
	}
	for len(s) > 1 && s[0] == '0' {
		s = s[1:]
	}
	if neg && !(len(s) == 1 && s[0] == '0') {
		dst = append(dst, '-')
	}
	return append(dst, s...), true
}

// appendCanonicalBase64 appends the bytes in base64 text s as the JSON string
// Go's encoding/json writes for a []byte (standard alphabet, padded). The
// client writes exactly that; unpadded input is tolerated as Node's decoder
// tolerates it.
func appendCanonicalBase64(dst, s []byte) ([]byte, bool) {
	enc := base64.StdEncoding
	if len(s)%4 != 0 {
		enc = base64.RawStdEncoding
	}
	var stack [256]byte
	buf := stack[:0]
	buf, err := enc.AppendDecode(buf, s)
	if err != nil {
		return dst, false
	}
	dst = append(dst, '"')
	dst = base64.StdEncoding.AppendEncode(dst, buf)
	return append(dst, '"'), true
}

// needsJSONEscape is the hot-path check for outgoing JSON: canonical JSON
// without a '$' (or an escape that could spell one) and without a run of 16+
// digits has nothing for the compat layer to rewrite.
func needsJSONEscape(src []byte) bool {
	if bytes.IndexByte(src, '$') >= 0 || bytes.Contains(src, []byte(`\u00`)) {
		return true
	}
	run := 0
	for _, c := range src {
		if c >= '0' && c <= '9' {
			run++
			if run >= maxSafeDigits {
				return true
			}
		} else {
			run = 0
		}
	}
	return false
}

// appendCompatJSON appends canonical JSON src (already valid) in the client's
// JSON-compat form: user ["$x", v] pairs escaped as ["$$x", v], integers
// beyond ±(2^53−1) as ["$BigInt", "digits"].
func appendCompatJSON(dst, src []byte) []byte {
	if !needsJSONEscape(src) {
		return append(dst, bytes.TrimSpace(src)...)
	}
	cs := getContainers(src)
	defer putContainers(cs)
	dst, _ = escapeJSONValue(dst, src, 0, cs)
	return dst
}

func escapeJSONValue(dst, src []byte, i int, cs *containers) ([]byte, int) {
	i = skipWS(src, i)
	if i >= len(src) {
		return dst, i
	}
	switch c := src[i]; {
	case c == '{':
		dst = append(dst, '{')
		i = skipWS(src, i+1)
		if i < len(src) && src[i] == '}' {
			return append(dst, '}'), i + 1
		}
		for n := 0; i < len(src); n++ {
			if n > 0 {
				dst = append(dst, ',')
			}
			i = skipWS(src, i)
			j, _ := skipString(src, i)
			dst = append(dst, src[i:j]...)
			dst = append(dst, ':')
			i = skipWS(src, j) + 1
			dst, i = escapeJSONValue(dst, src, i, cs)
			i = skipWS(src, i)
			if i < len(src) && src[i] == ',' {
				i++
				continue
			}
			break
		}
		return append(dst, '}'), i + 1
	case c == '[':
		if cs.at(i).pair {
			tag, val := pairAt(src, i)
			dst = append(dst, '[', '"', '$')
			dst = append(dst, tag[1:]...) // the rest of the token, closing quote included
			dst = append(dst, ',')
			var next int
			dst, next = escapeJSONValue(dst, src, val, cs)
			return append(dst, ']'), closeArray(src, next)
		}
		dst = append(dst, '[')
		i = skipWS(src, i+1)
		if i < len(src) && src[i] == ']' {
			return append(dst, ']'), i + 1
		}
		for n := 0; i < len(src); n++ {
			if n > 0 {
				dst = append(dst, ',')
			}
			dst, i = escapeJSONValue(dst, src, i, cs)
			i = skipWS(src, i)
			if i < len(src) && src[i] == ',' {
				i++
				continue
			}
			break
		}
		return append(dst, ']'), i + 1
	case isNumberStart(c):
		j := skipValue(src, i)
		tok := src[i:j]
		if isIntegerToken(tok) && !isSafeInteger(tok) {
			dst = append(dst, `["$BigInt","`...)
			dst = append(dst, tok...)
			return append(dst, `"]`...), j
		}
		return append(dst, tok...), j
	default:
		j := skipValue(src, i)
		return append(dst, src[i:j]...), j
	}
}
