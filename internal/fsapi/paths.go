package fsapi

import (
	"errors"
	"io/fs"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/internal/problem"
	"github.com/sandbox-agent-go/sandbox-agent/internal/rawpath"
)

// resolvePath maps a request path to the filesystem path upstream uses:
// absolute paths are taken verbatim (not normalised), relative paths are
// cleaned of "." and empty components and joined to home; a relative path
// with a ".." component is rejected, and so is any path with a NUL byte.
// The empty path and "." resolve to home.
func resolvePath(home, raw string) (string, error) {
	if strings.IndexByte(raw, 0) >= 0 {
		// No system call takes it; refuse it as the client's error rather
		// than answering the kernel's EINVAL as a 502.
		return "", problem.Invalid("path contains a NUL byte")
	}
	if strings.HasPrefix(raw, "/") {
		return raw, nil
	}
	rel, ok := rawpath.CleanRelative(raw)
	if !ok {
		return "", problem.Invalid("invalid relative path: " + raw)
	}
	if rel == "" {
		return home, nil
	}
	return rawpath.Join(home, rel), nil
}

// osErrorText renders err the way Rust's io::Error displays OS errors
// ("File exists (os error 17)"), which upstream forwards to clients.
func osErrorText(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) && errno != 0 {
		s := errno.Error()
		if s != "" && s[0] >= 'a' && s[0] <= 'z' {
			s = string(s[0]-'a'+'A') + s[1:]
		}
		return s + " (os error " + strconv.Itoa(int(errno)) + ")"
	}
	return err.Error()
}

// fsError maps a filesystem error on path to upstream's answer: a missing
// path is a 400 "path not found", anything else a 502 stream_error carrying
// the OS error text.
func fsError(path string, err error) error {
	var p *problem.Problem
	if errors.As(err, &p) {
		return p
	}
	if errors.Is(err, fs.ErrNotExist) {
		return problem.Invalid("path not found: " + path)
	}
	return problem.Stream(osErrorText(err))
}

// errnoProblem is the 502 for a bare errno.
func errnoProblem(errno syscall.Errno) error { return problem.Stream(osErrorText(errno)) }

// formatModified renders t in UTC as RFC 3339 with a "+00:00" offset and
// as many fractional digits (0, 3, 6 or 9) as needed to show every non-zero
// sub-second digit — the format of chrono's DateTime::to_rfc3339, which
// upstream serialises.
func formatModified(t time.Time) string {
	t = t.UTC()
	b := make([]byte, 0, 36)
	b = t.AppendFormat(b, "2006-01-02T15:04:05")
	ns := t.Nanosecond()
	switch {
	case ns == 0:
	case ns%1_000_000 == 0:
		b = appendFrac(b, ns/1_000_000, 3)
	case ns%1_000 == 0:
		b = appendFrac(b, ns/1_000, 6)
	default:
		b = appendFrac(b, ns, 9)
	}
	return string(append(b, "+00:00"...))
}

func appendFrac(b []byte, v, digits int) []byte {
	b = append(b, '.')
	s := strconv.Itoa(v)
	for i := len(s); i < digits; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}

// entryType is upstream's FsEntryType: directories, and everything else is
// a "file" (symlinks included when not followed).
func entryType(fi fs.FileInfo) string {
	if fi.IsDir() {
		return "directory"
	}
	return "file"
}
