package reliability

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// secretAuth is the Authorization header pair for s.do.
func secretAuth(token string) []string { return []string{"Authorization", "Bearer " + token} }

// secretRunEnv runs `env` through /v1/processes/run and returns its stdout.
func secretRunEnv(t *testing.T, s *server, token string) string {
	t.Helper()
	code, b := s.do(http.MethodPost, "/v1/processes/run", "application/json", strings.NewReader(`{"command":"env"}`), secretAuth(token)...)
	var out struct{ Stdout string }
	if err := json.Unmarshal(b, &out); code != 200 || err != nil {
		t.Fatalf("run env: %d %s", code, b)
	}
	return out.Stdout
}

// secretMockRunEnv has the mock agent run `env` locally (the client
// advertises no terminal) and returns everything its ACP stream carried
// up to the prompt's answer: the tool call's raw output holds the command's
// whole output in one message.
func secretMockRunEnv(t *testing.T, s *server, token string) string {
	t.Helper()
	post := func(msg string) []byte {
		t.Helper()
		code, b := s.do(http.MethodPost, "/v1/acp/rel-secrets?agent=mock", "application/json", strings.NewReader(msg), secretAuth(token)...)
		if code != 200 {
			t.Fatalf("ACP %s: %d %s", msg, code, b)
		}
		return b
	}
	post(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":1,"clientCapabilities":{}}}`)
	var created struct {
		Result struct{ SessionID string }
	}
	_ = json.Unmarshal(post(`{"jsonrpc":"2.0","id":2,"method":"session/new","params":{"cwd":`+strconv.Quote(s.Home)+`,"mcpServers":[]}}`), &created)
	if created.Result.SessionID == "" {
		t.Fatal("session/new: no sessionId")
	}
	post(`{"jsonrpc":"2.0","id":3,"method":"session/prompt","params":{"sessionId":"` + created.Result.SessionID + `","prompt":[{"type":"text","text":"RUN env"}]}}`)

	// The stream replays its ring from the start when no Last-Event-ID is sent.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/v1/acp/rel-secrets", nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var all bytes.Buffer
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		all.Write(sc.Bytes())
		all.WriteByte('\n')
		if bytes.Contains(sc.Bytes(), []byte(`"stopReason"`)) {
			return all.String()
		}
	}
	t.Fatalf("the ACP stream ended before the prompt's answer: %v\n%s", sc.Err(), all.String())
	return ""
}

// TestChildrenDoNotInheritServerToken: with SANDBOX_AGENT_TOKEN set (and
// auth on), neither a /v1/processes child nor an agent (nor what the agent
// runs) sees the token, under that name or another; LLM keys still reach
// them. Upstream (and we, before) handed the whole environment down, so a
// `/run` of `env` printed the token.
func TestChildrenDoNotInheritServerToken(t *testing.T) {
	const token = "rel-secret-token-5f0c2a"
	s := start(t, opts{Env: []string{
		"SANDBOX_AGENT_TOKEN=" + token,
		"TOKEN_ALIAS=" + token,
		"ANTHROPIC_API_KEY=sk-ant-reliability",
	}})
	if code, _ := s.do(http.MethodGet, "/v1/processes", "", nil); code != http.StatusUnauthorized {
		t.Fatalf("auth should be on: GET /v1/processes without a token: %d", code)
	}
	for _, tc := range []struct {
		name string
		out  func() string
	}{
		{"process run", func() string { return secretRunEnv(t, s, token) }},
		{"mock agent RUN", func() string { return secretMockRunEnv(t, s, token) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := tc.out()
			if strings.Contains(out, token) {
				t.Errorf("the child's environment holds the server's token:\n%s", out)
			}
			if strings.Contains(out, "SANDBOX_AGENT_TOKEN") {
				t.Errorf("the child's environment names SANDBOX_AGENT_TOKEN:\n%s", out)
			}
			if !strings.Contains(out, "ANTHROPIC_API_KEY=sk-ant-reliability") {
				t.Errorf("the child lost the LLM key (or env printed nothing):\n%s", out)
			}
		})
	}
	if code, took := s.stop(syscall.SIGTERM, 2*time.Second); code != 0 {
		t.Fatalf("exit %d after %v\n%s", code, took, s.Log())
	}
}

// TestTokenFile: --token-file (or SANDBOX_AGENT_TOKEN_FILE) turns auth on
// with the file's token, which then is on neither the server's command line
// nor its children's environment.
func TestTokenFile(t *testing.T) {
	const token = "rel-file-token-77e1"
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		o    opts
	}{
		{"flag", opts{Args: []string{"--token-file", path}}},
		{"env", opts{Env: []string{"SANDBOX_AGENT_TOKEN_FILE=" + path}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := start(t, tc.o)
			if code, _ := s.do(http.MethodGet, "/v1/processes", "", nil); code != http.StatusUnauthorized {
				t.Fatalf("without a token: %d", code)
			}
			if code, b := s.do(http.MethodGet, "/v1/processes", "", nil, secretAuth(token)...); code != 200 {
				t.Fatalf("with the file's token (newline trimmed): %d %s", code, b)
			}
			cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(s.cmd.Process.Pid) + "/cmdline")
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(cmdline, []byte(token)) {
				t.Fatalf("the token is on the server's command line: %q", cmdline)
			}
			if out := secretRunEnv(t, s, token); strings.Contains(out, token) || strings.Contains(out, "SANDBOX_AGENT_TOKEN_FILE") {
				t.Fatalf("child environment:\n%s", out)
			}
			if code, took := s.stop(syscall.SIGTERM, 2*time.Second); code != 0 {
				t.Fatalf("exit %d after %v\n%s", code, took, s.Log())
			}
		})
	}
}

// TestTokenFileUsageErrors: an unusable token file, or a token given both
// ways, is a usage error (exit 2) naming the problem, not a server that
// starts without the intended protection.
func TestTokenFileUsageErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	blank := filepath.Join(dir, "blank")
	good := filepath.Join(dir, "good")
	unreadable := filepath.Join(dir, "unreadable")
	for p, content := range map[string]string{empty: "", blank: "\n", good: "tok\n", unreadable: "tok\n"} {
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(unreadable, 0); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		unreadable = dir // root reads any file; a directory cannot be read by anyone
	}
	for _, tc := range []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"empty file", []string{"--token-file", empty}, nil, "is empty"},
		{"only a newline", []string{"--token-file", blank}, nil, "is empty"},
		{"missing file", []string{"--token-file", filepath.Join(dir, "missing")}, nil, "no such file"},
		{"unreadable", []string{"--token-file", unreadable}, nil, "invalid --token-file"},
		{"with --token", []string{"--token-file", good, "--token", "x"}, nil, "--token and --token-file exclude each other"},
		{"both variables", nil, []string{"SANDBOX_AGENT_TOKEN=x", "SANDBOX_AGENT_TOKEN_FILE=" + good}, "SANDBOX_AGENT_TOKEN and SANDBOX_AGENT_TOKEN_FILE exclude each other"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, append([]string{"server", "--port", "0"}, tc.args...)...)
			cmd.Env = append(os.Environ(), "HOME="+dir, "SANDBOX_AGENT_DATA_DIR="+dir+"/data")
			cmd.Env = append(cmd.Env, tc.env...)
			out, err := cmd.CombinedOutput()
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() != 2 || !strings.Contains(strings.ToLower(string(out)), strings.ToLower(tc.want)) {
				t.Fatalf("want exit 2 mentioning %q; got %v:\n%s", tc.want, err, out)
			}
		})
	}
}
