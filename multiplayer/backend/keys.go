package backend

import "strings"

// CanonicalKey is the one string form of an actor key, as Rivet serialises
// it: the parts joined by "/", with "\" and "/" inside a part escaped by a
// backslash; the empty key is "/". Distinct keys have distinct forms, so a
// driver may index actors by (name, CanonicalKey(key)).
func CanonicalKey(key []string) string {
	if len(key) == 0 {
		return "/"
	}
	var b strings.Builder
	for i, p := range key {
		if i > 0 {
			b.WriteByte('/')
		}
		if p == "" {
			// An empty part is written as "\0" so that ["", ""] and [""]
			// and [] stay distinct.
			b.WriteString(`\0`)
			continue
		}
		for _, r := range p {
			if r == '\\' || r == '/' {
				b.WriteByte('\\')
			}
			b.WriteRune(r)
		}
	}
	return b.String()
}

// ParseKey is the inverse of CanonicalKey (rivetkit's deserializeActorKey),
// for keys that arrive serialised (GET /actors?key=, PUT /actors).
func ParseKey(s string) []string {
	if s == "/" || s == "" {
		return []string{}
	}
	var (
		parts []string
		cur   strings.Builder
		esc   bool
		empty bool
	)
	for _, r := range s {
		switch {
		case esc:
			if r == '0' {
				empty = true
			} else {
				cur.WriteRune(r)
			}
			esc = false
		case r == '\\':
			esc = true
		case r == '/':
			if empty {
				parts = append(parts, "")
			} else {
				parts = append(parts, cur.String())
			}
			cur.Reset()
			empty = false
		default:
			cur.WriteRune(r)
		}
	}
	if empty {
		parts = append(parts, "")
	} else {
		parts = append(parts, cur.String())
	}
	return parts
}
