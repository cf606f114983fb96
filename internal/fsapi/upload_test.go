package fsapi

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestUploadBatch(t *testing.T) {
	e := newEnv(t, Options{})
	mtime := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	archive := makeTar(t,
		dir("./"),
		dir("./skills/"),
		dir("./skills/one/"),
		withMtime(file("./skills/one/SKILL.md", "# one"), mtime),
		dir("./skills/two/"),
		file("./skills/two/SKILL.md", "# two"),
		file("./top.txt", "top"),
		symlink("./skills/latest", "two"),
		hardlink("./top-copy.txt", "top.txt"),
		fifo("./pipe"), // not extracted, not listed
	)
	tests := []struct {
		name, contentType string
		body              []byte
	}{
		{"tar", "application/x-tar", archive},
		{"tar with params", "application/x-tar; charset=binary", archive},
		{"gzip as x-tar", "application/x-tar", gz(t, archive)},
		{"gzip", "application/gzip", gz(t, archive)},
		{"x-gzip", "application/x-gzip", gz(t, archive)},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dest := fmt.Sprintf("up%d", i)
			r := e.upload("/v1/fs/upload-batch?path="+dest, tt.contentType, tt.body)
			if r.status != 200 {
				t.Fatalf("%d %s", r.status, r.body)
			}
			d := e.home + "/" + dest
			want := `{"paths":["` + strings.Join([]string{d + "/skills", d + "/skills/one", d + "/skills/one/SKILL.md",
				d + "/skills/two", d + "/skills/two/SKILL.md", d + "/top.txt", d + "/skills/latest", d + "/top-copy.txt"}, `","`) + `"],"truncated":false}`
			if string(r.body) != want {
				t.Fatalf("body\n%s\nwant\n%s", r.body, want)
			}
			if got := readFile(t, d+"/skills/latest/SKILL.md"); got != "# two" {
				t.Fatal(got)
			}
			if got := readFile(t, d+"/top-copy.txt"); got != "top" {
				t.Fatal(got)
			}
			if fi, err := os.Stat(d + "/skills/one/SKILL.md"); err != nil || !fi.ModTime().Equal(mtime) {
				t.Fatalf("mtime %v, %v", fi.ModTime(), err)
			}
			if _, err := os.Lstat(d + "/pipe"); err == nil {
				t.Fatal("fifo extracted")
			}
		})
	}
}

