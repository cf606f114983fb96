package fsapi

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sandbox-agent-go/sandbox-agent/internal/testutil/wait"
)

var modifiedRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6}|\.\d{9})?\+00:00$`)

func TestResolvePath(t *testing.T) {
	const home = "/home/u"
	tests := []struct {
		in, want string
		bad      bool
	}{
		{in: "", want: home},
		{in: ".", want: home},
		{in: "./", want: home},
		{in: "a.txt", want: home + "/a.txt"},
		{in: "./a/b", want: home + "/a/b"},
		{in: "a/./b/", want: home + "/a/b"},
		{in: "a//b", want: home + "/a/b"},
		{in: "~/x", want: home + "/~/x"},
		{in: ".hidden", want: home + "/.hidden"},
		{in: "a/..b", want: home + "/a/..b"},
		{in: "/abs/path", want: "/abs/path"},
		{in: "/a/../b", want: "/a/../b"}, // absolute: verbatim
		{in: "../x", bad: true},
		{in: "a/../b", bad: true},
		{in: "a/..", bad: true},
		{in: "..", bad: true},
	}
	for _, tt := range tests {
		got, err := resolvePath(home, tt.in)
		if tt.bad {
			if err == nil || err.Error() != "invalid request: invalid relative path: "+tt.in {
				t.Errorf("resolvePath(%q) = %q, %v; want invalid relative path", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("resolvePath(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestFormatModified(t *testing.T) {
	base := time.Date(2026, 11, 25, 18, 40, 26, 0, time.UTC)
	tests := []struct {
		t    time.Time
		want string
	}{
		{base.Add(767510523), "2026-11-25T18:40:26.767510523+00:00"},
		{base, "2026-11-25T18:40:26+00:00"},
		{base.Add(5 * time.Millisecond), "2026-11-25T18:40:26.005+00:00"},
		{base.Add(42 * time.Microsecond), "2026-11-25T18:40:26.000042+00:00"},
		{base.Add(7), "2026-11-25T18:40:26.000000007+00:00"},
		{base.In(time.FixedZone("x", 3600)).Add(1), "2026-11-25T18:40:26.000000001+00:00"},
	}
	for _, tt := range tests {
		if got := formatModified(tt.t); got != tt.want {
			t.Errorf("formatModified(%v) = %q, want %q", tt.t, got, tt.want)
		}
	}
}

func TestOSErrorText(t *testing.T) {
	for errno, want := range map[syscall.Errno]string{
		syscall.EEXIST:    "File exists (os error 17)",
		syscall.EISDIR:    "Is a directory (os error 21)",
		syscall.ENOTEMPTY: "Directory not empty (os error 39)",
	} {
		if got := osErrorText(&os.PathError{Op: "x", Path: "/p", Err: errno}); got != want {
			t.Errorf("osErrorText(%v) = %q, want %q", errno, got, want)
		}
	}
}

// problemDoc is the decoded problem+json body.
type problemDoc struct {
	Type      string         `json:"type"`
	Title     string         `json:"title"`
	Status    int            `json:"status"`
	Detail    string         `json:"detail"`
	SessionID string         `json:"sessionId,omitempty"`
	Details   map[string]any `json:"details,omitempty"`
}

// checkError asserts a problem+json (code != "") or text/plain error.
func checkError(t *testing.T, r resp, status int, code, detail string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d (body %q)", r.status, status, r.body)
	}
	ct := r.header.Get("Content-Type")
	if code == "" {
		if !strings.HasPrefix(ct, "text/plain") || string(r.body) != detail {
			t.Fatalf("got %s %q, want text %q", ct, r.body, detail)
		}
		return
	}
	if ct != "application/problem+json" {
		t.Fatalf("content-type = %q, body %q", ct, r.body)
	}
	var p problemDoc
	r.json(t, &p)
	if p.Type != "urn:sandbox-agent:error:"+code || p.Status != status || p.Detail != detail {
		t.Fatalf("problem = %+v, want %s %d %q", p, code, status, detail)
	}
	if code == "stream_error" {
		if msg := strings.TrimPrefix(detail, "stream error: "); p.Details["message"] != msg {
			t.Fatalf("details.message = %v, want %q", p.Details["message"], msg)
		}
	}
}

func TestFileRoundTrip(t *testing.T) {
	e := newEnv(t, Options{})
	r := e.put("/v1/fs/file?path="+q("dir/sub/a.txt"), []byte("hello world"))
	if r.status != 200 || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("PUT: %d %q", r.status, r.body)
	}
	want := `{"path":"` + e.home + `/dir/sub/a.txt","bytesWritten":11}`
	if string(r.body) != want {
		t.Fatalf("PUT body %s, want %s", r.body, want)
	}
	for _, p := range []string{"dir/sub/a.txt", "./dir/sub/a.txt", e.home + "/dir/sub/a.txt"} {
		r = e.do("GET", "/v1/fs/file?path="+q(p), map[string]string{"Accept": "application/json"}, nil)
		if r.status != 200 || string(r.body) != "hello world" ||
			r.header.Get("Content-Type") != "application/octet-stream" || r.header.Get("Content-Length") != "11" {
			t.Fatalf("GET %s: %d %v %q", p, r.status, r.header, r.body)
		}
	}
	r = e.do("HEAD", "/v1/fs/file?path=dir/sub/a.txt", nil, nil)
	if r.status != 200 || len(r.body) != 0 || r.header.Get("Content-Length") != "11" {
		t.Fatalf("HEAD: %d %v %q", r.status, r.header, r.body)
	}
	// Overwrite truncates; empty body writes an empty file.
	if r = e.put("/v1/fs/file?path=dir/sub/a.txt", []byte("hi")); r.status != 200 {
		t.Fatal(r.status)
	}
	if got := readFile(t, e.home+"/dir/sub/a.txt"); got != "hi" {
		t.Fatalf("after overwrite: %q", got)
	}
	r = e.do("PUT", "/v1/fs/file?path=empty", nil, nil)
	if r.status != 200 || !strings.Contains(string(r.body), `"bytesWritten":0`) {
		t.Fatalf("empty PUT: %d %q", r.status, r.body)
	}
	if fi, err := os.Stat(e.home + "/empty"); err != nil || fi.Size() != 0 {
		t.Fatal(fi, err)
	}
	if left := tempFiles(t, e.home+"/dir/sub"); len(left) != 0 {
		t.Fatalf("temp files left: %v", left)
	}
}

func TestPutKeepsModeAndFollowsSymlink(t *testing.T) {
	e := newEnv(t, Options{})
	p := e.home + "/secret"
	writeFile(t, p, "old")
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	if r := e.put("/v1/fs/file?path=secret", []byte("new")); r.status != 200 {
		t.Fatal(r.status, string(r.body))
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode = %v, want 0600", fi.Mode())
	}
	// Writing to a symlink replaces the target and keeps the link.
	writeFile(t, e.home+"/real/target.txt", "old")
	if err := os.Symlink("real/target.txt", e.home+"/link"); err != nil {
		t.Fatal(err)
	}
	if r := e.put("/v1/fs/file?path=link", []byte("through link")); r.status != 200 {
		t.Fatal(r.status, string(r.body))
	}
	if fi, _ := os.Lstat(e.home + "/link"); fi.Mode()&os.ModeSymlink == 0 {
		t.Fatal("symlink was replaced")
	}
	if got := readFile(t, e.home+"/real/target.txt"); got != "through link" {
		t.Fatalf("target = %q", got)
	}
}

func tempFiles(t testing.TB, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		if strings.Contains(de.Name(), ".sa-tmp-") {
			out = append(out, de.Name())
		}
	}
	return out
}

// failingBody yields n bytes and then an error, like a dropped connection.
type failingBody struct{ n int }

func (f *failingBody) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("connection reset by peer")
	}
	k := min(len(p), f.n)
	for i := range p[:k] {
		p[i] = 'x'
	}
	f.n -= k
	return k, nil
}

func TestPutAtomicOnFailedBody(t *testing.T) {
	e := newEnv(t, Options{})
	p := e.home + "/data.bin"
	writeFile(t, p, "original content")
	req := httptest.NewRequest("PUT", "/v1/fs/file?path=data.bin", &failingBody{n: 3 << 20})
	rec := httptest.NewRecorder()
	e.api.ServeHTTP(rec, req)
	if rec.Code != 400 || !strings.HasPrefix(rec.Body.String(), "Failed to buffer the request body: ") {
		t.Fatalf("got %d %q", rec.Code, rec.Body)
	}
	if got := readFile(t, p); got != "original content" {
		t.Fatalf("content changed: %q", got[:min(len(got), 40)])
	}
	if left := tempFiles(t, e.home); len(left) != 0 {
		t.Fatalf("temp files left: %v", left)
	}
}

func TestPutAtomicOnCutConnection(t *testing.T) {
	e := newEnv(t, Options{})
	p := e.home + "/data.bin"
	writeFile(t, p, "original content")
	conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	head := "PUT /v1/fs/file?path=data.bin HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 10485760\r\n\r\n"
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(bytes.Repeat([]byte("y"), 1<<20)); err != nil {
		t.Fatal(err)
	}
	// The body is streamed: a temp file exists while the upload is open.
	wait.Until(t, 20*time.Second, "a temp file exists while uploading", func() bool {
		return len(tempFiles(t, e.home)) != 0
	})
	if got := readFile(t, p); got != "original content" {
		t.Fatalf("content changed mid-upload (len %d)", len(got))
	}
	conn.Close() // cut the upload at 1 of 10 MiB
	// The handler notices asynchronously; wait for it to clean up.
	wait.Until(t, 20*time.Second, "the cut upload's temp files are removed", func() bool {
		return len(tempFiles(t, e.home)) == 0
	})
	if got := readFile(t, p); got != "original content" {
		t.Fatalf("content changed (len %d)", len(got))
	}
}

func TestRangeGet(t *testing.T) {
	e := newEnv(t, Options{})
	data := make([]byte, 1000)
	for i := range data {
		data[i] = byte(i)
	}
	if r := e.put("/v1/fs/file?path=r.bin", data); r.status != 200 {
		t.Fatal(r.status)
	}
	tests := []struct {
		rng          string
		status       int
		body         []byte
		contentRange string
	}{
		{"bytes=100-199", 206, data[100:200], "bytes 100-199/1000"},
		{"bytes=-10", 206, data[990:], "bytes 990-999/1000"},
		{"bytes=995-", 206, data[995:], "bytes 995-999/1000"},
		{"bytes=2000-3000", 416, nil, "bytes */1000"},
	}
	for _, tt := range tests {
		r := e.do("GET", "/v1/fs/file?path=r.bin", map[string]string{"Range": tt.rng}, nil)
		if r.status != tt.status || r.header.Get("Content-Range") != tt.contentRange {
			t.Fatalf("%s: %d %q", tt.rng, r.status, r.header.Get("Content-Range"))
		}
		if tt.status == 206 && (!bytes.Equal(r.body, tt.body) || r.header.Get("Content-Type") != "application/octet-stream") {
			t.Fatalf("%s: body %d bytes, type %q", tt.rng, len(r.body), r.header.Get("Content-Type"))
		}
	}
	if r := e.do("GET", "/v1/fs/file?path=r.bin", nil, nil); r.header.Get("Accept-Ranges") != "bytes" {
		t.Fatalf("Accept-Ranges = %q", r.header.Get("Accept-Ranges"))
	}
}

func TestErrors(t *testing.T) {
	e := newEnv(t, Options{})
	h := e.home
	writeFile(t, h+"/file.txt", "x")
	writeFile(t, h+"/full/child", "x")
	if err := os.Mkdir(h+"/emptydir", 0o755); err != nil {
		t.Fatal(err)
	}
	json := map[string]string{"Content-Type": "application/json"}
	tests := []struct {
		name          string
		method, path  string
		header        map[string]string
		body          string
		status        int
		code, message string // code "" means a text/plain body
	}{
		{"file without path", "GET", "/v1/fs/file", nil, "", 400, "", "Failed to deserialize query string: missing field `path`"},
		{"file missing", "GET", "/v1/fs/file?path=nope", nil, "", 400, "invalid_request", "invalid request: path not found: " + h + "/nope"},
		{"file is dir", "GET", "/v1/fs/file?path=emptydir", nil, "", 400, "invalid_request", "invalid request: path is not a file: " + h + "/emptydir"},
		{"file dotdot", "GET", "/v1/fs/file?path=../x", nil, "", 400, "invalid_request", "invalid request: invalid relative path: ../x"},
		{"put dotdot", "PUT", "/v1/fs/file?path=a/../../x", nil, "x", 400, "invalid_request", "invalid request: invalid relative path: a/../../x"},
		{"put without path", "PUT", "/v1/fs/file", nil, "x", 400, "", "Failed to deserialize query string: missing field `path`"},
		{"put onto dir", "PUT", "/v1/fs/file?path=emptydir", nil, "x", 502, "stream_error", "stream error: Is a directory (os error 21)"},
		{"put under file", "PUT", "/v1/fs/file?path=file.txt/x", nil, "x", 502, "stream_error", "stream error: File exists (os error 17)"},
		{"entries missing", "GET", "/v1/fs/entries?path=nope", nil, "", 400, "invalid_request", "invalid request: path not found: " + h + "/nope"},
		{"entries of file", "GET", "/v1/fs/entries?path=file.txt", nil, "", 400, "invalid_request", "invalid request: path is not a directory: " + h + "/file.txt"},
		{"entries dotdot", "GET", "/v1/fs/entries?path=..", nil, "", 400, "invalid_request", "invalid request: invalid relative path: .."},
		{"stat missing", "GET", "/v1/fs/stat?path=nope", nil, "", 400, "invalid_request", "invalid request: path not found: " + h + "/nope"},
		{"stat without path", "GET", "/v1/fs/stat", nil, "", 400, "", "Failed to deserialize query string: missing field `path`"},
		{"delete missing", "DELETE", "/v1/fs/entry?path=nope", nil, "", 400, "invalid_request", "invalid request: path not found: " + h + "/nope"},
		{"delete non-empty", "DELETE", "/v1/fs/entry?path=full", nil, "", 502, "stream_error", "stream error: Directory not empty (os error 39)"},
		{"delete bad bool", "DELETE", "/v1/fs/entry?path=full&recursive=1", nil, "", 400, "", "Failed to deserialize query string: provided string was not `true` or `false`"},
		{"mkdir over file", "POST", "/v1/fs/mkdir?path=file.txt", nil, "", 502, "stream_error", "stream error: File exists (os error 17)"},
		{"mkdir without path", "POST", "/v1/fs/mkdir", nil, "", 400, "", "Failed to deserialize query string: missing field `path`"},
		{"move dest exists", "POST", "/v1/fs/move", json, `{"from":"file.txt","to":"full/child"}`, 400, "invalid_request", "invalid request: destination already exists: " + h + "/full/child"},
		{"move source missing", "POST", "/v1/fs/move", json, `{"from":"nope","to":"x"}`, 400, "invalid_request", "invalid request: path not found: " + h + "/nope"},
		{"move dotdot", "POST", "/v1/fs/move", json, `{"from":"file.txt","to":"../x"}`, 400, "invalid_request", "invalid request: invalid relative path: ../x"},
		{"move no content type", "POST", "/v1/fs/move", nil, `{"from":"a","to":"b"}`, 415, "", "Expected request with `Content-Type: application/json`"},
		{"move missing to", "POST", "/v1/fs/move", json, `{"from":"file.txt"}`, 422, "", "Failed to deserialize the JSON body into the target type: missing field `to`"},
		{"move bad json", "POST", "/v1/fs/move", json, `{from}`, 400, "", ""},
		{"move empty body", "POST", "/v1/fs/move", json, ``, 400, "", "Failed to parse the request body as JSON: EOF while parsing a value at line 1 column 0"},
		{"upload octet-stream", "POST", "/v1/fs/upload-batch", map[string]string{"Content-Type": "application/octet-stream"}, "", 400, "invalid_request", "invalid request: content-type must be application/x-tar"},
		{"upload no content type", "POST", "/v1/fs/upload-batch", nil, "", 400, "invalid_request", "invalid request: content-type must be application/x-tar"},
		{"upload not tar", "POST", "/v1/fs/upload-batch?path=up", map[string]string{"Content-Type": "application/x-tar"}, "this is not a tar archive, just some text that is long enough to fill nothing", 502, "stream_error", "stream error: unexpected EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			r := e.do(tt.method, tt.path, tt.header, body)
			if tt.name == "move bad json" { // exact serde text is not reproduced
				if r.status != 400 || !strings.HasPrefix(string(r.body), "Failed to parse the request body as JSON: ") {
					t.Fatalf("%d %q", r.status, r.body)
				}
				return
			}
			checkError(t, r, tt.status, tt.code, tt.message)
		})
	}
	// Nothing was created by the failed requests.
	for _, p := range []string{h + "/x", filepath.Dir(h) + "/x", h + "/file.txt/x"} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s exists", p)
		}
	}
}

func TestPutLimit(t *testing.T) {
	e := newEnv(t, Options{MaxFileBytes: 1000})
	writeFile(t, e.home+"/f", "old")
	if r := e.put("/v1/fs/file?path=f", make([]byte, 1000)); r.status != 200 {
		t.Fatalf("at the limit: %d %q", r.status, r.body)
	}
	r := e.put("/v1/fs/file?path=f", make([]byte, 1001))
	checkError(t, r, 413, "", "Failed to buffer the request body: length limit exceeded")
	// Without a Content-Length the limit is enforced while streaming.
	req := httptest.NewRequest("PUT", "/v1/fs/file?path=f", io.MultiReader(bytes.NewReader(make([]byte, 600)), bytes.NewReader(make([]byte, 600))))
	req.ContentLength = -1
	rec := httptest.NewRecorder()
	e.api.ServeHTTP(rec, req)
	if rec.Code != 413 || rec.Body.String() != "Failed to buffer the request body: length limit exceeded" {
		t.Fatalf("streamed over limit: %d %q", rec.Code, rec.Body)
	}
	if fi, _ := os.Stat(e.home + "/f"); fi.Size() != 1000 {
		t.Fatalf("file size %d after rejected uploads", fi.Size())
	}
	if left := tempFiles(t, e.home); len(left) != 0 {
		t.Fatalf("temp files left: %v", left)
	}
	// Upload-batch caps each entry by the same limit, as a problem naming it.
	r = e.upload("/v1/fs/upload-batch?path=up", "application/x-tar", makeTar(t, file("big", strings.Repeat("z", 2000))))
	checkError(t, r, 413, "limit_exceeded", "limit exceeded: upload-max-file-bytes (1000): archive entry big is 2000 bytes")
}

func TestEntries(t *testing.T) {
	e := newEnv(t, Options{})
	h := e.home
	writeFile(t, h+"/d/a.txt", "hello")
	writeFile(t, h+"/d/sub/x", "")
	must(t, os.Symlink("sub", h+"/d/dirlink"))
	must(t, os.Symlink("missing", h+"/d/broken"))

	r := e.do("GET", "/v1/fs/entries?path=d", nil, nil)
	if r.status != 200 || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %q", r.status, r.body)
	}
	var got []FsEntry
	r.json(t, &got)
	// Kernel (readdir) order, not sorted.
	f, _ := os.Open(h + "/d")
	names, _ := f.Readdirnames(-1)
	f.Close()
	if len(got) != len(names) {
		t.Fatalf("got %d entries, want %d", len(got), len(names))
	}
	for i, en := range got {
		if en.Name != names[i] || en.Path != h+"/d/"+en.Name || !modifiedRE.MatchString(en.Modified) {
			t.Errorf("entry %d = %+v (want name %q)", i, en, names[i])
		}
		want := map[string]struct {
			typ  string
			size int64
		}{"a.txt": {"file", 5}, "sub": {"directory", -1}, "dirlink": {"file", 3}, "broken": {"file", 7}}[en.Name]
		if en.EntryType != want.typ || (want.size >= 0 && en.Size != want.size) {
			t.Errorf("entry %+v, want %+v", en, want)
		}
	}
	// Key order as upstream.
	if !regexp.MustCompile(`^\[\{"name":"[^"]+","path":"[^"]+","entryType":"(file|directory)","size":\d+,"modified":"[^"]+"\}`).Match(r.body) {
		t.Fatalf("shape: %s", r.body)
	}
	// No path (or ".") lists home; an empty dir is [].
	for _, target := range []string{"/v1/fs/entries", "/v1/fs/entries?path=", "/v1/fs/entries?path=."} {
		r = e.do("GET", target, nil, nil)
		var home []FsEntry
		r.json(t, &home)
		if len(home) != 1 || home[0].Name != "d" || home[0].EntryType != "directory" {
			t.Fatalf("%s: %s", target, r.body)
		}
	}
	must(t, os.Mkdir(h+"/empty", 0o755))
	if r = e.do("GET", "/v1/fs/entries?path=empty", nil, nil); string(r.body) != "[]" {
		t.Fatalf("empty dir: %s", r.body)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestStat(t *testing.T) {
	e := newEnv(t, Options{})
	h := e.home
	writeFile(t, h+"/a.txt", "hello world")
	must(t, os.Mkdir(h+"/dir", 0o755))
	must(t, os.Symlink("dir", h+"/link"))
	mt := time.Date(2026, 11, 25, 18, 40, 26, 767510523, time.UTC)
	must(t, os.Chtimes(h+"/a.txt", mt, mt))

	r := e.do("GET", "/v1/fs/stat?path=a.txt", nil, nil)
	want := `{"path":"` + h + `/a.txt","entryType":"file","size":11,"modified":"2026-11-25T18:40:26.767510523+00:00"}`
	if r.status != 200 || string(r.body) != want {
		t.Fatalf("stat: %d %s, want %s", r.status, r.body, want)
	}
	var st FsStat
	r = e.do("GET", "/v1/fs/stat?path="+q(h+"/link"), nil, nil)
	r.json(t, &st)
	if st.EntryType != "directory" || st.Path != h+"/link" {
		t.Fatalf("stat follows links: %+v", st)
	}
}

func TestDeleteMkdirMove(t *testing.T) {
	e := newEnv(t, Options{})
	h := e.home
	writeFile(t, h+"/f", "x")
	writeFile(t, h+"/tree/a/b", "x")
	writeFile(t, h+"/target", "keep")
	must(t, os.Mkdir(h+"/empty", 0o755))
	must(t, os.Symlink("target", h+"/link"))

	steps := []struct {
		method, path, body string
		want               string
	}{
		{"DELETE", "/v1/fs/entry?path=f", "", `{"path":"` + h + `/f"}`},
		{"DELETE", "/v1/fs/entry?path=empty", "", `{"path":"` + h + `/empty"}`},
		{"DELETE", "/v1/fs/entry?path=tree&recursive=true", "", `{"path":"` + h + `/tree"}`},
		{"DELETE", "/v1/fs/entry?path=link&recursive=false", "", `{"path":"` + h + `/link"}`},
		{"POST", "/v1/fs/mkdir?path=m/n/o", "", `{"path":"` + h + `/m/n/o"}`},
		{"POST", "/v1/fs/mkdir?path=m/n/o", "", `{"path":"` + h + `/m/n/o"}`}, // idempotent
		{"POST", "/v1/fs/move", `{"from":"target","to":"moved/deep/t"}`, `{"from":"` + h + `/target","to":"` + h + `/moved/deep/t"}`},
		{"POST", "/v1/fs/move", `{"from":"moved","to":"m/n/o","overwrite":true}`, `{"from":"` + h + `/moved","to":"` + h + `/m/n/o"}`},
	}
	for _, s := range steps {
		var body io.Reader
		hdr := map[string]string{}
		if s.body != "" {
			body = strings.NewReader(s.body)
			hdr["Content-Type"] = "application/json"
		}
		if r := e.do(s.method, s.path, hdr, body); r.status != 200 || string(r.body) != s.want {
			t.Fatalf("%s %s: %d %s, want %s", s.method, s.path, r.status, r.body, s.want)
		}
	}
	want := []string{"m", "m/n", "m/n/o", "m/n/o/deep", "m/n/o/deep/t"}
	if diff := cmp.Diff(want, listTree(t, h)); diff != "" {
		t.Fatalf("tree (-want +got):\n%s", diff)
	}
	if got := readFile(t, h+"/m/n/o/deep/t"); got != "keep" {
		t.Fatal(got)
	}
	// Overwriting a file with a file.
	writeFile(t, h+"/x", "new")
	writeFile(t, h+"/y", "old")
	if r := e.postJSON("/v1/fs/move", `{"from":"x","to":"y","overwrite":true}`); r.status != 200 {
		t.Fatal(r.status, string(r.body))
	}
	if got := readFile(t, h+"/y"); got != "new" {
		t.Fatal(got)
	}
	// Overwrite never destroys the source: replacing its own ancestor fails.
	writeFile(t, h+"/p/c/file", "data")
	r := e.postJSON("/v1/fs/move", `{"from":"p/c","to":"p","overwrite":true}`)
	checkError(t, r, 502, "stream_error", "stream error: Invalid argument (os error 22)")
	if got := readFile(t, h+"/p/c/file"); got != "data" {
		t.Fatal(got)
	}
}

func TestMoveAcrossDevices(t *testing.T) {
	other, err := os.MkdirTemp("/dev/shm", "fsapi-test-")
	if err != nil {
		t.Skip("no /dev/shm:", err)
	}
	t.Cleanup(func() { os.RemoveAll(other) })
	e := newEnv(t, Options{})
	var a, b syscall.Stat_t
	if syscall.Stat(other, &a) != nil || syscall.Stat(e.home, &b) != nil || a.Dev == b.Dev {
		t.Skip("temp dir and /dev/shm are on the same filesystem")
	}
	writeFile(t, other+"/src/a/file", "payload")
	must(t, os.Symlink("a/file", other+"/src/link"))
	r := e.postJSON("/v1/fs/move", `{"from":"`+other+`/src","to":"dst"}`)
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if got := readFile(t, e.home+"/dst/link"); got != "payload" {
		t.Fatal(got)
	}
	if _, err := os.Lstat(other + "/src"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("source still there: %v", err)
	}
}

func TestOpenAPIDescribesRoutes(t *testing.T) {
	checkOpenAPI(t, New(Options{Home: t.TempDir()}).Routes())
}
