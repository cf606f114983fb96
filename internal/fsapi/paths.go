package fsapi

import (
	"errors"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/internal/problem"
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
	rel, ok := cleanRelative(raw)
	if !ok {
		return "", problem.Invalid("invalid relative path: " + raw)
	}
	if rel == "" {
		return home, nil
	}
	return joinRaw(home, rel), nil
}

// cleanRelative drops "." and empty components of a relative slash path and
// reports false when a component is "..". An absolute path is not relative.
func cleanRelative(p string) (string, bool) {
	if strings.HasPrefix(p, "/") {
		return "", false
	}
	if !strings.Contains(p, "//") && !strings.Contains(p, "./") && !strings.HasSuffix(p, "/") && !strings.HasSuffix(p, ".") && !strings.HasPrefix(p, ".") {
		// Fast path: nothing to clean (no empty, "." or ".." components).
		return p, true
	}
	var b strings.Builder
	b.Grow(len(p))
	for seg := range strings.SplitSeq(p, "/") {
		switch seg {
		case "", ".":
			continue
		case "..":
			return "", false
		}
		if b.Len() > 0 {
			b.WriteByte('/')
		}
		b.WriteString(seg)
	}
	return b.String(), true
}

// joinRaw joins a relative name to dir without normalising dir (as Rust's
// Path::join does).
func joinRaw(dir, name string) string {
	if name == "" {
		return dir
	}
	if dir == "" || strings.HasSuffix(dir, "/") {
		return dir + name
	}
	return dir + "/" + name
}

// parentRaw is the lexical parent of p (Rust's Path::parent): trailing
// slashes are ignored, "" when p has no parent.
func parentRaw(p string) string {
	for len(p) > 1 && strings.HasSuffix(p, "/") {
		p = p[:len(p)-1]
	}
	i := strings.LastIndexByte(p, '/')
	switch {
	case i < 0:
		return ""
	case i == 0:
		if p == "/" {
			return ""
		}
		return "/"
	}
	parent := p[:i]
	for len(parent) > 1 && strings.HasSuffix(parent, "/") {
		parent = parent[:len(parent)-1]
	}
	return parent
}

// baseRaw is the last component of p.
func baseRaw(p string) string {
	for len(p) > 1 && strings.HasSuffix(p, "/") {
		p = p[:len(p)-1]
	}
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

// mkdirAll is `mkdir -p` with Rust's create_dir_all error semantics: a path
// component that exists as a file reports that mkdir's own error ("File
// exists" for the last component) rather than Go's synthetic ENOTDIR.
func mkdirAll(p string) error {
	if p == "" {
		return nil
	}
	err := os.Mkdir(p, 0o777)
	if err == nil {
		return nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		parent := parentRaw(p)
		if parent == "" || parent == p {
			return err
		}
		if perr := mkdirAll(parent); perr != nil {
			return perr
		}
		if err = os.Mkdir(p, 0o777); err == nil {
			return nil
		}
	}
	if fi, serr := os.Stat(p); serr == nil && fi.IsDir() {
		return nil
	}
	return err
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
