package fsapi

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

var resolveSeeds = []string{"", ".", "./", "a/b", "./a//b/", "../x", "a/../b", "a/..", "/abs/../x", "~/x", "a/..b", "...", ".hidden/./x", "a\x00b"}

// FuzzResolvePath: a relative input never resolves outside home, ".." is
// always rejected, absolute input is returned verbatim, nothing panics.
func FuzzResolvePath(f *testing.F) {
	for _, s := range resolveSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		const home = "/home/user"
		got, err := resolvePath(home, raw)
		if strings.IndexByte(raw, 0) >= 0 {
			if err == nil {
				t.Fatalf("%q with a NUL byte -> %q, accepted", raw, got)
			}
			return
		}
		if strings.HasPrefix(raw, "/") {
			if err != nil || got != raw {
				t.Fatalf("absolute %q -> %q, %v", raw, got, err)
			}
			return
		}
		hasDotDot := slices.Contains(strings.Split(raw, "/"), "..")
		if hasDotDot != (err != nil) {
			t.Fatalf("%q -> %q, %v (has .. = %v)", raw, got, err, hasDotDot)
		}
		if err != nil {
			return
		}
		if got != home && !strings.HasPrefix(got, home+"/") {
			t.Fatalf("%q resolved outside home: %q", raw, got)
		}
		if c := path.Clean(got); c != home && !strings.HasPrefix(c, home+"/") {
			t.Fatalf("%q cleans to %q outside home", raw, c)
		}
		if rest := strings.TrimPrefix(got, home); rest != "" {
			for _, seg := range strings.Split(rest[1:], "/") {
				if seg == "" || seg == "." || seg == ".." {
					t.Fatalf("%q -> %q has component %q", raw, got, seg)
				}
			}
		}
	})
}

// extractSeeds are archives covering the interesting paths: plain and
// gzip, every entry type, and each escape attempt.
func extractSeeds(tb testing.TB) map[string][]byte {
	plain := makeTar(tb, dir("./"), dir("a/"), file("a/f.txt", "hello"), symlink("a/l", "f.txt"), hardlink("h", "a/f.txt"))
	return map[string][]byte{
		"plain":            plain,
		"gzip":             gz(tb, plain),
		"empty":            {},
		"dotdot":           makeTar(tb, file("../escape", "x")),
		"absolute":         makeTar(tb, file("/tmp/abs-escape", "x")),
		"symlink-out":      makeTar(tb, symlink("evil", "../outside"), file("evil/sentinel", "pwned")),
		"symlink-abs":      makeTar(tb, symlink("evil", "/"), file("evil/tmp/x", "pwned")),
		"symlink-chain":    makeTar(tb, symlink("a", "."), symlink("b", "a/.."), file("b/outside/sentinel", "pwned")),
		"symlink-through":  makeTar(tb, dir("d/"), symlink("in", "d"), file("in/x", "x")),
		"hardlink-abs":     makeTar(tb, hardlink("pw", "/etc/passwd")),
		"hardlink-dotdot":  makeTar(tb, hardlink("s", "../outside/sentinel")),
		"hardlink-symlink": makeTar(tb, dir("x/"), dir("x/y/"), symlink("x/y/s", "../../z"), hardlink("s2", "x/y/s")),
		"replace-link":     makeTar(tb, symlink("s", "f"), file("s", "x"), file("f", "y")),
		"file-then-dir":    makeTar(tb, file("x", "1"), dir("x/")),
		"truncated":        plain[:700],
		"deep":             makeTar(tb, file(strings.Repeat("d/", 20)+"f", "x")),
		"too-many":         makeTar(tb, file("1", "a"), file("2", "b"), file("3", "c")),
		"sparse":           sparseTar(tb, "s", 1<<21, "end"),
	}
}

// fuzzLimits are small so the fuzzer reaches every limit.
var fuzzLimits = UploadLimits{MaxBytes: 1 << 20, MaxEntries: 200, MaxDepth: 16, MaxPathBytes: 512}

// FuzzExtract: whatever the archive, nothing is created or changed outside
// the destination, no symlink left inside resolves outside, a failed
// upload leaves the destination as it was, no staging directory is left,
// and nothing panics.
func FuzzExtract(f *testing.F) {
	seeds := extractSeeds(f)
	for _, name := range slices.Sorted(maps.Keys(seeds)) {
		f.Add(seeds[name])
	}
	log := slog.New(slog.DiscardHandler)
	f.Fuzz(func(t *testing.T, data []byte) {
		parent := fuzzTempDir(t)
		dest, outside := parent+"/dest", parent+"/outside"
		must(t, os.Mkdir(dest, 0o755))
		writeFile(t, outside+"/sentinel", "untouched")
		_, err := extract(context.Background(), dest, bytes.NewReader(data), extractOptions{limits: fuzzLimits, maxFileBytes: 1 << 20, log: log})
		if err != nil {
			// All or nothing: a failed upload leaves dest as it was (empty).
			if left := listTree(t, dest); len(left) != 0 {
				t.Fatalf("failed upload (%v) left %v", err, left)
			}
		}
		for _, p := range listTree(t, parent) {
			if strings.Contains(p, ".sa-upload-") {
				t.Fatalf("staging left behind: %s", p)
			}
			if p != "dest" && !strings.HasPrefix(p, "dest/") && p != "outside" && p != "outside/sentinel" {
				t.Fatalf("created outside the destination: %s", p)
			}
		}
		if got := readFile(t, outside+"/sentinel"); got != "untouched" {
			t.Fatalf("sentinel changed: %q", got)
		}
		if fi, _ := os.Lstat(outside + "/sentinel"); !fi.Mode().IsRegular() {
			t.Fatal("sentinel replaced")
		}
		var st syscall.Stat_t
		if err := syscall.Stat(outside+"/sentinel", &st); err != nil || st.Nlink != 1 {
			t.Fatal("sentinel gained a hard link")
		}
		assertNoEscapingLinks(t, dest)
	})
}

// fuzzTempDir prefers tmpfs: extraction is filesystem-bound, and on a
// disk-backed /tmp each iteration's mkdir/unlink churn is far slower.
func fuzzTempDir(t *testing.T) string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "fsapi-fuzz-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return t.TempDir()
}

// TestWriteFuzzCorpus regenerates testdata/fuzz from the seeds when
// FSAPI_WRITE_CORPUS=1.
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("FSAPI_WRITE_CORPUS") != "1" {
		t.Skip("set FSAPI_WRITE_CORPUS=1 to regenerate testdata/fuzz")
	}
	write := func(fuzzer, name, value string) {
		dir := filepath.Join("testdata", "fuzz", fuzzer)
		must(t, os.MkdirAll(dir, 0o755))
		must(t, os.WriteFile(filepath.Join(dir, name), []byte("go test fuzz v1\n"+value+"\n"), 0o644))
	}
	for name, data := range extractSeeds(t) {
		write("FuzzExtract", "seed-"+name, fmt.Sprintf("[]byte(%q)", data))
	}
	for i, s := range resolveSeeds {
		write("FuzzResolvePath", fmt.Sprintf("seed-%02d", i), fmt.Sprintf("string(%q)", s))
	}
}
