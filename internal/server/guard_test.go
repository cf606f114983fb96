package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/internal/httpjson"
)

// serveTest runs Serve on a loopback listener; stop shuts it down and
// returns Serve's error.
func serveTest(t *testing.T, cfg Config, routes ...Route) (addr string, stop func() error) {
	t.Helper()
	h, err := NewHandler(cfg, append(BaseRoutes("test"), append(routes, echoRoute())...))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, h, slog.New(slog.DiscardHandler), Timeouts{}) }()
	var once bool
	var serr error
	stop = func() error {
		if !once {
			once = true
			cancel()
			serr = <-done
		}
		return serr
	}
	t.Cleanup(func() { _ = stop() })
	return ln.Addr().String(), stop
}

// rawExchange writes req on a fresh connection and reads one response; it
// reports whether the server then closed the connection. The deadline only
// turns a hang into a failure.
func rawExchange(t *testing.T, addr, req string) (resp *http.Response, body string, closed bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	_, err = br.ReadByte()
	return resp, string(b), errors.Is(err, io.EOF)
}

func TestEarlyErrorsAnswerAtOnceAndClose(t *testing.T) {
	addr, _ := serveTest(t, Config{AuthEnabled: true, Token: "s3cret"})
	auth := "Authorization: Bearer s3cret\r\n"
	tests := []struct {
		name, head string
		status     int
	}{
		{"401 before the body", "POST /v1/health HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n", 401},
		{"401 chunked", "POST /v1/health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", 401},
		{"404", "POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n", 404},
		{"405", "POST /v1/health HTTP/1.1\r\nHost: x\r\n" + auth + "Content-Length: 1000\r\n\r\n", 405},
		{"415", "POST /v1/echo HTTP/1.1\r\nHost: x\r\n" + auth + "Content-Type: text/plain\r\nContent-Length: 1000\r\n\r\n", 415},
		{"413 by declared length", "POST /v1/echo HTTP/1.1\r\nHost: x\r\n" + auth + "Content-Type: application/json\r\nContent-Length: 3000000\r\n\r\n{", 413},
		{"403 cross-site", "POST /v1/echo HTTP/1.1\r\nHost: x\r\nOrigin: https://evil.example\r\nContent-Length: 1000\r\n\r\n", 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body, closed := rawExchange(t, addr, tt.head)
			if resp.StatusCode != tt.status || !closed {
				t.Fatalf("status %d (want %d), closed %v: %s", resp.StatusCode, tt.status, closed, body)
			}
		})
	}
}

func TestErrorAfterWholeBodyKeepsConnection(t *testing.T) {
	addr, _ := serveTest(t, Config{})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	for i, want := range []int{400, 200} {
		body := []string{`{x}`, `{"a":1}`}[i]
		fmt.Fprintf(c, "POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != want || resp.Close {
			t.Fatalf("request %d: %d close=%v", i, resp.StatusCode, resp.Close)
		}
	}
}

func TestStalledBodyGets408(t *testing.T) {
	addr, _ := serveTest(t, Config{BodyIdleTimeout: 50 * time.Millisecond})
	resp, body, closed := rawExchange(t, addr, "POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n{\"a\"")
	if resp.StatusCode != 408 || !closed || !strings.Contains(body, "request_timeout") {
		t.Fatalf("%d closed=%v %s", resp.StatusCode, closed, body)
	}
}

// A body that keeps moving is never cut, however long it takes in all:
// the idle deadline is re-armed for every read. The client writes a byte
// only after the server has read the previous one, so the total time is
// many times the idle timeout without any single gap approaching it.
func TestMovingBodyIsNotCut(t *testing.T) {
	const chunks = 40
	got := make(chan struct{}, 1)
	slow := Route{Method: http.MethodPost, Pattern: "/v1/slow", Handler: func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 1)
		n := 0
		for {
			k, err := r.Body.Read(buf)
			if k > 0 {
				n++
				got <- struct{}{}
			}
			if err != nil {
				if err == io.EOF {
					httpjson.Write(w, 200, map[string]int{"n": n})
					return
				}
				httpjson.Error(w, err)
				return
			}
		}
	}}
	addr, _ := serveTest(t, Config{BodyIdleTimeout: time.Second}, slow)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /v1/slow HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", chunks)
	start := time.Now()
	for range chunks {
		if _, err := c.Write([]byte{'x'}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-got:
		case <-time.After(10 * time.Second):
			t.Fatal("server stopped reading")
		}
		// Pace the upload so it lasts longer than the idle timeout.
		time.Sleep(40 * time.Millisecond)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(b), fmt.Sprintf(`"n":%d`, chunks)) {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	if time.Since(start) < time.Second {
		t.Fatal("upload finished inside one idle timeout: the test proves nothing")
	}
}

func TestShutdownAnswersPendingRequests503(t *testing.T) {
	entered := make(chan struct{})
	pending := Route{Method: http.MethodPost, Pattern: "/v1/pending", Handler: func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done() // returns without answering, as a handler whose client left does
	}}
	addr, stop := serveTest(t, Config{}, pending)
	type res struct {
		resp *http.Response
		body string
		err  error
	}
	out := make(chan res, 1)
	go func() {
		resp, err := http.Post("http://"+addr+"/v1/pending", "application/json", strings.NewReader("{}"))
		if err != nil {
			out <- res{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		out <- res{resp: resp, body: string(b)}
	}()
	<-entered
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	r := <-out
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.resp.StatusCode != 503 || !strings.Contains(r.body, "urn:sandbox-agent:error:server_shutting_down") {
		t.Fatalf("%d %s", r.resp.StatusCode, r.body)
	}
}

// A client that stopped reading cannot hold the shutdown: its connection
// is closed after the grace and Serve returns no error.
func TestShutdownClosesStalledReaders(t *testing.T) {
	entered := make(chan struct{})
	flood := Route{Method: http.MethodGet, Pattern: "/v1/flood", Handler: func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		buf := make([]byte, 64<<10)
		for {
			if _, err := w.Write(buf); err != nil {
				return
			}
		}
	}}
	addr, stop := serveTest(t, Config{}, flood)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /v1/flood HTTP/1.1\r\nHost: x\r\n\r\n") // and never read
	<-entered
	if err := stop(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
}
