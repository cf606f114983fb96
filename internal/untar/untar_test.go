package untar_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/sandbox-agent-go/sandbox-agent/internal/untar"
)

type entry struct {
	name, body, link string
	typ              byte
}

func archive(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: 0o644, Typeflag: e.typ, Linkname: e.link}
		if h.Typeflag == 0 {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

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
		{name: "file bytes", data: archive(t, entry{name: "a", body: "123456"}), want: new(*untar.LimitError), limit: untar.LimitFileBytes, wantMax: 5},
		{name: "total bytes", data: archive(t, entry{name: "a", body: "12345"}, entry{name: "b", body: "12345"}, entry{name: "c", body: "1"}), want: new(*untar.LimitError), limit: untar.LimitBytes, wantMax: 10},
		{name: "entries", data: archive(t, entry{name: "a"}, entry{name: "b"}, entry{name: "c"}, entry{name: "d"}), want: new(*untar.LimitError), limit: untar.LimitEntries, wantMax: 3},
		{name: "depth", data: archive(t, entry{name: "a/b/c", body: "x"}), want: new(*untar.LimitError), limit: untar.LimitDepth, wantMax: 2},
		{name: "path bytes", data: archive(t, entry{name: "abcdefghijklmnopq", body: "x"}), want: new(*untar.LimitError), limit: untar.LimitPathBytes, wantMax: 16},
		{name: "dotdot", data: archive(t, entry{name: "a/../b", body: "x"}), want: new(*untar.InvalidError)},
		{name: "dotdot out", data: archive(t, entry{name: "a/../../b", body: "x"}), dotdot: true, want: new(*untar.InvalidError)},
		{name: "absolute", data: archive(t, entry{name: "/b", body: "x"}), dotdot: true, want: new(*untar.InvalidError)},
		{name: "escaping symlink", data: archive(t, entry{name: "l", link: "../x", typ: tar.TypeSymlink}), want: new(*untar.InvalidError)},
		{name: "through a symlink", data: archive(t, entry{name: "l", link: ".", typ: tar.TypeSymlink}, entry{name: "l/x", body: "x"}), want: new(*untar.InvalidError)},
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
	_, err := untar.Extract(t.Context(), file, bytes.NewReader(archive(t, entry{name: "a", body: "x"})), untar.Options{})
	var pe *untar.PathError
	if !errors.As(err, &pe) || pe.Path != file {
		t.Fatalf("err = %v (%T), want a *PathError on %s", err, err, file)
	}
}

func TestExtractResolveDotDot(t *testing.T) {
	dest := t.TempDir()
	data := archive(t, entry{name: "./a/x/../b", body: "b"}, entry{name: "a/h", link: "a/x/../b", typ: tar.TypeLink})
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
