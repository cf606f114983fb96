package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"github.com/sandbox-agent-go/sandbox-agent/internal/serverprobe"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/internal/testutil/proctest"
	"github.com/sandbox-agent-go/sandbox-agent/internal/testutil/testbin"
	"github.com/sandbox-agent-go/sandbox-agent/internal/testutil/wait"
)

var bin string

func TestMain(m *testing.M) { os.Exit(testbin.Main(m, &bin)) }

func run(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

func TestVersionAndUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--version"}, 0, "sandbox-agent "},
		{[]string{"-V"}, 0, "sandbox-agent "},
		{[]string{"server", "-O", "*", "--port", "0"}, 1, "wildcard origin"},
		{[]string{"server", "-C", "--port", "0"}, 1, "--cors-allow-credentials needs"},
		{[]string{"server", "--log-format", "xml"}, 2, "invalid --log-format"},
		{[]string{"server", "--max-procs", "-1"}, 2, "invalid --max-procs"},
		{[]string{"api", "acp", "post", "--server-id", "a/b", "--json", "{}"}, 2, "server id must not contain '/'"},
	}
	for _, tt := range tests {
		out, code := run(t, tt.args...)
		if code != tt.code || !strings.Contains(out, tt.want) {
			t.Errorf("%v: code %d out %q", tt.args, code, out)
		}
	}
}

func freePort(t *testing.T) int {
	p, err := serverprobe.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	out, code := run(t, "server", "--port", fmt.Sprint(ln.Addr().(*net.TCPAddr).Port))
	if code != 1 || !strings.Contains(out, "address already in use") {
		t.Fatalf("%d %s", code, out)
	}
}

type runningServer struct {
	cmd  *exec.Cmd
	url  string
	done chan error
}

func startServer(t *testing.T, extraEnv ...string) *runningServer {
	t.Helper()
	port := freePort(t)
	cmd := exec.Command(bin, "server", "--port", fmt.Sprint(port), "--log-format", "json")
	cmd.Env = append(os.Environ(), append([]string{"HOME=" + t.TempDir(), "SANDBOX_AGENT_DATA_DIR=" + t.TempDir()}, extraEnv...)...)
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &runningServer{cmd: cmd, url: fmt.Sprintf("http://127.0.0.1:%d", port), done: make(chan error, 1)}
	go func() { s.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-s.done
	})
	wait.Until(t, 10*time.Second, "the server answers /v1/health", func() bool {
		r, err := http.Get(s.url + "/v1/health")
		if err != nil {
			return false
		}
		r.Body.Close()
		return true
	})
	return s
}

func TestGracefulShutdownStopsAgentsAndStreams(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			s := startServer(t)
			out, code := run(t, "api", "-e", s.url, "acp", "post", "--server-id", "g", "--agent", "mock",
				"--json", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":1}}`)
			if code != 0 || !strings.Contains(out, `"protocolVersion": 1`) {
				t.Fatalf("%d %s", code, out)
			}
			// An open SSE stream must not block shutdown.
			req, _ := http.NewRequest(http.MethodGet, s.url+"/v1/acp/g", nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			if _, err := br.ReadString('\n'); err != nil {
				t.Fatal(err)
			}
			var list struct{ Servers []struct{ ServerID string } }
			r, _ := http.Get(s.url + "/v1/acp")
			json.NewDecoder(r.Body).Decode(&list)
			r.Body.Close()
			if len(list.Servers) != 1 {
				t.Fatalf("%+v", list)
			}
			agentPGIDs := childGroups(s.cmd.Process.Pid)
			if len(agentPGIDs) == 0 {
				t.Fatal("no agent process group found")
			}
			_ = s.cmd.Process.Signal(sig)
			select {
			case err := <-s.done:
				if err != nil {
					t.Fatalf("exit: %v", err)
				}
				s.done <- nil
			case <-time.After(10 * time.Second):
				t.Fatal("server did not exit")
			}
			for _, pg := range agentPGIDs {
				if m := proctest.GroupMembers(pg); len(m) > 0 {
					t.Fatalf("agent group %d survived: %v", pg, m)
				}
			}
			if _, err := io.ReadAll(br); err != nil && !strings.Contains(err.Error(), "EOF") {
				t.Logf("stream ended with %v", err)
			}
		})
	}
}

// childGroups returns the process groups of pid's direct children.
func childGroups(pid int) []int {
	var out []int
	for _, c := range proctest.Children(pid) {
		if g, err := syscall.Getpgid(c); err == nil {
			out = append(out, g)
		}
	}
	return out
}

func TestAPICommands(t *testing.T) {
	s := startServer(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	out, code := run(t, "api", "-e", s.url, "agents", "report")
	if code != 0 || !strings.Contains(out, `"id": "mock"`) || !strings.Contains(out, `"value": "mock-fast"`) || !strings.Contains(out, `"thoughtLevels"`) {
		t.Fatalf("report: %d %s", code, out)
	}
	out, code = run(t, "api", "-e", s.url, "agents", "install", "mock")
	if code != 0 || !strings.Contains(out, `"already_installed": false`) {
		t.Fatalf("%d %s", code, out)
	}
	out, code = run(t, "api", "-e", s.url, "acp", "post", "--server-id", "c", "--json", `{"jsonrpc":"2.0","id":1,"method":"initialize"}`)
	if code != 1 || !strings.Contains(out, "missing required 'agent'") || !strings.Contains(out, "unexpected http status: 400") {
		t.Fatalf("%d %s", code, out)
	}
	out, code = run(t, "api", "-e", s.url, "acp", "post", "--server-id", "c", "--agent", "mock", "--json", `{"jsonrpc":"2.0","method":"note"}`)
	if code != 0 || out != "" {
		t.Fatalf("202 prints nothing: %d %q", code, out)
	}
	stream := exec.CommandContext(ctx, bin, "api", "-e", s.url, "acp", "stream", "--server-id", "c")
	pipe, _ := stream.StdoutPipe()
	if err := stream.Start(); err != nil {
		t.Fatal(err)
	}
	run(t, "api", "-e", s.url, "acp", "post", "--server-id", "c", "--json", `{"jsonrpc":"2.0","id":5,"method":"initialize","params":{"protocolVersion":1}}`)
	line, err := bufio.NewReader(pipe).ReadString('\n')
	if err != nil || !strings.Contains(line, `"id":5`) {
		t.Fatalf("%q %v", line, err)
	}
	if out, code := run(t, "api", "-e", s.url, "acp", "close", "--server-id", "c"); code != 0 || out != "" {
		t.Fatalf("%d %s", code, out)
	}
	if err := stream.Wait(); err != nil {
		t.Fatalf("stream should end cleanly after close: %v", err)
	}
}

func TestServerProcs(t *testing.T) {
	tests := []struct {
		name          string
		flag          int
		goEnv         bool
		current, want int
	}{
		{"flag wins", 3, true, 8, 3},
		{"GOMAXPROCS set", 0, true, 8, 8},
		{"half of 8", 0, false, 8, 4},
		{"half of 2", 0, false, 2, 1},
		{"never zero", 0, false, 1, 1},
	}
	for _, tt := range tests {
		if got := serverProcs(tt.flag, tt.goEnv, tt.current); got != tt.want {
			t.Errorf("%s: %d, want %d", tt.name, got, tt.want)
		}
	}
}
