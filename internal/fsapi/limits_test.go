package fsapi

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sandbox-agent-go/sandbox-agent/internal/problem"
	"github.com/sandbox-agent-go/sandbox-agent/internal/testutil/wait"
)

// paxRun is n copies of a PAX extended header (each carrying a name of
// nameLen bytes) with no entry after them: pure metadata, which the tar
// reader consumes without ever returning an entry.
func paxRun(t testing.TB, n, nameLen int) []byte {
	t.Helper()
	one := makeTar(t, file(strings.Repeat("m", nameLen), ""))
	if one[156] != tar.TypeXHeader {
		t.Fatalf("no PAX header: type %q", one[156])
	}
	size, err := strconv.ParseInt(strings.Trim(string(one[124:136]), "\x00 "), 8, 64)
	if err != nil {
		t.Fatal(err)
	}
	x := one[:512+(size+511)/512*512]
	return bytes.Repeat(x, n)
}

// limitDoc is the part of a limit_exceeded problem the tests check.
type limitDoc struct {
	Type    string `json:"type"`
	Status  int    `json:"status"`
	Details struct {
		Limit string `json:"limit"`
		Max   int64  `json:"max"`
	} `json:"details"`
}

// TestUploadBatchLimits: every limit is a 413 or 400 limit_exceeded
// problem naming it, and the destination is left exactly as it was (the
// entries before the offending one are not kept).
func TestUploadBatchLimits(t *testing.T) {
	long := strings.Repeat("n", 65)
	deep := strings.Repeat("d/", 4) + "f"
	tests := []struct {
		name    string
		opts    Options
		archive func(t testing.TB) []byte
		status  int
		limit   string
		max     int64
	}{
		{"total bytes", Options{Upload: UploadLimits{MaxBytes: 1000}},
			func(t testing.TB) []byte {
				return makeTar(t, file("a", strings.Repeat("a", 600)), file("b", strings.Repeat("b", 600)))
			}, 413, LimitUploadBytes, 1000},
		{"file bytes", Options{MaxFileBytes: 1000},
			func(t testing.TB) []byte {
				return makeTar(t, file("a", "ok"), file("b", strings.Repeat("b", 1001)))
			}, 413, LimitUploadFileBytes, 1000},
		{"sparse bomb", Options{Upload: UploadLimits{MaxBytes: 1 << 30}},
			func(t testing.TB) []byte { return sparseTar(t, "s", 10<<30, "end") }, 413, LimitUploadBytes, 1 << 30},
		{"sparse bomb per file", Options{MaxFileBytes: 1 << 30},
			func(t testing.TB) []byte { return sparseTar(t, "s", 10<<30, "end") }, 413, LimitUploadFileBytes, 1 << 30},
		{"gzip bomb", Options{Upload: UploadLimits{MaxBytes: 1 << 20}},
			func(t testing.TB) []byte {
				return gz(t, makeTar(t, file("z", string(make([]byte, 8<<20)))))
			}, 413, LimitUploadBytes, 1 << 20},
		{"endless metadata", Options{Upload: UploadLimits{MaxBytes: 1000, MaxEntries: 2}},
			func(t testing.TB) []byte { return gz(t, paxRun(t, 200, 1000)) }, 413, LimitUploadBytes, 1000},
		{"entries", Options{Upload: UploadLimits{MaxEntries: 2}},
			func(t testing.TB) []byte { return makeTar(t, file("a", "1"), dir("d/"), fifo("p")) }, 413, LimitUploadEntries, 2},
		{"depth", Options{Upload: UploadLimits{MaxDepth: 4}},
			func(t testing.TB) []byte { return makeTar(t, file("a", "1"), file(deep, "x")) }, 400, LimitUploadDepth, 4},
		{"depth of a directory", Options{Upload: UploadLimits{MaxDepth: 4}},
			func(t testing.TB) []byte { return makeTar(t, dir(deep+"/")) }, 400, LimitUploadDepth, 4},
		{"depth of a hard link target", Options{Upload: UploadLimits{MaxDepth: 4}},
			func(t testing.TB) []byte { return makeTar(t, hardlink("h", deep)) }, 400, LimitUploadDepth, 4},
		{"name bytes", Options{Upload: UploadLimits{MaxPathBytes: 64}},
			func(t testing.TB) []byte { return makeTar(t, file("a", "1"), file(long, "x")) }, 400, LimitUploadPathBytes, 64},
		{"link target bytes", Options{Upload: UploadLimits{MaxPathBytes: 64}},
			func(t testing.TB) []byte { return makeTar(t, symlink("l", long)) }, 400, LimitUploadPathBytes, 64},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.opts)
			archive := tc.archive(t)
			for _, dest := range []string{"fresh", "existing"} {
				writeFile(t, filepath.Join(e.home, "existing", "keep"), "old")
				before := listTree(t, e.home)
				r := e.upload("/v1/fs/upload-batch?path="+dest, "application/x-tar", archive)
				var p limitDoc
				r.json(t, &p)
				if r.status != tc.status || p.Status != tc.status || p.Type != "urn:sandbox-agent:error:limit_exceeded" ||
					p.Details.Limit != tc.limit || p.Details.Max != tc.max {
					t.Fatalf("%s: %d %s", dest, r.status, r.body)
				}
				if !strings.Contains(string(r.body), tc.limit) {
					t.Fatalf("detail does not name %s: %s", tc.limit, r.body)
				}
				if diff := cmp.Diff(before, listTree(t, e.home)); diff != "" {
					t.Fatalf("%s: the tree changed (-before +after):\n%s", dest, diff)
				}
				if got := readFile(t, filepath.Join(e.home, "existing", "keep")); got != "old" {
					t.Fatalf("existing file changed: %q", got)
				}
			}
		})
	}
}

