package backend

import "testing"

func TestCanonicalKey(t *testing.T) {
	for _, tc := range []struct {
		key  []string
		want string
	}{
		{nil, "/"},
		{[]string{"ws-1"}, "ws-1"},
		{[]string{"a", "b"}, "a/b"},
		{[]string{"a/b"}, `a\/b`},
		{[]string{`a\`, "b"}, `a\\/b`},
		{[]string{""}, `\0`},
		{[]string{"", ""}, `\0/\0`},
	} {
		if got := CanonicalKey(tc.key); got != tc.want {
			t.Errorf("CanonicalKey(%q) = %q, want %q", tc.key, got, tc.want)
		}
	}
	// Injective on the cases that a naive join confuses.
	seen := map[string][]string{}
	for _, k := range [][]string{nil, {""}, {"", ""}, {"a/b"}, {"a", "b"}, {`a\`, "b"}, {`a\/b`}, {"/"}} {
		c := CanonicalKey(k)
		if prev, ok := seen[c]; ok {
			t.Fatalf("%q and %q share %q", prev, k, c)
		}
		seen[c] = k
	}
}

func TestParseKeyInvertsCanonicalKey(t *testing.T) {
	for _, k := range [][]string{{}, {""}, {"", ""}, {"a/b"}, {"a", "b"}, {`a\`, "b"}, {`a\/b`}, {"/"}, {"ws-1"}, {"ü", "日本"}} {
		got := ParseKey(CanonicalKey(k))
		if len(got) != len(k) {
			t.Fatalf("%q → %q → %q", k, CanonicalKey(k), got)
		}
		for i := range k {
			if got[i] != k[i] {
				t.Fatalf("%q → %q → %q", k, CanonicalKey(k), got)
			}
		}
	}
}
