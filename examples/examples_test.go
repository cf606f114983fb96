// Package examples runs every example program end to end against a freshly
// built sandbox-agent binary, so the programs users copy from keep working.
package examples

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/sandbox-agent-go/sandbox-agent/internal/testutil/testbin"
)

func build(t *testing.T, dir, pkg string) string {
	t.Helper()
	bin, err := testbin.Build(dir, pkg)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

func TestExamples(t *testing.T) {
	dir := t.TempDir()
	server := build(t, dir, "./cmd/sandbox-agent")
	db := filepath.Join(dir, "sessions.db")
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"quickstart", []string{"hello examples"}, []string{"Mock reply: hello examples", "stop reason: end_turn"}},
		{"persistence", []string{"-db", db, "-session", "ex", "my name is Ada"}, []string{"session ex: stop reason end_turn"}},
		// The second run resumes the stored session on a new server.
		{"persistence", []string{"-db", db, "-session", "ex", "what is my name?"}, []string{"session ex: stop reason end_turn"}},
		{"recovery", nil, []string{"in-flight prompt failed: true", "session continued after"}},
	}
	var outputs []string
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bin := build(t, dir, "./examples/"+tt.name)
			cmd := exec.CommandContext(t.Context(), bin, tt.args...)
			cmd.Env = append(os.Environ(), "SANDBOX_AGENT_BIN="+server, "HOME="+dir, "SANDBOX_AGENT_DATA_DIR="+filepath.Join(dir, "data"))
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			outputs = append(outputs, string(out))
			for _, w := range tt.want {
				if !strings.Contains(string(out), w) {
					t.Fatalf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
	// The resumed run appends to the stored history instead of starting over.
	first, second := eventCount(t, outputs[1]), eventCount(t, outputs[2])
	if second <= first {
		t.Fatalf("resumed session has %d events, first run %d", second, first)
	}
}

func eventCount(t *testing.T, out string) int {
	t.Helper()
	m := regexp.MustCompile(`(\d+) events stored`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no event count in %q", out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}
