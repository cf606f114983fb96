package natsbackend

import (
	"strings"
	"testing"
)

func TestEscapeToken(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "="},
		{"abc-_XYZ09", "abc-_XYZ09"},
		{"a.b", "a=2Eb"},
		{"a b*>", "a=20b=2A=3E"},
		{"=", "=3D"},
		{"ü", "=C3=BC"},
		{"a/b\\", "a=2Fb=5C"},
	} {
		got := escapeToken(tc.in)
		if got != tc.want {
			t.Errorf("escapeToken(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if strings.ContainsAny(got, ".*> \t") {
			t.Errorf("escapeToken(%q) = %q is not a subject token", tc.in, got)
		}
		back, ok := unescapeToken(got)
		if !ok || back != tc.in {
			t.Errorf("unescapeToken(%q) = %q, %v; want %q", got, back, ok, tc.in)
		}
	}
	for _, bad := range []string{"", "=4", "=zz", "a=", "a=2"} {
		if s, ok := unescapeToken(bad); ok {
			t.Errorf("unescapeToken(%q) = %q, ok; want not ok", bad, s)
		}
	}
}

func TestValidID(t *testing.T) {
	if id := newID(); !validID(id) || escapeToken(id) != id {
		t.Errorf("newID() = %q is not a valid id and token", id)
	}
	for _, bad := range []string{"", "no-such-actor", strings.Repeat("A", 32), strings.Repeat("a", 31), strings.Repeat("g", 32)} {
		if validID(bad) {
			t.Errorf("validID(%q) = true", bad)
		}
	}
}
