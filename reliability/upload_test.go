package reliability

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/internal/testutil/tartest"
)

// uplTar builds a tar of regular files (name, content) in order.
func uplTar(t *testing.T, files ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := 0; i+1 < len(files); i += 2 {
		hdr := &tar.Header{Name: files[i], Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(files[i+1])), Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, files[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func uplGzip(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// uplTree lists everything under root (relative paths), staging included.
func uplTree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if rel, _ := filepath.Rel(root, p); rel != "." {
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// uplLimit is the limit a limit_exceeded problem names.
func uplLimit(b []byte) string {
	var p struct {
		Details struct{ Limit string } `json:"details"`
	}
	_ = json.Unmarshal(b, &p)
	return p.Details.Limit
}

// uplSetup makes $HOME/dest with one file and returns what the home
// holds, to compare after a refused upload.
func uplSetup(t *testing.T, s *server) []string {
	t.Helper()
	if err := os.MkdirAll(s.Home+"/dest", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.Home+"/dest/keep", []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	return uplTree(t, s.Home)
}

func uplUnchanged(t *testing.T, s *server, before []string) {
	t.Helper()
	after := uplTree(t, s.Home)
	if strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Fatalf("home changed:\nbefore %v\nafter  %v", before, after)
	}
	if b, _ := os.ReadFile(s.Home + "/dest/keep"); string(b) != "old" {
		t.Fatalf("dest/keep = %q", b)
	}
}

// TestUploadBombsAreRefused: archives that used to expand into gigabytes
// (a 2 KB sparse tar, a tiny .tgz) or cost minutes of CPU (a 4,000-level
// path) are refused with a problem naming the limit, and leave the home
// exactly as it was, under the default limits and under limits set by
// environment variable.
func TestUploadBombsAreRefused(t *testing.T) {
	deep := strings.Repeat("d/", 4000) + "f"
	tests := []struct {
		name    string
		env     []string
		archive func(t *testing.T) []byte
		status  int
		limit   string
	}{
		{"sparse 10 GiB, default per-file limit", nil,
			func(t *testing.T) []byte { return tartest.Sparse(t, "bomb", 10<<30, "end") }, 413, "upload-max-file-bytes"},
		{"sparse 2 GiB, total limit from env", []string{"SANDBOX_AGENT_UPLOAD_MAX_BYTES=1048576"},
			func(t *testing.T) []byte { return tartest.Sparse(t, "bomb", 2<<30, "end") }, 413, "upload-max-bytes"},
		{"tgz declaring 5 GiB", nil,
			func(t *testing.T) []byte {
				// Only the start of the data is sent: the header alone
				// must be refused, before anything is written.
				var tb bytes.Buffer
				tw := tar.NewWriter(&tb)
				if err := tw.WriteHeader(&tar.Header{Name: "bomb", Typeflag: tar.TypeReg, Mode: 0o644, Size: 5 << 30, Format: tar.FormatPAX}); err != nil {
					t.Fatal(err)
				}
				return uplGzip(t, append(tb.Bytes(), make([]byte, 1<<20)...))
			}, 413, "upload-max-file-bytes"},
		{"tgz over the total after a written file", []string{"SANDBOX_AGENT_UPLOAD_MAX_BYTES=33554432"},
			func(t *testing.T) []byte {
				z := string(make([]byte, 20<<20))
				return uplGzip(t, uplTar(t, "keep", "new", "a", z, "b", z))
			}, 413, "upload-max-bytes"},
		{"4,000-level path", nil,
			func(t *testing.T) []byte { return uplTar(t, "keep", "new", deep, "x") }, 400, "upload-max-path-bytes"},
		{"300-level path", nil,
			func(t *testing.T) []byte { return uplTar(t, "keep", "new", strings.Repeat("d/", 300)+"f", "x") }, 400, "upload-max-depth"},
		{"entries from env", []string{"SANDBOX_AGENT_UPLOAD_MAX_ENTRIES=2"},
			func(t *testing.T) []byte { return uplTar(t, "keep", "new", "a", "1", "b", "2") }, 413, "upload-max-entries"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := start(t, opts{Env: tc.env})
			before := uplSetup(t, s)
			archive := tc.archive(t)
			for _, dest := range []string{"dest", "fresh"} {
				code, b := s.do(http.MethodPost, "/v1/fs/upload-batch?path="+dest, "application/x-tar", bytes.NewReader(archive))
				if code != tc.status || problemCode(b) != "limit_exceeded" || uplLimit(b) != tc.limit {
					t.Fatalf("%s: %d %.300s", dest, code, b)
				}
				uplUnchanged(t, s, before)
			}
		})
	}
}

// uplCPU is the user+system CPU time the process has used so far.
func uplCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the parenthesised command name; utime and stime are the
	// 14th and 15th of the whole line, in clock ticks (100 per second).
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// TestUploadDeepPathCostIsLinear: with the depth and name limits lifted, a
// 4,000-level path (20 KB of tar) extracts for well under 3 s of the
// server's CPU (it took 41 s when every prefix was resolved again).
func TestUploadDeepPathCostIsLinear(t *testing.T) {
	s := start(t, opts{Env: []string{"SANDBOX_AGENT_UPLOAD_MAX_DEPTH=0", "SANDBOX_AGENT_UPLOAD_MAX_PATH_BYTES=0"}})
	deep := strings.Repeat("d/", 4000)
	archive := uplTar(t, deep+"a", "1", deep+"b", "2", "top", "3", deep+"c", "4")
	cpu0 := uplCPU(t, s.cmd.Process.Pid)
	code, b := s.do(http.MethodPost, "/v1/fs/upload-batch?path=deep", "application/x-tar", bytes.NewReader(archive))
	used := uplCPU(t, s.cmd.Process.Pid) - cpu0
	if code != 200 {
		t.Fatalf("%d %.300s", code, b)
	}
	if used > 3*time.Second { // mostly mkdir(2), ~0.5 s here
		t.Fatalf("the upload used %s of CPU", used)
	}
	t.Logf("4,000-level upload: %s of CPU", used)
}

// TestUploadClientGoneLeavesNothing: a client that sends an archive and
// hangs up — before its end, or after a sparse bomb whose data the server
// generates (limits lifted, so only the disconnect can stop it) — leaves
// the destination as it was and no staging directory, promptly.
func TestUploadClientGoneLeavesNothing(t *testing.T) {
	bomb := tartest.Sparse(t, "bomb", 1<<40, "end")
	tests := []struct {
		name     string
		declared int    // Content-Length
		send     []byte // what is sent before hanging up
	}{
		{"sparse bomb sent whole", 0, append(uplTar(t, "keep", "new")[:1024], bomb...)},
		{"cut off mid-archive", 1 << 20, uplTar(t, "keep", "new", "big", string(make([]byte, 1<<20)))[:300<<10]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := start(t, opts{Env: []string{"SANDBOX_AGENT_UPLOAD_MAX_BYTES=0", "SANDBOX_AGENT_UPLOAD_MAX_FILE_BYTES=0"}})
			before := uplSetup(t, s)
			n := tc.declared
			if n == 0 {
				n = len(tc.send)
			}
			conn, err := net.Dial("tcp", s.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			fmt.Fprintf(conn, "POST /v1/fs/upload-batch?path=dest HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-tar\r\nContent-Length: %d\r\n\r\n", s.Addr, n)
			if _, err := conn.Write(tc.send); err != nil {
				t.Fatal(err)
			}
			// Hang up once the server is extracting (its staging directory
			// exists): observed by polling, it is another process.
			uplPoll(t, 10*time.Second, "the upload to start", func() bool { return uplStaging(t, s.Home+"/dest") })
			conn.Close()
			left := time.Now()
			uplPoll(t, 5*time.Second, "the staging directory to go", func() bool { return !uplStaging(t, s.Home+"/dest") })
			t.Logf("staging gone %s after the hang-up", time.Since(left).Round(time.Millisecond))
			uplUnchanged(t, s, before)
			if code, _ := s.do(http.MethodGet, "/v1/health", "", nil); code != 200 {
				t.Fatalf("health %d", code)
			}
		})
	}
}

func uplStaging(t *testing.T, dir string) bool {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.Contains(e.Name(), ".sa-upload-") {
			return true
		}
	}
	return false
}

// uplPoll waits (bounded) for cond about the server process's effects.
func uplPoll(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestFsNULPathIs400: a NUL byte in a path is the client's error on every
// kind of fs route (it reached the kernel and came back as a 502).
func TestFsNULPathIs400(t *testing.T) {
	s := start(t, opts{})
	for _, tc := range []struct{ method, path, ct, body string }{
		{http.MethodGet, "/v1/fs/stat?path=a%00b", "", ""},
		{http.MethodGet, "/v1/fs/file?path=/tmp/a%00b", "", ""},
		{http.MethodPut, "/v1/fs/file?path=a%00b", "application/octet-stream", "x"},
		{http.MethodPost, "/v1/fs/mkdir?path=a%00b", "", ""},
		{http.MethodPost, "/v1/fs/move", "application/json", `{"from":"a\u0000b","to":"c"}`},
		{http.MethodPost, "/v1/fs/upload-batch?path=a%00b", "application/x-tar", ""},
	} {
		code, b := s.do(tc.method, tc.path, tc.ct, strings.NewReader(tc.body))
		if code != 400 || problemCode(b) != "invalid_request" {
			t.Errorf("%s %s: %d %s", tc.method, tc.path, code, b)
		}
	}
}
