package acp

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// scanEnvelope validates b as one JSON value and, for an object, records
// the top-level "id" and "method" members, in one pass.
func scanEnvelope(b []byte) (env Envelope, ok, isObj bool) {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		end, ok := value(b, i, 0)
		return env, ok && skipWS(b, end) == len(b), false
	}
	var hasID, hasMethod bool
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		i++
	} else {
		for {
			if i >= len(b) || b[i] != '"' {
				return env, false, true
			}
			kStart := i
			if i, ok = str(b, i); !ok {
				return env, false, true
			}
			key := b[kStart:i]
			i = skipWS(b, i)
			if i >= len(b) || b[i] != ':' {
				return env, false, true
			}
			vStart := skipWS(b, i+1)
			if i, ok = value(b, vStart, 1); !ok {
				return env, false, true
			}
			val := b[vStart:i]
			switch {
			case isKey(key, "id"):
				env.ID, hasID = val, true
			case isKey(key, "method"):
				hasMethod = true
				env.Method = ""
				if val[0] == '"' {
					if bytes.IndexByte(val, '\\') < 0 && utf8.Valid(val) {
						env.Method = string(val[1 : len(val)-1])
					} else {
						_ = json.Unmarshal(val, &env.Method)
					}
				}
			}
			i = skipWS(b, i)
			if i >= len(b) {
				return env, false, true
			}
			if b[i] == '}' {
				i++
				break
			}
			if b[i] != ',' {
				return env, false, true
			}
			i = skipWS(b, i+1)
		}
	}
	if skipWS(b, i) != len(b) {
		return env, false, true
	}
	switch {
	case hasMethod && hasID:
		env.Kind = Request
	case hasMethod:
		env.Kind = Notification
	case hasID:
		env.Kind = Response
	default:
		env.Kind = Other
	}
	return env, true, true
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// maxDepth matches encoding/json's nesting limit.
const maxDepth = 10000

// value validates the JSON value at b[i] and returns the index after it.
func value(b []byte, i, depth int) (int, bool) {
	if i >= len(b) || depth > maxDepth {
		return i, false
	}
	switch c := b[i]; {
	case c == '{':
		i = skipWS(b, i+1)
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
			i = skipWS(b, i)
			if i >= len(b) || b[i] != ':' {
				return i, false
			}
			if i, ok = value(b, skipWS(b, i+1), depth+1); !ok {
				return i, false
			}
			i = skipWS(b, i)
			if i >= len(b) {
				return i, false
			}
			if b[i] == '}' {
				return i + 1, true
			}
			if b[i] != ',' {
				return i, false
			}
			i = skipWS(b, i+1)
		}
	case c == '[':
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1, true
		}
		for {
			var ok bool
			if i, ok = value(b, i, depth+1); !ok {
				return i, false
			}
			i = skipWS(b, i)
			if i >= len(b) {
				return i, false
			}
			if b[i] == ']' {
				return i + 1, true
			}
			if b[i] != ',' {
				return i, false
			}
			i = skipWS(b, i+1)
		}
	case c == '"':
		return str(b, i)
	case c == '-' || (c >= '0' && c <= '9'):
		return number(b, i)
	case c == 't':
		return literal(b, i, "true")
	case c == 'f':
		return literal(b, i, "false")
	case c == 'n':
		return literal(b, i, "null")
	}
	return i, false
}

func literal(b []byte, i int, s string) (int, bool) {
	if len(b)-i < len(s) || string(b[i:i+len(s)]) != s {
		return i, false
	}
	return i + len(s), true
}

// str validates the string starting at b[i] == '"'. Like encoding/json.Valid
// it checks escapes and control characters but not UTF-8.
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
	var ok bool
	if b[i] == '0' {
		i++
	} else if i, ok = digits(b, i); !ok {
		return i, false
	}
	if i < len(b) && b[i] == '.' {
		if i, ok = digits(b, i+1); !ok {
			return i, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i, ok = digits(b, i); !ok {
			return i, false
		}
	}
	return i, true
}

// isKey reports whether the quoted JSON key decodes to name.
func isKey(quoted []byte, name string) bool {
	if bytes.IndexByte(quoted, '\\') < 0 {
		return string(quoted[1:len(quoted)-1]) == name // compared, not kept: no allocation
	}
	var s string
	return json.Unmarshal(quoted, &s) == nil && s == name
}
