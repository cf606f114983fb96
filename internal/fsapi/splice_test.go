package fsapi

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/internal/server"
)

const spliceSize = spliceMinBytes + 3<<20 + 7 // takes the spliced path, odd length

func spliceData() []byte {
	b := make([]byte, spliceSize)
	for i := range b {
		b[i] = byte(i*31 + i>>9)
	}
	return b
}

// TestSplicedUploadAnswersLikeTheNormalPath: a large upload through the
// hijacked connection keeps the headers the router set (CORS), honours
// Expect: 100-continue, writes the exact bytes, and closes the connection.
func TestSplicedUploadAnswersLikeTheNormalPath(t *testing.T) {
	home := t.TempDir()
	h := New(Options{Home: home, Logger: slog.New(slog.DiscardHandler)})
	api, err := server.NewHandler(server.Config{CORSOrigins: []string{"https://app.example"}}, h.Routes())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api)
	defer srv.Close()
	data := spliceData()
	// The client waits for 100 Continue far longer than the test may run:
	// the upload only finishes in time if the server sends it.
	tr := &http.Transport{ExpectContinueTimeout: time.Hour}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, srv.URL+"/v1/fs/file?path=up.bin", bytes.NewReader(data))
	req.Header.Set("Origin", "https://app.example")
	req.Header.Set("Expect", "100-continue")
	res, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	want := fmt.Sprintf(`{"path":"%s/up.bin","bytesWritten":%d}`, home, spliceSize)
	if res.StatusCode != 200 || string(body) != want || res.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("PUT: %d %q %v", res.StatusCode, body, res.Header)
	}
	if res.Header.Get("Access-Control-Allow-Origin") != "https://app.example" || !res.Close {
		t.Fatalf("headers %v, close %v", res.Header, res.Close)
	}
	got, err := os.ReadFile(filepath.Join(home, "up.bin"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("content differs (%d bytes, %v)", len(got), err)
	}
}

// TestSplicedUploadErrorReachesTheClient: when the write fails before the
// body is read (the target is a directory), the client still gets the same
// problem answer as on the normal path.
func TestSplicedUploadErrorReachesTheClient(t *testing.T) {
	e := newEnv(t, Options{})
	if err := os.Mkdir(filepath.Join(e.home, "adir"), 0o755); err != nil {
		t.Fatal(err)
	}
	small := e.put("/v1/fs/file?path=adir", []byte("x"))
	big := e.put("/v1/fs/file?path=adir", spliceData())
	if small.status < 400 || big.status != small.status || !bytes.Equal(big.body, small.body) {
		t.Fatalf("small: %d %s; spliced: %d %s", small.status, small.body, big.status, big.body)
	}
}

// logSignal is a slog handler that reports each message on a channel.
type logSignal struct{ ch chan string }

func (l logSignal) Enabled(context.Context, slog.Level) bool { return true }
func (l logSignal) Handle(_ context.Context, r slog.Record) error {
	l.ch <- r.Message
	return nil
}
func (l logSignal) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l logSignal) WithGroup(string) slog.Handler      { return l }

// TestSplicedUploadCutOffLeavesNothing: a client that declares more than
// it sends and hangs up leaves neither the target nor a temporary file.
func TestSplicedUploadCutOffLeavesNothing(t *testing.T) {
	logs := make(chan string, 16)
	e := newEnv(t, Options{Logger: slog.New(logSignal{logs})})
	writeFile(t, filepath.Join(e.home, "keep.bin"), "old content")
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "PUT /v1/fs/file?path=keep.bin HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", spliceSize)
	if _, err := conn.Write(spliceData()[:spliceSize/2]); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	select {
	case msg := <-logs:
		if msg != "upload cut off" {
			t.Fatalf("log %q", msg)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the server did not notice the cut-off upload")
	}
	if got := readFile(t, filepath.Join(e.home, "keep.bin")); got != "old content" {
		t.Fatalf("target changed: %d bytes", len(got))
	}
	ents, _ := os.ReadDir(e.home)
	for _, en := range ents {
		if strings.Contains(en.Name(), ".sa-tmp-") {
			t.Fatalf("temporary file left: %s", en.Name())
		}
	}
}
