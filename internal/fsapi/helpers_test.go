package fsapi

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sandbox-agent-go/sandbox-agent/internal/server"
	"github.com/sandbox-agent-go/sandbox-agent/internal/testutil/tartest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type env struct {
	t    testing.TB
	h    *Handler
	api  http.Handler
	srv  *httptest.Server
	home string
}

func newEnv(t testing.TB, opts Options) *env {
	t.Helper()
	if opts.Home == "" {
		opts.Home = t.TempDir()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	h := New(opts)
	api, err := server.NewHandler(server.Config{}, append(server.BaseRoutes("test"), h.Routes()...))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	return &env{t: t, h: h, api: api, srv: srv, home: opts.Home}
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decoding %q: %v", r.body, err)
	}
}

func (e *env) do(method, target string, header map[string]string, body io.Reader) resp {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+target, body)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

func (e *env) put(target string, body []byte) resp {
	return e.do(http.MethodPut, target, map[string]string{"Content-Type": "application/octet-stream"}, bytes.NewReader(body))
}

func (e *env) postJSON(target, body string) resp {
	return e.do(http.MethodPost, target, map[string]string{"Content-Type": "application/json"}, strings.NewReader(body))
}

func (e *env) upload(target, contentType string, body []byte) resp {
	return e.do(http.MethodPost, target, map[string]string{"Content-Type": contentType}, bytes.NewReader(body))
}

func q(s string) string { return url.QueryEscape(s) }

func writeFile(t testing.TB, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The archive builders are tartest's, under the short names these tests use.
type tarEntry = tartest.Entry

var (
	file, dir, fifo   = tartest.File, tartest.Dir, tartest.Fifo
	symlink, hardlink = tartest.Symlink, tartest.Hardlink
	makeTar, gz       = tartest.Build, tartest.Gzip
)

func withMtime(e tarEntry, t time.Time) tarEntry { e.ModTime = t; return e }

// listTree returns every path under root (relative, slash-separated).
func listTree(t testing.TB, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel != "." {
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sparseTar is tartest.Sparse (shared with the reliability suite).
func sparseTar(t testing.TB, name string, hole int64, tail string) []byte {
	return tartest.Sparse(t, name, hole, tail)
}
