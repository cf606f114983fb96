package fsapi

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"syscall"

	"github.com/sandbox-agent-go/sandbox-agent/internal/httpjson"
	"github.com/sandbox-agent-go/sandbox-agent/internal/problem"
	"github.com/sandbox-agent-go/sandbox-agent/internal/rawpath"
)

// bodyReader remembers the error the request body returned, so a failed
// copy can tell a broken upload (the client's fault) from a failed write.
type bodyReader struct {
	r   io.Reader
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

// writerOnly hides *os.File's ReadFrom so io.CopyBuffer uses our buffer.
type writerOnly struct{ io.Writer }

// bodyReadError wraps a failure on the request-body side of a copy.
type bodyReadError struct{ err error }

func (e *bodyReadError) Error() string { return e.err.Error() }
func (e *bodyReadError) Unwrap() error { return e.err }

// copyInto copies body into f: a hijacked upload is spliced from its
// socket, anything else goes through buf. Body-side failures come back as
// *bodyReadError.
func copyInto(f *os.File, body io.Reader, buf []byte) (int64, error) {
	if sb, ok := body.(*spliceBody); ok {
		n, err := sb.writeTo(f)
		var se *spliceReadError
		if errors.As(err, &se) {
			return n, &bodyReadError{sb.describe(se.err)}
		}
		return n, err
	}
	br := &bodyReader{r: body}
	n, err := io.CopyBuffer(writerOnly{f}, br, buf)
	if err != nil && br.err != nil {
		return n, &bodyReadError{br.err}
	}
	return n, err
}

// bodyError maps a request-body read failure to upstream's text answers;
// a failure that already is a problem (the server's 408 for a stalled
// body, a splice idle timeout) is passed through as such.
func bodyError(err error) error {
	var p *problem.Problem
	if errors.As(err, &p) {
		return p
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return &httpjson.TextError{Status: http.StatusRequestEntityTooLarge, Msg: httpjson.BodyTooLargeMsg}
	}
	return &httpjson.TextError{Status: http.StatusBadRequest, Msg: "Failed to buffer the request body: " + err.Error()}
}

// followLinks resolves p through symlinks (up to the kernel's limit) the way
// open(2) would, so writing to a symlink replaces its target rather than
// the link. A dangling link resolves to the path it names.
func followLinks(p string) string {
	for range 40 {
		fi, err := os.Lstat(p)
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			return p
		}
		target, err := os.Readlink(p)
		if err != nil {
			return p
		}
		if len(target) > 0 && target[0] == '/' {
			p = target
		} else {
			p = rawpath.Join(rawpath.Parent(p), target)
		}
	}
	return p
}

// tempName is a unique hidden sibling of target.
func tempName(target string) string {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	base := rawpath.Base(target)
	if len(base) > 180 {
		base = base[:180]
	}
	return rawpath.Join(rawpath.Parent(target), "."+base+".sa-tmp-"+hex.EncodeToString(rnd[:]))
}

// writeAtomic streams body into p and returns the bytes written. Parents
// are created as upstream does. A regular file (or a new one) is replaced
// atomically: the data goes to a temporary sibling that is fsynced and
// renamed over p, so readers and crashes see the old or the new content,
// never a torn file, and a failed upload leaves nothing behind. Device
// files, FIFOs and bind-mounted files are written in place instead.
func writeAtomic(p string, body io.Reader, buf []byte) (int64, error) {
	if parent := rawpath.Parent(p); parent != "" {
		if err := rawpath.MkdirAll(parent); err != nil {
			return 0, fsError(parent, err)
		}
	}
	target := followLinks(p)
	existing, err := os.Lstat(target)
	switch {
	case err == nil && existing.IsDir():
		// Refuse before reading a possibly huge body.
		return 0, errnoProblem(syscall.EISDIR)
	case err == nil && !existing.Mode().IsRegular():
		return writeInPlace(target, body, buf)
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return 0, fsError(p, err)
	case err != nil:
		existing = nil
	}

	tmp := tempName(target)
	perm := os.FileMode(0o666) // umask applies, as for a plain create
	if existing != nil {
		perm = 0o600 // widened to the old mode below
	}
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_CLOEXEC, perm)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS) {
			// The directory is not writable but the file may be.
			return writeInPlace(target, body, buf)
		}
		return 0, fsError(p, err)
	}
	renamed := false
	defer func() {
		if !renamed {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	n, err := copyInto(f, body, buf)
	if err != nil {
		var be *bodyReadError
		if errors.As(err, &be) {
			return n, bodyError(be.err)
		}
		return n, fsError(p, err)
	}
	if existing != nil {
		if st, ok := existing.Sys().(*syscall.Stat_t); ok && os.Geteuid() == 0 {
			_ = f.Chown(int(st.Uid), int(st.Gid))
		}
		if err := f.Chmod(existing.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)); err != nil {
			return n, fsError(p, err)
		}
	}
	if err := f.Sync(); err != nil {
		return n, fsError(p, err)
	}
	if err := f.Close(); err != nil {
		return n, fsError(p, err)
	}
	if err := os.Rename(tmp, target); err != nil {
		if errors.Is(err, syscall.EBUSY) || errors.Is(err, syscall.EXDEV) {
			// A bind-mounted file (e.g. /etc/hosts in a container) cannot
			// be replaced; copy the finished temp file into it instead.
			src, oerr := os.Open(tmp)
			if oerr != nil {
				return n, fsError(p, oerr)
			}
			defer src.Close()
			return writeInPlace(target, src, buf)
		}
		return n, fsError(p, err)
	}
	renamed = true
	syncDir(rawpath.Parent(target))
	return n, nil
}

// writeInPlace truncates and writes target directly (upstream's behaviour).
func writeInPlace(target string, body io.Reader, buf []byte) (int64, error) {
	f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_CLOEXEC, 0o666)
	if err != nil {
		return 0, fsError(target, err)
	}
	defer f.Close()
	br := &bodyReader{r: body}
	n, err := io.CopyBuffer(writerOnly{f}, br, buf)
	if err != nil {
		if br.err != nil {
			return n, bodyError(br.err)
		}
		return n, fsError(target, err)
	}
	if err := f.Close(); err != nil {
		return n, fsError(target, err)
	}
	return n, nil
}

// syncDir makes a rename durable; failures are not fatal (the data itself
// is already on disk).
func syncDir(dir string) {
	if dir == "" {
		return
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}
