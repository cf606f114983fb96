package acpproxy

import (
	"bufio"
	"io"
	"strings"
	"testing"
)

func TestReadLine(t *testing.T) {
	long := strings.Repeat("x", 40)
	input := "short\n" + strings.Repeat("y", 20) + "\n" + long + "\n" + "\n" + "tail"
	// A 16-byte buffer forces lines across several ReadSlice calls.
	br := bufio.NewReaderSize(strings.NewReader(input), 16)
	var scratch []byte
	want := []struct {
		line    string
		tooLong bool
	}{
		{"short", false},
		{strings.Repeat("y", 20), false},
		{long[:32], true},
		{"", false},
		{"tail", false},
	}
	for i, w := range want {
		line, tooLong, err := readLine(br, 32, &scratch)
		if string(line) != w.line || tooLong != w.tooLong {
			t.Fatalf("line %d: %q %v", i, line, tooLong)
		}
		if i == len(want)-1 {
			if err != io.EOF {
				t.Fatalf("last line: %v", err)
			}
		} else if err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
	}
}
