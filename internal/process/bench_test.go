package process

import (
	"context"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/coder/websocket"
)

// BenchmarkRunTrueHTTP is POST /v1/processes/run {"command":"true"} end to
// end over HTTP/1.1 keep-alive, as a client sees it.
func BenchmarkRunTrueHTTP(b *testing.B) {
	e := newEnv(b)
	client := e.srv.Client()
	url := e.srv.URL + "/v1/processes/run"
	b.ReportAllocs()
	for b.Loop() {
		req, _ := http.NewRequest("POST", url, strings.NewReader(`{"command":"true"}`))
		req.Header.Set("Content-Type", "application/json")
		res, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		var buf [512]byte
		n, _ := res.Body.Read(buf[:])
		res.Body.Close()
		if res.StatusCode != 200 || !strings.HasPrefix(string(buf[:n]), `{"exitCode":0,`) {
			b.Fatalf("%d %s", res.StatusCode, buf[:n])
		}
	}
}

// BenchmarkRunTrueManager is Manager.Run without HTTP.
func BenchmarkRunTrueManager(b *testing.B) {
	m := NewManager(Options{})
	defer func() { _ = m.Close(context.Background()) }()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		res, err := m.Run(ctx, RunRequest{Command: "true"})
		if err != nil || res.ExitCode == nil || *res.ExitCode != 0 {
			b.Fatal(res, err)
		}
	}
}

// BenchmarkExecTrue is the baseline: a bare exec.Command("true").Run().
func BenchmarkExecTrue(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if err := exec.Command("true").Run(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkForkExecTrue is the machine's floor: fork/exec and wait, no pipes.
func BenchmarkForkExecTrue(b *testing.B) {
	path, err := exec.LookPath("true")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		pid, err := syscall.ForkExec(path, []string{"true"}, &syscall.ProcAttr{})
		if err != nil {
			b.Fatal(err)
		}
		var ws syscall.WaitStatus
		if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPTYEcho is one keystroke's round trip through the terminal
// WebSocket: input frame -> PTY -> cat (raw mode) -> PTY -> binary frame.
func BenchmarkPTYEcho(b *testing.B) {
	e := newEnv(b)
	in := e.create(map[string]any{"command": "sh", "args": []string{"-c", "stty raw -echo; echo ready; exec cat"}, "tty": true})
	e.waitOutput(in.ID, "", "ready")
	tm := e.dial(in.ID, "")
	ctx := context.Background()
	frame := []byte(`{"type":"input","data":"x"}`)
	b.ReportAllocs()
	for b.Loop() {
		if err := tm.c.Write(ctx, websocket.MessageText, frame); err != nil {
			b.Fatal(err)
		}
		typ, data, err := tm.c.Read(ctx)
		if err != nil || typ != websocket.MessageBinary || string(data) != "x" {
			b.Fatalf("%v %q %v", typ, data, err)
		}
	}
}