// TestUploadBatchWithinLimits: archives at the limits extract completely.
func TestUploadBatchWithinLimits(t *testing.T) {
	e := newEnv(t, Options{MaxFileBytes: 600, Upload: UploadLimits{MaxBytes: 1200, MaxEntries: 3, MaxDepth: 3, MaxPathBytes: 5}})
	archive := makeTar(t, file("a", strings.Repeat("a", 600)), file("b/c/d", strings.Repeat("b", 600)), symlink("l", "b/c"))
	r := e.upload("/v1/fs/upload-batch?path=ok", "application/x-tar", archive)
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if diff := cmp.Diff([]string{"a", "b", "b/c", "b/c/d", "l"}, listTree(t, e.home+"/ok")); diff != "" {
		t.Fatal(diff)
	}
}

// TestSparseHolesTakeNoBlocks: a sparse entry (or any run of zeros) is
// written as a hole, so a small archive cannot fill the disk with blocks
// even below the byte limits.
func TestSparseHolesTakeNoBlocks(t *testing.T) {
	e := newEnv(t, Options{})
	const hole = 256 << 20
	r := e.upload("/v1/fs/upload-batch?path=sp", "application/x-tar", sparseTar(t, "s", hole, "end"))
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	fi, err := os.Stat(e.home + "/sp/s")
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Size() != hole+3 || st.Blocks*512 > 1<<20 {
		t.Fatalf("size %d, %d bytes of blocks", fi.Size(), st.Blocks*512)
	}
	f, err := os.Open(e.home + "/sp/s")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tail := make([]byte, 3)
	if _, err := f.ReadAt(tail, hole); err != nil || string(tail) != "end" {
		t.Fatalf("tail %q %v", tail, err)
	}
}

