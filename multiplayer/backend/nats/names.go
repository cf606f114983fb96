package natsbackend

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// A subject token cannot hold '.', '*', '>' or white space, and a KV key
// allows only [-/_=.a-zA-Z0-9]. Every user string that becomes a token goes
// through escapeToken: bytes outside [A-Za-z0-9_-] are written as "=XX"
// (hex), and the empty string as a lone "=", which no escaped non-empty
// string can be. The mapping is one to one, so tokens decode back to the
// exact string (List needs the keys, not their hashes).
func escapeToken(s string) string {
	if s == "" {
		return "="
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' {
			b.WriteByte(c)
			continue
		}
		const hx = "0123456789ABCDEF"
		b.WriteByte('=')
		b.WriteByte(hx[c>>4])
		b.WriteByte(hx[c&15])
	}
	return b.String()
}

// unescapeToken reverses escapeToken; ok is false for a token escapeToken
// cannot produce.
func unescapeToken(t string) (string, bool) {
	if t == "=" {
		return "", true
	}
	if !strings.Contains(t, "=") {
		return t, t != ""
	}
	out := make([]byte, 0, len(t))
	for i := 0; i < len(t); i++ {
		if t[i] != '=' {
			out = append(out, t[i])
			continue
		}
		if i+3 > len(t) {
			return "", false
		}
		v, err := hex.DecodeString(t[i+1 : i+3])
		if err != nil {
			return "", false
		}
		out = append(out, v[0])
		i += 2
	}
	return string(out), true
}

// keyHash is the registry's index of a canonical key: 128 bits of SHA-256
// in hex. The canonical key is stored in the record, so a collision is
// detected rather than silently merging two actors.
func keyHash(canonical string) string {
	h := sha256.Sum256([]byte(canonical))
	return hex.EncodeToString(h[:16])
}

// newID returns 16 random bytes in lower-case hex: usable as an actor id,
// a node id and a subject token as is.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// validID reports whether s could be an actor id this driver issued; any
// other string is unknown without a round trip, and never reaches a
// subject.
func validID(s string) bool {
	if len(s) != 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
