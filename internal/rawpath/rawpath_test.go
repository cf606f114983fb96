package rawpath

import "testing"

func TestLexical(t *testing.T) {
	tests := []struct{ p, parent, base string }{
		{"/", "", ""},
		{"/a", "/", "a"},
		{"/a//b/", "/a", "b"},
		{"a", "", "a"},
		{"a/b", "a", "b"},
	}
	for _, tt := range tests {
		if got := Parent(tt.p); got != tt.parent {
			t.Errorf("Parent(%q) = %q, want %q", tt.p, got, tt.parent)
		}
		if got := Base(tt.p); got != tt.base {
			t.Errorf("Base(%q) = %q, want %q", tt.p, got, tt.base)
		}
	}
	for _, tt := range []struct{ dir, name, want string }{{"/a/", "b", "/a/b"}, {"/a", "b", "/a/b"}, {"", "b", "b"}, {"/a", "", "/a"}} {
		if got := Join(tt.dir, tt.name); got != tt.want {
			t.Errorf("Join(%q, %q) = %q, want %q", tt.dir, tt.name, got, tt.want)
		}
	}
	for _, tt := range []struct {
		p, want string
		ok      bool
	}{{"a/b", "a/b", true}, {"./a//b/.", "a/b", true}, {".", "", true}, {"a/../b", "", false}, {"/a", "", false}} {
		if got, ok := CleanRelative(tt.p); got != tt.want || ok != tt.ok {
			t.Errorf("CleanRelative(%q) = %q, %v, want %q, %v", tt.p, got, ok, tt.want, tt.ok)
		}
	}
}
