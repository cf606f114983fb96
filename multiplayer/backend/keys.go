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
