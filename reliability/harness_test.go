// Package reliability holds attacks and careless-client scenarios against
// the real sandbox-agent binary (issue 9's adversarial pass), one test per
// defect, so each stays fixed. Every test starts its own server process on
// a loopback port and ends it.
package reliability

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/internal/testutil/testbin"
)

var bin string

func TestMain(m *testing.M) { os.Exit(testbin.Main(m, &bin)) }

// server is one running `sandbox-agent server` process.
type server struct {
	t    *testing.T
	cmd  *exec.Cmd
	URL  string // http://127.0.0.1:port
	Addr string // 127.0.0.1:port
	Home string

	logMu sync.Mutex
	log   bytes.Buffer

	done    chan struct{} // closed when the process has exited
	waitErr error
}

// opts configure start.
type opts struct {
	Args []string // extra server flags
	Env  []string // extra environment (KEY=value)
	// Wrap, when set, is prepended to the command line (e.g. prlimit
	// --nofile=1024 --).
	Wrap []string
}

// start runs the server on a free loopback port (--port 0; the address is
// read from its "server listening" log line) and waits until it listens.
func start(t *testing.T, o opts) *server {
	t.Helper()
	home := t.TempDir()
	args := append([]string{"server", "--port", "0", "--log-format", "json", "--no-token"}, o.Args...)
	name := bin
	if len(o.Wrap) > 0 {
		args = append(append(append([]string{}, o.Wrap[1:]...), bin), args...)
		name = o.Wrap[0]
	}
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), append([]string{"HOME=" + home, "SANDBOX_AGENT_DATA_DIR=" + home + "/data"}, o.Env...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	s := &server{t: t, cmd: cmd, Home: home, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addrCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			s.logMu.Lock()
			s.log.Write(line)
			s.log.WriteByte('\n')
			s.logMu.Unlock()
			var m struct{ Msg, URL string }
			if json.Unmarshal(line, &m) == nil && m.Msg == "server listening" {
				select {
				case addrCh <- m.URL:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	go func() {
		s.waitErr = cmd.Wait()
		pw.Close()
		close(s.done)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	})
	select {
	case u := <-addrCh:
		s.URL = u
		s.Addr = strings.TrimPrefix(u, "http://")
	case <-s.done:
		t.Fatalf("server exited before listening: %v\n%s", s.waitErr, s.Log())
	case <-time.After(20 * time.Second):
		t.Fatalf("server did not listen\n%s", s.Log())
	}
	return s
}

// Log is everything the server wrote to stderr so far.
func (s *server) Log() string {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return s.log.String()
}

// stop sends sig and waits (at most limit) for the exit; it returns the
// exit code and how long the exit took.
func (s *server) stop(sig syscall.Signal, limit time.Duration) (code int, took time.Duration) {
	s.t.Helper()
	begin := time.Now()
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(limit):
		s.t.Fatalf("server did not exit within %s after %s\n%s", limit, sig, s.Log())
	}
	took = time.Since(begin)
	var ee *exec.ExitError
	switch {
	case s.waitErr == nil:
		return 0, took
	case errors.As(s.waitErr, &ee):
		return ee.ExitCode(), took
	}
	s.t.Fatalf("wait: %v", s.waitErr)
	return -1, took
}

// do sends a request (body may be nil) and returns the status and body.
func (s *server) do(method, path, contentType string, body io.Reader, hdr ...string) (int, []byte) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.t.Context(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, s.URL+path, body)
	if err != nil {
		s.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if strings.EqualFold(hdr[i], "Host") {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// acp posts one JSON-RPC message to server id (starting the mock agent on
// first use) and returns the status and body.
func (s *server) acp(id, msg string) (int, []byte) {
	s.t.Helper()
	return s.do(http.MethodPost, "/v1/acp/"+id+"?agent=mock", "application/json", strings.NewReader(msg))
}

// initACP starts a mock agent under id and initialises it.
func (s *server) initACP(id string) {
	s.t.Helper()
	if code, b := s.acp(id, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":1,"clientCapabilities":{}}}`); code != 200 {
		s.t.Fatalf("initialize: %d %s", code, b)
	}
}

// problemCode decodes a problem+json body's stable code (the suffix of its
// type URN).
func problemCode(b []byte) string {
	var p struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(b, &p)
	return strings.TrimPrefix(p.Type, "urn:sandbox-agent:error:")
}

func TestHarnessStartsAndStops(t *testing.T) {
	s := start(t, opts{})
	if code, b := s.do(http.MethodGet, "/v1/health", "", nil); code != 200 || !bytes.Contains(b, []byte(`"ok"`)) {
		t.Fatalf("%d %s", code, b)
	}
	if code, _ := s.stop(syscall.SIGTERM, 10*time.Second); code != 0 {
		t.Fatalf("exit %d\n%s", code, s.Log())
	}
}