// TestExtractResolutionIsLinearInDepth counts the directory system calls
// of path resolution (each on a single component, so each is constant
// work for the kernel too): a deep entry costs a constant number per
// component, entries that share the directory cost nothing more for it,
// in a new destination and in one that already has the path.
func TestExtractResolutionIsLinearInDepth(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for _, existing := range []bool{false, true} {
		perDepth := map[int]float64{}
		for _, depth := range []int{64, 256, 1024} {
			deep := strings.TrimSuffix(strings.Repeat("d/", depth), "/")
			var entries []tarEntry
			for i := range 32 {
				entries = append(entries, file(fmt.Sprintf("%s/f%d", deep, i), "x"))
			}
			entries = append(entries, file("top", "y"), file(deep+"/back", "z"))
			dest := t.TempDir() + "/dest"
			if existing { // deeper than PATH_MAX: made by an upload too
				if _, err := extract(context.Background(), dest, bytes.NewReader(makeTar(t, dir(deep+"/"))), extractOptions{log: log}); err != nil {
					t.Fatal(err)
				}
			}
			res, err := extract(context.Background(), dest, bytes.NewReader(makeTar(t, entries...)), extractOptions{log: log})
			if err != nil {
				t.Fatal(err)
			}
			// The deep directory is walked twice (again after "top"), each
			// component with at most 5 calls (lstat+open in dest,
			// lstat+mkdir+open in the staging tree); every file adds none.
			if max := 2*5*depth + 64; res.walkOps > max {
				t.Fatalf("existing=%v depth %d: %d directory calls, want at most %d", existing, depth, res.walkOps, max)
			}
			perDepth[depth] = float64(res.walkOps) / float64(depth)
			if depth < 1024 { // deeper is longer than PATH_MAX
				if got := readFile(t, dest+"/"+deep+"/back"); got != "z" {
					t.Fatalf("back = %q", got)
				}
			}
		}
		if perDepth[1024] > 1.1*perDepth[64] {
			t.Fatalf("existing=%v: calls per component grow with depth: %v", existing, perDepth)
		}
	}
}

// cancelAtEnd cancels ctx once the archive's last byte has been read, as
// net/http does when the client goes away after sending the whole body.
type cancelAtEnd struct {
	r      *bytes.Reader
	cancel context.CancelFunc
}

func (c *cancelAtEnd) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.r.Len() == 0 {
		c.cancel()
	}
	return n, err
}

// TestExtractStopsWhenTheRequestEnds: an archive whose entry data is
// generated rather than read (a sparse hole of 1 TiB, no limits) stops
// once the request's context ends, and leaves the destination as it was
// and no staging directory.
func TestExtractStopsWhenTheRequestEnds(t *testing.T) {
	for _, existing := range []bool{false, true} {
		parent := t.TempDir()
		dest := parent + "/dest"
		if existing {
			writeFile(t, dest+"/keep", "old")
		}
		before := listTree(t, parent)
		ctx, cancel := context.WithCancel(context.Background())
		archive := append(makeTar(t, file("first", "1"))[:1024], sparseTar(t, "bomb", 1<<40, "end")...)
		_, err := extract(ctx, dest, &cancelAtEnd{r: bytes.NewReader(archive), cancel: cancel}, extractOptions{log: slog.New(slog.DiscardHandler)})
		cancel()
		if !errors.Is(err, errCanceled) {
			t.Fatalf("err = %v, want %v", err, errCanceled)
		}
		if diff := cmp.Diff(before, listTree(t, parent)); diff != "" {
			t.Fatalf("existing=%v: the tree changed (-before +after):\n%s", existing, diff)
		}
	}
}

// logMatch is a slog handler that reports one message, once, on a channel.
type logMatch struct {
	msg string
	ch  chan struct{}
}

func (l logMatch) Enabled(context.Context, slog.Level) bool { return true }
func (l logMatch) Handle(_ context.Context, r slog.Record) error {
	if r.Message == l.msg {
		select {
		case l.ch <- struct{}{}:
		default:
		}
	}
	return nil
}
func (l logMatch) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l logMatch) WithGroup(string) slog.Handler      { return l }

// TestUploadBatchClientGoneLeavesNothing: over HTTP, a client that sends a
// sparse bomb and hangs up stops the extraction (no limits are set, so
// only the disconnect can), leaving no destination and no staging.
func TestUploadBatchClientGoneLeavesNothing(t *testing.T) {
	gone := make(chan struct{}, 1)
	e := newEnv(t, Options{Logger: slog.New(logMatch{"upload-batch: client went away", gone})})
	archive := sparseTar(t, "bomb", 1<<40, "end")
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST /v1/fs/upload-batch?path=dest HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-tar\r\nContent-Length: %d\r\n\r\n", len(archive))
	if _, err := conn.Write(archive); err != nil {
		t.Fatal(err)
	}
	// Wait until the server is writing the entry (its data is only
	// generated by then), then hang up.
	wait.Until(t, 10*time.Second, "the upload is being staged", func() bool { return hasStaging(t, e.home) })
	conn.Close()
	select {
	case <-gone:
	case <-time.After(10 * time.Second):
		t.Fatal("the extraction did not stop after the client left")
	}
	if left := listTree(t, e.home); len(left) != 0 {
		t.Fatalf("left behind: %v", left)
	}
}

