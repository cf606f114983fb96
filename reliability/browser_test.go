package reliability

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// startProcess creates a long-lived (optionally tty) process and returns
// its id.
func (s *server) startProcess(tty bool) string {
	s.t.Helper()
	body := fmt.Sprintf(`{"command":"sleep","args":["60"],"tty":%v,"interactive":%v}`, tty, tty)
	code, b := s.do(http.MethodPost, "/v1/processes", "application/json", strings.NewReader(body))
	if code != 200 {
		s.t.Fatalf("create process: %d %s", code, b)
	}
	var p struct{ ID string }
	if err := json.Unmarshal(b, &p); err != nil || p.ID == "" {
		s.t.Fatalf("create process: %s", b)
	}
	return p.ID
}

func (s *server) processStatus(id string) string {
	s.t.Helper()
	_, b := s.do(http.MethodGet, "/v1/processes/"+id, "", nil)
	var p struct{ Status string }
	_ = json.Unmarshal(b, &p)
	return p.Status
}

// Issue 9 §1: a page on another site cannot drive a --no-token server,
// through a WebSocket (no CORS applies), a CORS-"simple" request (no
// preflight) or DNS rebinding; same-origin and -O listed pages still can.
func TestCrossSitePagesCannotDriveTheAPI(t *testing.T) {
	s := start(t, opts{Args: []string{"-O", "https://app.example"}})
	evil := "https://evil.example"

	t.Run("terminal websocket from another site", func(t *testing.T) {
		id := s.startProcess(true)
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		_, resp, err := websocket.Dial(ctx, "ws://"+s.Addr+"/v1/processes/"+id+"/terminal/ws",
			&websocket.DialOptions{HTTPHeader: http.Header{"Origin": {evil}}})
		if err == nil || resp == nil || resp.StatusCode != 403 {
			t.Fatalf("cross-site terminal: err %v resp %+v", err, resp)
		}
		for _, origin := range []string{"http://" + s.Addr, "https://app.example"} {
			c, _, err := websocket.Dial(ctx, "ws://"+s.Addr+"/v1/processes/"+id+"/terminal/ws",
				&websocket.DialOptions{HTTPHeader: http.Header{"Origin": {origin}}})
			if err != nil {
				t.Fatalf("%s: %v", origin, err)
			}
			c.Close(websocket.StatusNormalClosure, "")
		}
	})

	t.Run("form-encoded mkdir from another site", func(t *testing.T) {
		dir := filepath.Join(s.Home, "made-by-evil")
		code, b := s.do(http.MethodPost, "/v1/fs/mkdir?path="+dir, "application/x-www-form-urlencoded", strings.NewReader("a=b"), "Origin", evil)
		if code != 403 || problemCode(b) != "cross_site_request" {
			t.Fatalf("%d %s", code, b)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Fatalf("directory was created: %v", err)
		}
		// The same request from the server's own page works.
		code, b = s.do(http.MethodPost, "/v1/fs/mkdir?path="+dir, "", nil, "Origin", "http://"+s.Addr)
		if code != 200 {
			t.Fatalf("same origin: %d %s", code, b)
		}
	})

	t.Run("text/plain kill from another site", func(t *testing.T) {
		id := s.startProcess(false)
		code, b := s.do(http.MethodPost, "/v1/processes/"+id+"/kill", "text/plain", strings.NewReader("x"), "Origin", evil)
		if code != 403 || problemCode(b) != "cross_site_request" {
			t.Fatalf("%d %s", code, b)
		}
		if st := s.processStatus(id); st != "running" {
			t.Fatalf("process %s after refused kill", st)
		}
		code, b = s.do(http.MethodPost, "/v1/processes/"+id+"/kill", "", nil, "Origin", "https://app.example")
		if code != 200 {
			t.Fatalf("allow-listed origin: %d %s", code, b)
		}
	})

	t.Run("DNS rebinding", func(t *testing.T) {
		// The page's origin equals the Host it sends: only the Host
		// allow-list (default on loopback) stops it.
		host := "rebind.evil.example:" + s.Addr[strings.LastIndexByte(s.Addr, ':')+1:]
		code, b := s.do(http.MethodGet, "/v1/agents", "", nil, "Host", host, "Origin", "http://"+host)
		if code != 403 {
			t.Fatalf("%d %s", code, b)
		}
		if code, _ := s.do(http.MethodGet, "/v1/agents", "", nil, "Host", "localhost:1"); code != 200 {
			t.Fatalf("localhost refused: %d", code)
		}
	})
}

// The allow-list is widened with --allowed-host ('*': any Host).
func TestAllowedHostWidens(t *testing.T) {
	s := start(t, opts{Args: []string{"--allowed-host", "box.internal"}})
	for host, want := range map[string]int{"box.internal:80": 200, "localhost": 403, "other.example": 403} {
		if code, b := s.do(http.MethodGet, "/v1/health", "", nil, "Host", host); code != want {
			t.Errorf("%s: %d %s", host, code, b)
		}
	}
	any := start(t, opts{Args: []string{"--allowed-host", "*"}})
	if code, b := any.do(http.MethodGet, "/v1/health", "", nil, "Host", "other.example"); code != 200 {
		t.Errorf("*: %d %s", code, b)
	}
}

// Issue 9 §2: clients that announce a body and send nothing are answered
// at once and disconnected, so 1,050 of them cannot exhaust a 1,024-fd
// server; authorised clients keep being served.
func TestSilentBodiesCannotLockOutClients(t *testing.T) {
	s := start(t, opts{Args: []string{"--token", "s3cret"}, Wrap: []string{"prlimit", "--nofile=1024:1024", "--"}})
	const n = 1050
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range n {
		c, err := net.DialTimeout("tcp", s.Addr, 10*time.Second)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		conns = append(conns, c)
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := io.WriteString(c, "POST /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n"); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		// Each is answered 401 without its body, and closed by the server.
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("connection %d got no answer: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != 401 {
			t.Fatalf("connection %d: %d", i, resp.StatusCode)
		}
		if _, err := br.ReadByte(); err != io.EOF {
			t.Fatalf("connection %d left open: %v", i, err)
		}
	}
	code, b := s.do(http.MethodGet, "/v1/health", "", nil, "Authorization", "Bearer s3cret")
	if code != 200 {
		t.Fatalf("authorised health: %d %s", code, b)
	}
}

// A body that stops arriving ends with 408 after --body-idle-timeout.
func TestStalledBodyTimesOut(t *testing.T) {
	s := start(t, opts{Args: []string{"--body-idle-timeout", "200ms"}})
	c, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(c, "POST /v1/acp/x?agent=mock HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"jsonrpc\"")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 408 || problemCode(b) != "request_timeout" {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("connection left open: %v", err)
	}
}
