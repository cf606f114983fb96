package tartest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"testing"
	"time"
)

// Entry is one archive member: a regular file (Body), a directory, a
// symlink or hard link (Link), or any other Type.
type Entry struct {
	Name, Body, Link string
	// Type is a tar.Type* flag; zero means a regular file.
	Type byte
	// Mode defaults to 0o644 (0o755 for directories).
	Mode int64
	// ModTime defaults to a fixed instant, so archives are reproducible.
	ModTime time.Time
}

// File, Dir, Symlink, Hardlink and Fifo build the common entries.
func File(name, body string) Entry  { return Entry{Name: name, Body: body, Type: tar.TypeReg} }
func Dir(name string) Entry         { return Entry{Name: name, Type: tar.TypeDir} }
func Symlink(name, to string) Entry { return Entry{Name: name, Link: to, Type: tar.TypeSymlink} }
func Hardlink(name, to string) Entry {
	return Entry{Name: name, Link: to, Type: tar.TypeLink}
}
func Fifo(name string) Entry { return Entry{Name: name, Type: tar.TypeFifo} }

// Build writes entries, in order, as a PAX tar archive.
func Build(t testing.TB, entries ...Entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		if e.Type == 0 {
			e.Type = tar.TypeReg
		}
		if e.Mode == 0 {
			e.Mode = 0o644
			if e.Type == tar.TypeDir {
				e.Mode = 0o755
			}
		}
		if e.ModTime.IsZero() {
			e.ModTime = time.Unix(1_700_000_000, 0)
		}
		hdr := &tar.Header{Name: e.Name, Typeflag: e.Type, Mode: e.Mode, Linkname: e.Link, ModTime: e.ModTime, Format: tar.FormatPAX}
		if e.Type == tar.TypeReg {
			hdr.Size = int64(len(e.Body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if e.Type == tar.TypeReg {
			if _, err := io.WriteString(tw, e.Body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Gzip compresses b.
func Gzip(t testing.TB, b []byte) []byte {
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
