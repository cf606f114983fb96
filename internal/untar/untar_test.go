package untar_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"github.com/sandbox-agent-go/sandbox-agent/internal/testutil/tartest"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/sandbox-agent-go/sandbox-agent/internal/untar"
)

// entry and archive are tartest's builder under the names these tests use.
type entry = tartest.Entry

var archive = tartest.Build

// Every refusal comes back as one of the package's error types, which is
// what callers map to their answers; dest is left empty.
func TestExtractErrorTypes(t *testing.T) {
	limits := untar.Limits{MaxBytes: 10, MaxFileBytes: 5, MaxEntries: 3, MaxDepth: 2, MaxPathBytes: 16}
	tests := []struct {
		name    string
		data    []byte
		dotdot  bool
		want    any // a pointer to the expected error type
		limit   untar.Limit
		wantMax int64
	}{
		{name: "file bytes", data: archive(t, entry{Name: "a", Body: "123456"}), want: new(*untar.LimitError), limit: untar.LimitFileBytes, wantMax: 5},
		{name: "total bytes", data: archive(t, entry{Name: "a", Body: "12345"}, entry{Name: "b", Body: "12345"}, entry{Name: "c", Body: "1"}), want: new(*untar.LimitError), limit: untar.LimitBytes, wantMax: 10},
		{name: "entries", data: archive(t, entry{Name: "a"}, entry{Name: "b"}, entry{Name: "c"}, entry{Name: "d"}), want: new(*untar.LimitError), limit: untar.LimitEntries, wantMax: 3},
		{name: "depth", data: archive(t, entry{Name: "a/b/c", Body: "x"}), want: new(*untar.LimitError), limit: untar.LimitDepth, wantMax: 2},
		{name: "path bytes", data: archive(t, entry{Name: "abcdefghijklmnopq", Body: "x"}), want: new(*untar.LimitError), limit: untar.LimitPathBytes, wantMax: 16},
		{name: "dotdot", data: archive(t, entry{Name: "a/../b", Body: "x"}), want: new(*untar.InvalidError)},
		{name: "dotdot out", data: archive(t, entry{Name: "a/../../b", Body: "x"}), dotdot: true, want: new(*untar.InvalidError)},
		{name: "absolute", data: archive(t, entry{Name: "/b", Body: "x"}), dotdot: true, want: new(*untar.InvalidError)},
		{name: "escaping symlink", data: archive(t, entry{Name: "l", Link: "../x", Type: tar.TypeSymlink}), want: new(*untar.InvalidError)},
		{name: "through a symlink", data: archive(t, entry{Name: "l", Link: ".", Type: tar.TypeSymlink}, entry{Name: "l/x", Body: "x"}), want: new(*untar.InvalidError)},
		{name: "not a tar", data: []byte("this is not a tar archive, not even close to one......"), want: new(*untar.ReadError)},
		{name: "truncated gzip", data: []byte{0x1f, 0x8b, 8}, want: new(*untar.ReadError)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dest := t.TempDir()
			_, err := untar.Extract(t.Context(), dest, bytes.NewReader(tt.data), untar.Options{
				Limits: limits, ResolveDotDot: tt.dotdot, Log: slog.New(slog.DiscardHandler),
			})
			if err == nil || !errors.As(err, tt.want) {
				t.Fatalf("err = %v (%T), want %T", err, err, tt.want)
			}
			var le *untar.LimitError
			if errors.As(err, &le) && (le.Limit != tt.limit || le.Max != tt.wantMax) {
				t.Errorf("limit %s max %d, want %s max %d", le.Limit, le.Max, tt.limit, tt.wantMax)
			}
			if left, _ := os.ReadDir(dest); len(left) != 0 {
				t.Errorf("dest holds %v after a refused archive", left)
			}
		})
	}
}

func TestExtractPathError(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := untar.Extract(t.Context(), file, bytes.NewReader(archive(t, entry{Name: "a", Body: "x"})), untar.Options{})
	var pe *untar.PathError
	if !errors.As(err, &pe) || pe.Path != file {
		t.Fatalf("err = %v (%T), want a *PathError on %s", err, err, file)
	}
}

func TestExtractResolveDotDot(t *testing.T) {
	dest := t.TempDir()
	data := archive(t, entry{Name: "./a/x/../b", Body: "b"}, entry{Name: "a/h", Link: "a/x/../b", Type: tar.TypeLink})
	res, err := untar.Extract(t.Context(), dest, bytes.NewReader(data), untar.Options{ResolveDotDot: true, MaxListed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{filepath.Join(dest, "a/b")}; len(res.Paths) != 1 || res.Paths[0] != want[0] || !res.Truncated {
		t.Errorf("paths %v truncated %v, want %v truncated", res.Paths, res.Truncated, want)
	}
	for _, p := range []string{"a/b", "a/h"} {
		if b, err := os.ReadFile(filepath.Join(dest, p)); err != nil || string(b) != "b" {
			t.Errorf("%s = %q (%v)", p, b, err)
		}
	}
}
