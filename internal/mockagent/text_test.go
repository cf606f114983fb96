package mockagent

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestFindKeyword(t *testing.T) {
	tests := []struct {
		text, kw, rest string
	}{
		{"hello world", "", ""},
		{"PERMISSION", "PERMISSION", ""},
		{"please\tWRITE_FILE  a/b.txt  some text  \nRUN ls", "WRITE_FILE", "a/b.txt  some text"},
		{"first line\r\nRUN echo hi | wc -c\r\nSLOW", "RUN", "echo hi | wc -c"},
		{"FLOOD 10 ERROR", "FLOOD", "10 ERROR"},
		{"SLOWLY error EXIT.", "", ""},
		{"x\n\nEXIT", "EXIT", ""},
		{"READ_FILE", "READ_FILE", ""},
	}
	for _, tt := range tests {
		kw, rest := findKeyword(tt.text)
		if kw != tt.kw || rest != tt.rest {
			t.Errorf("findKeyword(%q) = %q, %q; want %q, %q", tt.text, kw, rest, tt.kw, tt.rest)
		}
	}
}

func TestCutField(t *testing.T) {
	tests := []struct{ in, first, rest string }{
		{"", "", ""},
		{"a", "a", ""},
		{"  a  b c ", "a", "b c "},
		{"path\ttext", "path", "text"},
	}
	for _, tt := range tests {
		first, rest := cutField(tt.in)
		if first != tt.first || rest != tt.rest {
			t.Errorf("cutField(%q) = %q, %q; want %q, %q", tt.in, first, rest, tt.first, tt.rest)
		}
	}
}

func TestSplitChunks(t *testing.T) {
	tests := []struct {
		text string
		want []string
	}{
		{"", nil},
		{"ab", []string{"a", "b"}},
		{"permission denied", []string{"permis", "sion d", "enied"}},
		{"Mock reply: hi", []string{"Mock ", "reply: ", "hi"}},
		{"a b\n\nc  d", []string{"a ", "b\n\n", "c  ", "d"}},
		{"héllo wörld", []string{"héll", "o wö", "rld"}},
	}
	for _, tt := range tests {
		if d := cmp.Diff(tt.want, splitChunks(tt.text)); d != "" {
			t.Errorf("splitChunks(%q) (-want +got):\n%s", tt.text, d)
		}
	}

	long := strings.Repeat("word ", 1000)
	chunks := splitChunks(long)
	if len(chunks) != maxChunks || strings.Join(chunks, "") != long {
		t.Errorf("long text: %d chunks, joined equal: %v", len(chunks), strings.Join(chunks, "") == long)
	}
}

func TestIsResponse(t *testing.T) {
	tests := []struct {
		line string
		want bool
	}{
		{`{"jsonrpc":"2.0","id":1,"result":{}}` + "\n", true},
		{`{"jsonrpc":"2.0","id":"x","error":{"code":1,"message":"m"}}` + "\n", true},
		{`{"jsonrpc":"2.0","id":0,"method":"fs/read_text_file","params":{}}` + "\n", false},
		{`{"jsonrpc":"2.0","method":"session/update","params":{}}` + "\n", false},
	}
	for _, tt := range tests {
		if got := isResponse([]byte(tt.line)); got != tt.want {
			t.Errorf("isResponse(%s) = %v", tt.line, got)
		}
	}
}

func TestIsRequest(t *testing.T) {
	tests := []struct {
		line string
		want bool
	}{
		{`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`, true},
		{`{"jsonrpc":"2.0","id":null,"method":"initialize"}`, false},
		{`{"jsonrpc":"2.0","method":"session/cancel","params":{}}`, false},
		{`{"jsonrpc":"2.0","id":1,"result":{}}`, false},
		{`not json`, false},
		{`   `, false},
	}
	for _, tt := range tests {
		if got := isRequest([]byte(tt.line)); got != tt.want {
			t.Errorf("isRequest(%s) = %v", tt.line, got)
		}
	}
}