func hasStaging(t testing.TB, dir string) bool {
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range ents {
		if strings.Contains(en.Name(), ".sa-upload-") {
			return true
		}
	}
	return false
}

// problemBody fails its first read with a problem, as internal/server's
// body idle timeout does.
type problemBody struct{}

func (problemBody) Read([]byte) (int, error) {
	return 0, problem.New(problem.RequestTimeout, http.StatusRequestTimeout, "Request Timeout", "stalled")
}

// TestBodyProblemsPassThrough: a body read that fails with a problem is
// answered with that problem, not a 400 or 502 of ours.
func TestBodyProblemsPassThrough(t *testing.T) {
	e := newEnv(t, Options{})
	for _, target := range []string{"PUT /v1/fs/file?path=f", "POST /v1/fs/upload-batch?path=u"} {
		method, url, _ := strings.Cut(target, " ")
		req := httptest.NewRequest(method, url, problemBody{})
		req.Header.Set("Content-Type", "application/x-tar")
		req.ContentLength = -1
		rec := httptest.NewRecorder()
		e.api.ServeHTTP(rec, req)
		if rec.Code != 408 || !strings.Contains(rec.Body.String(), "urn:sandbox-agent:error:request_timeout") {
			t.Fatalf("%s: %d %s", target, rec.Code, rec.Body)
		}
	}
	if left := listTree(t, e.home); len(left) != 0 {
		t.Fatalf("left behind: %v", left)
	}
}

// TestSplicedUploadIdleTimeout: a large PUT (spliced from the hijacked
// connection, out of the server's reach) that stalls fails with the same
// 408 after BodyIdleTimeout, and the target is untouched.
func TestSplicedUploadIdleTimeout(t *testing.T) {
	e := newEnv(t, Options{BodyIdleTimeout: 100 * time.Millisecond})
	writeFile(t, filepath.Join(e.home, "keep.bin"), "old content")
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PUT /v1/fs/file?path=keep.bin HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", spliceSize)
	// A head small enough for the socket buffers: the write never waits
	// on the server, which times out on the silence that follows.
	if _, err := conn.Write(spliceData()[:32<<10]); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 408 || !strings.Contains(string(body), "request_timeout") || !strings.Contains(string(body), "100ms") {
		t.Fatalf("%d %s", res.StatusCode, body)
	}
	if got := readFile(t, filepath.Join(e.home, "keep.bin")); got != "old content" {
		t.Fatalf("target changed: %d bytes", len(got))
	}
}

// TestNULInPathIsInvalid: every /v1/fs route answers a path with a NUL
// byte with 400 invalid_request (it used to reach the kernel: EINVAL, 502).
func TestNULInPathIsInvalid(t *testing.T) {
	e := newEnv(t, Options{})
	tests := []struct{ method, target, body string }{
		{"GET", "/v1/fs/entries?path=a%00b", ""},
		{"GET", "/v1/fs/file?path=a%00b", ""},
		{"PUT", "/v1/fs/file?path=a%00b", "x"},
		{"DELETE", "/v1/fs/entry?path=a%00b", ""},
		{"POST", "/v1/fs/mkdir?path=a%00b", ""},
		{"POST", "/v1/fs/move", `{"from":"a\u0000b","to":"c"}`},
		{"POST", "/v1/fs/move", `{"from":"c","to":"/tmp/a\u0000b"}`},
		{"GET", "/v1/fs/stat?path=/a%00b", ""},
		{"POST", "/v1/fs/upload-batch?path=a%00b", ""},
	}
	writeFile(t, e.home+"/c", "c")
	for _, tc := range tests {
		ct := "application/json"
		if strings.Contains(tc.target, "upload-batch") {
			ct = "application/x-tar"
		}
		r := e.do(tc.method, tc.target, map[string]string{"Content-Type": ct}, strings.NewReader(tc.body))
		checkError(t, r, 400, "invalid_request", "invalid request: path contains a NUL byte")
	}
}