func TestUploadBatchEdges(t *testing.T) {
	e := newEnv(t, Options{})
	// Empty body and empty archive.
	for _, body := range [][]byte{nil, makeTar(t)} {
		r := e.upload("/v1/fs/upload-batch?path=empty", "application/x-tar", body)
		if r.status != 200 || string(r.body) != `{"paths":[],"truncated":false}` {
			t.Fatalf("%d %s", r.status, r.body)
		}
	}
	// Default destination is home; existing files are replaced.
	writeFile(t, e.home+"/over.txt", "old")
	r := e.upload("/v1/fs/upload-batch", "application/x-tar", makeTar(t, file("over.txt", "new")))
	if r.status != 200 || string(r.body) != `{"paths":["`+e.home+`/over.txt"],"truncated":false}` {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if got := readFile(t, e.home+"/over.txt"); got != "new" {
		t.Fatal(got)
	}
	// More than 1024 entries: all written, 1024 listed.
	var many []tarEntry
	for i := range 1100 {
		many = append(many, file(fmt.Sprintf("f%04d", i), "x"))
	}
	r = e.upload("/v1/fs/upload-batch?path=many", "application/x-tar", makeTar(t, many...))
	var res uploadResponse
	r.json(t, &res)
	if r.status != 200 || !res.Truncated || len(res.Paths) != 1024 || res.Paths[1023] != e.home+"/many/f1023" {
		t.Fatalf("%d truncated=%v len=%d", r.status, res.Truncated, len(res.Paths))
	}
	if n := len(listTree(t, e.home+"/many")); n != 1100 {
		t.Fatalf("%d files written", n)
	}
	// A rejected entry fails the whole upload: nothing is left (upstream
	// keeps the entries before it).
	r = e.upload("/v1/fs/upload-batch?path=partial", "application/x-tar", makeTar(t, file("ok.txt", "1"), file("../escape.txt", "2"), file("later.txt", "3")))
	checkError(t, r, 400, "invalid_request", "invalid request: invalid relative path: ../escape.txt")
	if _, err := os.Lstat(e.home + "/partial"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("rejected upload left its destination: %v", err)
	}
	for _, p := range listTree(t, e.home) {
		if strings.Contains(p, ".sa-upload-") {
			t.Fatalf("staging left behind: %s", p)
		}
	}
	// A truncated archive is a stream error.
	full := makeTar(t, file("big", strings.Repeat("b", 5000)))
	r = e.upload("/v1/fs/upload-batch?path=trunc", "application/x-tar", full[:2048])
	checkError(t, r, 502, "stream_error", "stream error: unexpected EOF")
}

// TestUploadBatchEscapes tries every way out of the destination; each is a
// 400 and nothing outside changes.
func TestUploadBatchEscapes(t *testing.T) {
	passwd, err := os.ReadFile("/etc/passwd")
	if err != nil {
		t.Skip("no /etc/passwd")
	}
	passwdInfo, _ := os.Stat("/etc/passwd")
	tests := []struct {
		name    string
		entries []tarEntry
		msg     string
		// pre prepares the destination (relative to dest) before uploading
		pre func(t *testing.T, dest, outside string)
	}{
		{name: "dotdot", entries: []tarEntry{file("../escape.txt", "x")},
			msg: "invalid relative path: ../escape.txt"},
		{name: "nested dotdot", entries: []tarEntry{file("a/../../escape.txt", "x")},
			msg: "invalid relative path: a/../../escape.txt"},
		{name: "absolute", entries: []tarEntry{file("/tmp/escape.txt", "x")},
			msg: "invalid relative path: /tmp/escape.txt"},
		{name: "symlink out", entries: []tarEntry{symlink("evil", "../outside"), file("evil/pwn", "x")},
			msg: "symlink escapes destination: evil -> ../outside"},
		{name: "absolute symlink", entries: []tarEntry{symlink("etc", "/etc"), file("etc/passwd", "x")},
			msg: "symlink escapes destination: etc -> /etc"},
		{name: "write through inner symlink", entries: []tarEntry{dir("real/"), symlink("in", "real"), file("in/file", "x")},
			msg: "archive entry traverses a symlink: in/file"},
		{name: "symlink chain escape", entries: []tarEntry{symlink("a", "."), symlink("b", "a/..")},
			msg: "symlink escapes destination: b"},
		{name: "hardlink to /etc/passwd", entries: []tarEntry{hardlink("pw", "/etc/passwd")},
			msg: "hard link escapes destination: pw -> /etc/passwd"},
		{name: "hardlink dotdot", entries: []tarEntry{hardlink("pw", "../../../../../../../../etc/passwd")},
			msg: "hard link escapes destination: pw -> ../../../../../../../../etc/passwd"},
		{name: "hardlink through symlink", entries: []tarEntry{dir("d/"), symlink("l", "d"), file("d/f", "x"), hardlink("h", "l/f")},
			msg: "archive entry traverses a symlink: h"},
		{name: "hardlink to symlink", entries: []tarEntry{dir("a/"), dir("a/b/"), symlink("a/b/s", "../../x"), hardlink("s2", "a/b/s")},
			msg: "hard link to a symlink: s2 -> a/b/s"},
		{name: "pre-existing symlink out", entries: []tarEntry{file("pre/pwn", "x")},
			pre: func(t *testing.T, dest, outside string) { must(t, os.Symlink(outside, dest+"/pre")) },
			msg: "archive entry traverses a symlink: pre/pwn"},
		{name: "pre-existing relative symlink out", entries: []tarEntry{dir("pre/")},
			pre: func(t *testing.T, dest, outside string) { must(t, os.Symlink("../outside", dest+"/pre")) },
			msg: "archive entry traverses a symlink: pre/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Options{})
			outside := e.home + "/outside"
			writeFile(t, outside+"/sentinel", "untouched")
			dest := e.home + "/dest"
			must(t, os.Mkdir(dest, 0o755))
			if tt.pre != nil {
				tt.pre(t, dest, outside)
			}
			before := listTree(t, e.home)
			r := e.upload("/v1/fs/upload-batch?path=dest", "application/x-tar", makeTar(t, tt.entries...))
			checkError(t, r, 400, "invalid_request", "invalid request: "+tt.msg)
			// Nothing appeared outside dest, the sentinel is intact.
			var after []string
			for _, p := range listTree(t, e.home) {
				if !strings.HasPrefix(p, "dest/") {
					after = append(after, p)
				}
			}
			var beforeOut []string
			for _, p := range before {
				if !strings.HasPrefix(p, "dest/") {
					beforeOut = append(beforeOut, p)
				}
			}
			if diff := cmp.Diff(beforeOut, after); diff != "" {
				t.Fatalf("outside dest changed (-before +after):\n%s", diff)
			}
			if got := readFile(t, outside+"/sentinel"); got != "untouched" {
				t.Fatal(got)
			}
			if _, err := os.Lstat("/tmp/escape.txt"); err == nil && tt.name == "absolute" {
				t.Fatal("/tmp/escape.txt written")
			}
			// No symlink left in dest resolves outside it.
			if tt.pre == nil { // (the pre-existing links are the test's own)
				assertNoEscapingLinks(t, dest)
			}
			// /etc/passwd untouched (content and link count).
			if got, _ := os.ReadFile("/etc/passwd"); !bytes.Equal(got, passwd) {
				t.Fatal("/etc/passwd changed")
			}
			if fi, _ := os.Stat("/etc/passwd"); !os.SameFile(fi, passwdInfo) || fi.ModTime() != passwdInfo.ModTime() {
				t.Fatal("/etc/passwd replaced or touched")
			}
		})
	}
}

