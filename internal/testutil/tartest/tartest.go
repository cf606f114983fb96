// Package tartest builds tar archives for the tests of the one tar
// extractor and its callers (untar, fsapi uploads, the agent installer, the
// reliability suite): plain entries with Build, and the sparse ones
// archive/tar cannot write with Sparse.
package tartest

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Sparse is an old-GNU sparse archive of one file: a hole of hole bytes
// followed by tail. archive/tar cannot write sparse entries, so a regular
// GNU header is patched (type 'S', one sparse extent, the real size).
func Sparse(t testing.TB, name string, hole int64, tail string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdr := &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(tail)), ModTime: time.Unix(1_700_000_000, 0), Format: tar.FormatGNU}
	if err := tw.WriteHeader(hdr); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(tw, tail); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	blk := b[:512]
	blk[156] = 'S'
	putNumeric(blk[386:398], hole)             // sparse[0].offset
	putNumeric(blk[398:410], int64(len(tail))) // sparse[0].numbytes
	putNumeric(blk[483:495], hole+int64(len(tail)))
	copy(blk[148:156], "        ")
	sum := 0
	for _, c := range blk {
		sum += int(c)
	}
	copy(blk[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

// putNumeric writes v as tar does: octal when it fits, else base-256.
func putNumeric(f []byte, v int64) {
	if s := strconv.FormatInt(v, 8); len(s) < len(f) {
		copy(f, strings.Repeat("0", len(f)-1-len(s))+s+"\x00")
		return
	}
	for i := len(f) - 1; i >= 0; i-- {
		f[i] = byte(v)
		v >>= 8
	}
	f[0] |= 0x80
}
