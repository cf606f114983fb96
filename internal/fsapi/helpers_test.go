package fsapi

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
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

// tarEntry describes one archive member for tests.
type tarEntry struct {
	name, body, link string
	typ              byte
	mode             int64
	mtime            time.Time
}

func file(name, body string) tarEntry            { return tarEntry{name: name, body: body, typ: tar.TypeReg} }
func dir(name string) tarEntry                   { return tarEntry{name: name, typ: tar.TypeDir} }
func symlink(name, to string) tarEntry           { return tarEntry{name: name, link: to, typ: tar.TypeSymlink} }
func hardlink(name, to string) tarEntry          { return tarEntry{name: name, link: to, typ: tar.TypeLink} }
func fifo(name string) tarEntry                  { return tarEntry{name: name, typ: tar.TypeFifo} }
func withMtime(e tarEntry, t time.Time) tarEntry { e.mtime = t; return e }

func makeTar(t testing.TB, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		mode := e.mode
		if mode == 0 {
			mode = 0o644
			if e.typ == tar.TypeDir {
				mode = 0o755
			}
		}
		mt := e.mtime
		if mt.IsZero() {
			mt = time.Unix(1_700_000_000, 0)
		}
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: mode, Linkname: e.link, ModTime: mt, Format: tar.FormatPAX}
		if e.typ == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			if _, err := io.WriteString(tw, e.body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

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