// assertNoEscapingLinks fails if a symlink under dest resolves outside it.
func assertNoEscapingLinks(t testing.TB, dest string) {
	t.Helper()
	root, err := os.OpenRoot(dest)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	realDest, _ := filepath.EvalSymlinks(dest)
	for _, rel := range listTree(t, dest) {
		fi, err := os.Lstat(filepath.Join(dest, rel))
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			continue
		}
		target, _ := os.Readlink(filepath.Join(dest, rel))
		if filepath.IsAbs(target) {
			t.Fatalf("absolute symlink %s -> %s", rel, target)
		}
		if _, err := root.Stat(rel); isEscape(err) {
			t.Fatalf("symlink %s -> %s escapes", rel, target)
		}
		if rp, err := filepath.EvalSymlinks(filepath.Join(dest, rel)); err == nil && !within(rp, realDest) {
			t.Fatalf("symlink %s resolves to %s outside %s", rel, rp, realDest)
		}
	}
}

func TestUploadReplacesLinksInsteadOfWritingThrough(t *testing.T) {
	e := newEnv(t, Options{})
	outside := e.home + "/outside.txt"
	writeFile(t, outside, "untouched")
	dest := e.home + "/dest"
	must(t, os.Mkdir(dest, 0o755))
	// A pre-existing symlink and hard link at entry names pointing outside.
	must(t, os.Symlink(outside, dest+"/sym"))
	must(t, os.Link(outside, dest+"/hard"))
	r := e.upload("/v1/fs/upload-batch?path=dest", "application/x-tar", makeTar(t, file("sym", "new1"), file("hard", "new2")))
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if got := readFile(t, outside); got != "untouched" {
		t.Fatalf("written through a link: %q", got)
	}
	if got := readFile(t, dest+"/sym"); got != "new1" {
		t.Fatal(got)
	}
	if fi, _ := os.Lstat(dest + "/sym"); !fi.Mode().IsRegular() {
		t.Fatal("symlink not replaced")
	}
}

func TestUploadFileOverDirectory(t *testing.T) {
	e := newEnv(t, Options{})
	r := e.upload("/v1/fs/upload-batch?path=d", "application/x-tar", makeTar(t, dir("x/"), file("x", "file")))
	checkError(t, r, 502, "stream_error", "stream error: Is a directory (os error 21)")
	r = e.upload("/v1/fs/upload-batch?path=d2", "application/x-tar", makeTar(t, file("x", "file"), file("x/y", "under a file")))
	checkError(t, r, 502, "stream_error", "stream error: File exists (os error 17)")
}

// isEscape recognises os.Root's refusal to leave the root.
func isEscape(err error) bool {
	return err != nil && strings.Contains(err.Error(), "path escapes from parent")
}
