// Package untar unpacks tar and gzip-compressed tar streams from untrusted
// sources into a directory: all or nothing (through a staging directory),
// never writing outside the destination, bounded by limits, and
// cancellable by a context. It is the one tar extractor of the server:
// upload-batch and the agent installer both use it.
package untar

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/sandbox-agent-go/sandbox-agent/internal/ctxsync"
	"github.com/sandbox-agent-go/sandbox-agent/internal/rawpath"
)

// Limit names a bound of Limits in a *LimitError.
type Limit string

// The limits an archive can exceed.
const (
	LimitBytes     Limit = "bytes"      // Limits.MaxBytes
	LimitFileBytes Limit = "file-bytes" // Limits.MaxFileBytes
	LimitEntries   Limit = "entries"    // Limits.MaxEntries
	LimitDepth     Limit = "depth"      // Limits.MaxDepth
	LimitPathBytes Limit = "path-bytes" // Limits.MaxPathBytes
)

// Limits bound one archive. Zero fields are unlimited. Sizes are logical:
// a sparse file's holes count although they are not written as blocks.
type Limits struct {
	// MaxBytes caps the bytes of all entries together.
	MaxBytes int64
	// MaxFileBytes caps the bytes of each entry.
	MaxFileBytes int64
	// MaxEntries caps the archive's entries, skipped types included.
	MaxEntries int
	// MaxDepth caps the components of an entry's name.
	MaxDepth int
	// MaxPathBytes caps the length of an entry's name and link target.
	MaxPathBytes int
}

// Options configure Extract.
type Options struct {
	Limits Limits
	// MaxListed caps Result.Paths; entries beyond it set Result.Truncated
	// (0 lists none).
	MaxListed int
	// StagingPrefix starts the name of the staging directory (default
	// ".untar-"), so callers can recognise a leftover one as theirs.
	StagingPrefix string
	// ResolveDotDot accepts entry names and hard link targets with ".."
	// components that stay inside dest, resolved lexically ("a/b/../c" is
	// "a/c"), as tar(1) does; otherwise any ".." component is refused.
	ResolveDotDot bool
	// Buf is the copy buffer (default: 32 KiB allocated per call).
	Buf []byte
	// Log receives debug notes on skipped entries and cleanup failures
	// (default slog.Default()).
	Log *slog.Logger
}

// Result is what Extract unpacked.
type Result struct {
	// Paths are the extracted entries (dest joined with the entry's
	// cleaned name), at most Options.MaxListed of them.
	Paths []string
	// Truncated reports that Paths was capped.
	Truncated bool
	// DirOps counts the directory syscalls (fstatat, mkdirat, openat) of
	// path resolution, so a test can check that it is linear in depth.
	DirOps int
}

// LimitError reports an archive that exceeds one of its Limits.
type LimitError struct {
	Limit Limit
	Max   int64  // the limit's value
	Msg   string // what exceeded it
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("%s (limit %s: %d)", e.Msg, e.Limit, e.Max)
}

// InvalidError reports an entry refused as hostile or malformed: a name
// that is absolute or climbs with "..", a link leading outside dest, an
// entry through a symlink.
type InvalidError struct{ Msg string }

func (e *InvalidError) Error() string { return e.Msg }

// PathError reports a filesystem failure on Path (within or next to dest).
type PathError struct {
	Path string
	Err  error
}

func (e *PathError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *PathError) Unwrap() error { return e.Err }

// ReadError reports a failure to read the archive: the source failed, or
// the stream is not a valid (gzip-compressed) tar. Its text is Err's.
type ReadError struct{ Err error }

func (e *ReadError) Error() string { return e.Err.Error() }
func (e *ReadError) Unwrap() error { return e.Err }

func limitErr(l Limit, max int64, msg string) error { return &LimitError{Limit: l, Max: max, Msg: msg} }

func invalid(msg string) error { return &InvalidError{Msg: msg} }

// pathErr wraps a filesystem failure; an error already classified (a
// refusal found while resolving the path) is passed through.
func pathErr(p string, err error) error {
	if classified(err) {
		return err
	}
	return &PathError{Path: p, Err: err}
}

// readErr wraps an archive read failure; the stream cap's *LimitError (it
// surfaces as a read error of the tar reader) is passed through.
func readErr(err error) error {
	if classified(err) {
		return err
	}
	return &ReadError{Err: err}
}

func classified(err error) bool {
	var (
		le *LimitError
		ie *InvalidError
		pe *PathError
		re *ReadError
	)
	return errors.As(err, &le) || errors.As(err, &ie) || errors.As(err, &pe) || errors.As(err, &re)
}

// metaBytesPerEntry is the archive metadata (headers, PAX records, long
// names) allowed per permitted entry on top of MaxBytes: the tar stream
// itself is capped so a run of headers without entries cannot be fed
// forever. 8 KiB covers a 4 KiB name plus a 4 KiB link target.
const metaBytesPerEntry = 8 << 10

// Extract unpacks a tar or gzip-compressed tar stream (recognised by its
// magic bytes) into dest in two phases, so a failed, refused or cancelled
// extraction leaves dest as it was:
//
//  1. every entry is written into a fresh staging directory — inside dest
//     when dest exists (so the final renames stay on one filesystem),
//     otherwise next to it. Each entry is checked against the staging tree
//     and against dest as it stands (which is only read);
//  2. once the whole archive has been read and checked, the staged entries
//     are renamed into place: a directory dest lacks moves as a whole, one
//     it has is merged entry by entry, a file or link replaces what is
//     there (never written through). A new dest is a single rename.
//
// On any failure before phase 2 the staging directory is removed and dest
// is untouched. Phase 2 cannot fail on what phase 1 checked; it fails only
// when dest is changed concurrently (or on an I/O error), and then the
// entries moved so far stay. A symlink that escapes only through a
// pre-existing symlink of dest is caught after phase 2 and removed.
//
// Path resolution walks one directory descriptor per component, kept on a
// stack from entry to entry, so the work per entry is linear in its depth
// (not quadratic as re-resolving every prefix from the root is). On top of
// that:
//   - names that are absolute or contain ".." are rejected (*InvalidError);
//   - no entry is created through a symlink (pre-existing or extracted);
//   - symlink targets must stay inside dest, lexically when created and
//     physically once the archive is complete;
//   - hard links must name an earlier non-symlink entry, or a file already
//     in dest;
//   - an existing file or link at an entry's name is replaced, never
//     written through.
//
// ctx is checked for every chunk read from the archive and every chunk
// written (including the zeros of sparse holes, which are skipped, not
// written), so a cancelled caller (a client that went away) stops the
// extraction at once.
func Extract(ctx context.Context, dest string, body io.Reader, opts Options) (res Result, err error) {
	res.Paths = []string{}
	if opts.Buf == nil {
		opts.Buf = make([]byte, 32<<10)
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.StagingPrefix == "" {
		opts.StagingPrefix = ".untar-"
	}
	x := &extractor{ctx: ctx, dest: dest, opts: opts}
	defer func() {
		res.DirOps = x.walkOps
	}()

	br := bufio.NewReaderSize(ctxsync.Reader(ctx, body), 64<<10)
	var src io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, zerr := gzip.NewReader(br)
		if zerr != nil {
			return res, readErr(zerr)
		}
		defer zr.Close()
		src = ctxsync.Reader(ctx, zr)
	}
	if l := opts.Limits; l.MaxBytes > 0 {
		entries := int64(l.MaxEntries)
		if entries <= 0 {
			entries = 1 << 16 // no entry limit: still bound the metadata
		}
		meta := metaBytesPerEntry * entries
		src = &streamCap{r: src, left: l.MaxBytes + meta, limit: l.MaxBytes}
	}

	st, err := newStaging(dest, opts.StagingPrefix)
	if err != nil {
		return res, err
	}
	x.st = st
	defer func() {
		x.stage.close()
		x.destDirs.close()
		if err != nil {
			st.abort(opts.Log)
		}
		st.close()
	}()
	x.stage.init(st.stageFd)
	x.checkDest = st.destFd >= 0
	if x.checkDest {
		x.destDirs.init(st.destFd)
	}

	tr := tar.NewReader(src)
	for {
		hdr, nerr := tr.Next()
		if nerr == io.EOF {
			break
		}
		if nerr != nil {
			return res, readErr(nerr)
		}
		name, err := x.check(hdr)
		if err != nil {
			return res, err
		}
		if name == "" {
			continue // the "./" root entry
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			err = x.dir(name, hdr)
		case tar.TypeReg, tar.TypeCont, tar.TypeGNUSparse:
			err = x.file(name, hdr, tr)
		case tar.TypeSymlink:
			err = x.symlink(name, hdr)
		case tar.TypeLink:
			err = x.hardlink(name, hdr)
		default:
			// Devices, FIFOs and unknown types are not extracted.
			opts.Log.Debug("untar: skipping entry", "name", hdr.Name, "type", string(hdr.Typeflag))
			continue
		}
		if err != nil {
			return res, err
		}
		if len(res.Paths) < opts.MaxListed {
			res.Paths = append(res.Paths, rawpath.Join(dest, name))
		} else {
			res.Truncated = true
		}
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	x.stage.close()
	x.destDirs.close()
	if err := x.verifyStagedLinks(); err != nil {
		return res, err
	}
	if err := st.commit(x); err != nil {
		return res, err
	}
	return res, x.verifyLinks()
}

// streamCap bounds the (decompressed) tar stream: entry data is limited
// exactly by the header checks, this catches endless metadata.
type streamCap struct {
	r     io.Reader
	left  int64
	limit int64
}

func (s *streamCap) Read(p []byte) (int, error) {
	if s.left <= 0 {
		return 0, overBytes(s.limit, "the archive stream is larger than its entries allow")
	}
	if int64(len(p)) > s.left {
		p = p[:s.left]
	}
	n, err := s.r.Read(p)
	s.left -= int64(n)
	return n, err
}

func overBytes(max int64, msg string) error {
	return &LimitError{Limit: LimitBytes, Max: max, Msg: msg}
}

// headerOnly are the types whose size the tar reader ignores (no data).
func headerOnly(t byte) bool {
	switch t {
	case tar.TypeLink, tar.TypeSymlink, tar.TypeChar, tar.TypeBlock, tar.TypeDir, tar.TypeFifo:
		return true
	}
	return false
}

// shorten keeps messages bounded when they quote a hostile name.
func shorten(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// check applies the limits to one header and returns its cleaned name.
func (x *extractor) check(hdr *tar.Header) (string, error) {
	l := x.opts.Limits
	x.entries++
	if l.MaxEntries > 0 && x.entries > l.MaxEntries {
		return "", limitErr(LimitEntries, int64(l.MaxEntries), "the archive has more entries")
	}
	if l.MaxPathBytes > 0 && (len(hdr.Name) > l.MaxPathBytes || len(hdr.Linkname) > l.MaxPathBytes) {
		return "", limitErr(LimitPathBytes, int64(l.MaxPathBytes), "archive entry name or link target too long: "+shorten(hdr.Name))
	}
	name, ok := x.clean(hdr.Name)
	if !ok || strings.IndexByte(name, 0) >= 0 {
		return "", invalid("invalid relative path: " + shorten(hdr.Name))
	}
	if l.MaxDepth > 0 && strings.Count(name, "/")+1 > l.MaxDepth && name != "" {
		return "", limitErr(LimitDepth, int64(l.MaxDepth), "archive entry path too deep: "+shorten(hdr.Name))
	}
	if !headerOnly(hdr.Typeflag) && hdr.Size > 0 {
		if m := x.opts.Limits.MaxFileBytes; m > 0 && hdr.Size > m {
			return "", limitErr(LimitFileBytes, m,
				fmt.Sprintf("archive entry %s is %d bytes", shorten(hdr.Name), hdr.Size))
		}
		if m := l.MaxBytes; m > 0 && x.declared+hdr.Size > m {
			return "", overBytes(m, "the archive's entries add up to more")
		}
		x.declared += hdr.Size
	}
	return name, nil
}

type extractor struct {
	ctx       context.Context
	dest      string
	opts      Options
	st        *staging
	stage     dirStack // open directories of the staging tree
	destDirs  dirStack // the same path in dest, as far as it exists there
	checkDest bool     // dest existed: entries are checked against it
	links     []string // symlinks created, verified at the end
	entries   int
	declared  int64 // logical bytes announced by the headers so far
	walkOps   int
}

// dirStack is the chain of open directory descriptors from a root down to
// the directory of the last entry: consecutive entries of an archive
// mostly share their parents, which are then not resolved again.
type dirStack struct {
	names []string
	fds   []int // fds[0] is the root (not owned); fds[i+1] is names[i]
}

func (s *dirStack) init(root int) { s.names, s.fds = s.names[:0], append(s.fds[:0], root) }
func (s *dirStack) top() int      { return s.fds[len(s.fds)-1] }
func (s *dirStack) depth() int    { return len(s.names) }

func (s *dirStack) push(name string, fd int) {
	s.names = append(s.names, name)
	s.fds = append(s.fds, fd)
}

// pop closes directories until depth n is left.
func (s *dirStack) pop(n int) {
	for len(s.names) > n {
		_ = unix.Close(s.fds[len(s.fds)-1])
		s.fds = s.fds[:len(s.fds)-1]
		s.names = s.names[:len(s.names)-1]
	}
}

func (s *dirStack) close() {
	if len(s.fds) > 0 {
		s.pop(0)
	}
}

// isEscape recognises os.Root's refusal to leave the root.
func isEscape(err error) bool {
	return err != nil && strings.Contains(err.Error(), "path escapes from parent")
}

func (x *extractor) fsErr(rel string, err error) error {
	if isEscape(err) {
		return invalid("path escapes destination: " + rel)
	}
	return pathErr(rawpath.Join(x.dest, rel), err)
}

func traversesSymlink(orig string) error {
	return invalid("archive entry traverses a symlink: " + shorten(orig))
}

// errMissing reports a component that does not exist (and was not to be
// created).
var errMissing = errors.New("missing")

func ignoringEINTR(f func() error) error {
	for {
		if err := f(); err != syscall.EINTR {
			return err
		}
	}
}

func lstatAt(dirfd int, name string, st *unix.Stat_t) error {
	return ignoringEINTR(func() error { return unix.Fstatat(dirfd, name, st, unix.AT_SYMLINK_NOFOLLOW) })
}

func openDirAt(dirfd int, name string) (int, error) {
	var fd int
	err := ignoringEINTR(func() (err error) {
		fd, err = unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		return err
	})
	return fd, err
}

func isDir(st *unix.Stat_t) bool  { return st.Mode&unix.S_IFMT == unix.S_IFDIR }
func isLink(st *unix.Stat_t) bool { return st.Mode&unix.S_IFMT == unix.S_IFLNK }

// relPath names comps[:n] in errors. It is only built when one is
// reported: joining the prefix for every component would make a deep
// entry cost quadratic time again.
type relPath struct {
	comps []string
	n     int
}

func (r relPath) String() string { return strings.Join(r.comps[:r.n], "/") }

// stepDir opens directory name under parent, refusing symlinks and
// creating it (with perm) when create is set. relp names it in errors.
func (x *extractor) stepDir(parent int, name string, relp relPath, orig string, create bool, perm uint32) (int, error) {
	for attempt := 0; ; attempt++ {
		var st unix.Stat_t
		x.walkOps++
		err := lstatAt(parent, name, &st)
		switch {
		case err == nil && isLink(&st):
			return -1, traversesSymlink(orig)
		case err == nil && !isDir(&st):
			return -1, x.fsErr(relp.String(), &fs.PathError{Op: "mkdir", Path: relp.String(), Err: syscall.EEXIST})
		case err == nil:
		case err != unix.ENOENT:
			return -1, x.fsErr(relp.String(), err)
		case !create:
			return -1, errMissing
		default:
			x.walkOps++
			err = ignoringEINTR(func() error { return unix.Mkdirat(parent, name, perm) })
			if err == unix.EEXIST && attempt == 0 {
				continue // lost a race with a concurrent creator: look again
			}
			if err != nil {
				return -1, x.fsErr(relp.String(), err)
			}
		}
		x.walkOps++
		fd, err := openDirAt(parent, name)
		if err == unix.ELOOP {
			return -1, traversesSymlink(orig) // swapped for a symlink meanwhile
		}
		if err != nil {
			return -1, x.fsErr(relp.String(), err)
		}
		return fd, nil
	}
}

// enter makes the stacks stand at directory comps (created in the staging
// tree as needed, the last one with lastPerm) and returns its staging
// descriptor and its dest descriptor (-1 when dest has no such directory).
// Each component already on the stack costs nothing, each new one a
// constant number of syscalls in each tree.
func (x *extractor) enter(comps []string, orig string, lastPerm uint32) (int, int, error) {
	k := 0
	for k < len(comps) && k < x.stage.depth() && x.stage.names[k] == comps[k] {
		k++
	}
	x.stage.pop(k)
	if x.checkDest {
		x.destDirs.pop(min(k, x.destDirs.depth()))
	}
	for i := k; i < len(comps); i++ {
		rel := relPath{comps, i + 1}
		if x.checkDest && x.destDirs.depth() == i {
			fd, err := x.stepDir(x.destDirs.top(), comps[i], rel, orig, false, 0)
			switch {
			case err == nil:
				x.destDirs.push(comps[i], fd)
			case err != errMissing:
				return -1, -1, err
			}
		}
		perm := uint32(0o777)
		if i == len(comps)-1 {
			perm = lastPerm
		}
		fd, err := x.stepDir(x.stage.top(), comps[i], rel, orig, true, perm)
		if err != nil {
			return -1, -1, err
		}
		x.stage.push(comps[i], fd)
	}
	destFd := -1
	if x.checkDest && x.destDirs.depth() == len(comps) {
		destFd = x.destDirs.top()
	}
	return x.stage.top(), destFd, nil
}

// enterParent enters the directory of name and returns its last component.
func (x *extractor) enterParent(name, orig string) (stageFd, destFd int, base string, err error) {
	comps := strings.Split(name, "/")
	stageFd, destFd, err = x.enter(comps[:len(comps)-1], orig, 0o777)
	return stageFd, destFd, comps[len(comps)-1], err
}

// prepare makes room for a non-directory entry at base: a directory in
// dest or in the staging tree is an error, an earlier staged file or link
// is removed (never opened, so never written through).
func (x *extractor) prepare(stageFd, destFd int, base, name string) error {
	var st unix.Stat_t
	if destFd >= 0 {
		if err := lstatAt(destFd, base, &st); err == nil && isDir(&st) {
			return x.fsErr(name, &fs.PathError{Op: "open", Path: name, Err: syscall.EISDIR})
		}
	}
	err := lstatAt(stageFd, base, &st)
	switch {
	case err == unix.ENOENT:
		return nil
	case err != nil:
		return x.fsErr(name, err)
	case isDir(&st):
		return x.fsErr(name, &fs.PathError{Op: "open", Path: name, Err: syscall.EISDIR})
	}
	if err := ignoringEINTR(func() error { return unix.Unlinkat(stageFd, base, 0) }); err != nil {
		return x.fsErr(name, err)
	}
	return nil
}

func (x *extractor) dir(name string, hdr *tar.Header) error {
	perm := uint32(hdr.Mode) & 0o777
	if perm == 0 {
		perm = 0o755
	}
	_, _, err := x.enter(strings.Split(name, "/"), hdr.Name, perm|0o700)
	return err
}

func (x *extractor) file(name string, hdr *tar.Header, r io.Reader) error {
	pfd, dfd, base, err := x.enterParent(name, hdr.Name)
	if err != nil {
		return err
	}
	if err := x.prepare(pfd, dfd, base, name); err != nil {
		return err
	}
	perm := uint32(hdr.Mode) & 0o777
	if perm == 0 {
		perm = 0o644
	}
	var fd int
	err = ignoringEINTR(func() (err error) {
		fd, err = unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm)
		return err
	})
	if err != nil {
		return x.fsErr(name, err)
	}
	f := os.NewFile(uintptr(fd), rawpath.Join(x.dest, name))
	err = x.copyData(f, r)
	cerr := f.Close()
	if err != nil {
		var re *ReadError
		var le *LimitError
		if errors.As(err, &re) || errors.As(err, &le) {
			return err
		}
		return x.fsErr(name, err)
	}
	if cerr != nil {
		return x.fsErr(name, cerr)
	}
	if !hdr.ModTime.IsZero() {
		atime := hdr.AccessTime
		if atime.IsZero() {
			atime = hdr.ModTime
		}
		ts := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
		if err := unix.UtimesNanoAt(pfd, base, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			x.opts.Log.Debug("untar: setting mtime", "name", name, "err", err)
		}
	}
	return nil
}

// zeros is compared against to find holes; never written to.
var zeros = make([]byte, 64<<10)

func allZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeros))
		if !bytes.Equal(b[:n], zeros[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

// copyData copies one entry into f chunk by chunk, checking ctx for every
// chunk. All-zero chunks (a sparse file's holes, or runs of zeros) are
// skipped rather than written, so they take no blocks; the file is
// extended to its full size at the end. Read failures come back as
// a *ReadError (or the *LimitError of the stream cap).
func (x *extractor) copyData(f *os.File, r io.Reader) error {
	buf := x.opts.Buf
	var off, end int64
	for {
		if err := x.ctx.Err(); err != nil {
			return err
		}
		n, rerr := fill(r, buf)
		if n > 0 {
			chunk := buf[:n]
			if !allZero(chunk) {
				if _, err := f.WriteAt(chunk, off); err != nil {
					return err
				}
				end = off + int64(n)
			}
			off += int64(n)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return readErr(rerr)
		}
	}
	if end < off {
		return f.Truncate(off)
	}
	return nil
}

// fill reads into buf until it is full or r fails (io.EOF at the entry's
// end), so holes are recognised in whole buffers.
func fill(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// linkStaysInside reports whether a symlink at name pointing to target
// resolves inside the root, judged lexically (absolute targets never do:
// the destination could move, and os.Root refuses to follow them).
func linkStaysInside(name, target string) bool {
	if target == "" || strings.HasPrefix(target, "/") || strings.IndexByte(target, 0) >= 0 {
		return false
	}
	j := path.Join(path.Dir(name), target)
	return j != ".." && !strings.HasPrefix(j, "../")
}

func (x *extractor) symlink(name string, hdr *tar.Header) error {
	if !linkStaysInside(name, hdr.Linkname) {
		return invalid("symlink escapes destination: " + shorten(hdr.Name) + " -> " + shorten(hdr.Linkname))
	}
	pfd, dfd, base, err := x.enterParent(name, hdr.Name)
	if err != nil {
		return err
	}
	if err := x.prepare(pfd, dfd, base, name); err != nil {
		return err
	}
	if err := ignoringEINTR(func() error { return unix.Symlinkat(hdr.Linkname, pfd, base) }); err != nil {
		return x.fsErr(name, err)
	}
	x.links = append(x.links, name)
	return nil
}

// walk opens directory comps under root without creating anything (its
// own descriptor, the stacks are left alone).
func (x *extractor) walk(root int, comps []string, orig string) (int, error) {
	x.walkOps++
	fd, err := openDirAt(root, ".")
	if err != nil {
		return -1, x.fsErr(".", err)
	}
	for i, c := range comps {
		next, err := x.stepDir(fd, c, relPath{comps, i + 1}, orig, false, 0)
		_ = unix.Close(fd)
		if err != nil {
			return -1, err
		}
		fd = next
	}
	return fd, nil
}

// findLinkSource locates a hard link's source: the staged entry if the
// archive made one, else a file already in dest. It returns the open
// directory holding it.
func (x *extractor) findLinkSource(src, orig string) (int, string, *unix.Stat_t, error) {
	comps := strings.Split(src, "/")
	base := comps[len(comps)-1]
	roots := []int{x.st.stageFd}
	if x.checkDest {
		roots = append(roots, x.st.destFd)
	}
	for _, root := range roots {
		fd, err := x.walk(root, comps[:len(comps)-1], orig)
		if err == errMissing {
			continue
		}
		if err != nil {
			return -1, "", nil, err
		}
		var st unix.Stat_t
		err = lstatAt(fd, base, &st)
		if err == unix.ENOENT {
			_ = unix.Close(fd)
			continue
		}
		if err != nil {
			_ = unix.Close(fd)
			return -1, "", nil, x.fsErr(src, err)
		}
		return fd, base, &st, nil
	}
	return -1, "", nil, x.fsErr(src, fs.ErrNotExist)
}

func (x *extractor) hardlink(name string, hdr *tar.Header) error {
	src, ok := x.clean(hdr.Linkname)
	if !ok || src == "" || strings.IndexByte(src, 0) >= 0 {
		return invalid("hard link escapes destination: " + shorten(hdr.Name) + " -> " + shorten(hdr.Linkname))
	}
	if m := x.opts.Limits.MaxDepth; m > 0 && strings.Count(src, "/")+1 > m {
		return limitErr(LimitDepth, int64(m), "hard link target too deep: "+shorten(hdr.Linkname))
	}
	sfd, sbase, st, err := x.findLinkSource(src, hdr.Name)
	if err != nil {
		return err
	}
	defer unix.Close(sfd)
	if isLink(st) {
		// A second link to a relative symlink elsewhere in the tree would
		// resolve differently; refuse rather than re-validate.
		return invalid("hard link to a symlink: " + shorten(hdr.Name) + " -> " + shorten(hdr.Linkname))
	}
	if isDir(st) {
		return x.fsErr(src, &fs.PathError{Op: "link", Path: src, Err: syscall.EPERM})
	}
	if src == name {
		return nil
	}
	pfd, dfd, base, err := x.enterParent(name, hdr.Name)
	if err != nil {
		return err
	}
	if err := x.prepare(pfd, dfd, base, name); err != nil {
		return err
	}
	if err := ignoringEINTR(func() error { return unix.Linkat(sfd, sbase, pfd, base, 0) }); err != nil {
		return x.fsErr(name, err)
	}
	return nil
}

// verifyStagedLinks resolves every extracted symlink physically. A link
// that only escapes through other links (say "a -> ." then "b -> a/..")
// passes the lexical check; here it is caught and the archive refused. A
// link that does not resolve within the staged tree may resolve through
// what dest already holds, so it is resolved there too.
func (x *extractor) verifyStagedLinks() error {
	if len(x.links) == 0 {
		return nil
	}
	root, err := os.OpenRoot(x.st.stagePath)
	if err != nil {
		return pathErr(x.st.stagePath, err)
	}
	defer root.Close()
	var destRoot *os.Root
	if x.checkDest {
		if destRoot, err = os.OpenRoot(x.dest); err != nil {
			return pathErr(x.dest, err)
		}
		defer destRoot.Close()
	}
	for _, l := range x.links {
		_, err := root.Stat(l)
		if isEscape(err) {
			return invalid("symlink escapes destination: " + shorten(l))
		}
		if err == nil || destRoot == nil {
			continue
		}
		target, rerr := root.Readlink(l)
		if rerr != nil {
			continue
		}
		if _, err := destRoot.Stat(path.Join(path.Dir(l), target)); isEscape(err) {
			return invalid("symlink escapes destination: " + shorten(l))
		}
	}
	return nil
}

// verifyLinks re-checks the links in place after the commit: dest may
// have changed meanwhile. An escaping link is removed and reported.
func (x *extractor) verifyLinks() error {
	if len(x.links) == 0 {
		return nil
	}
	root, err := os.OpenRoot(x.dest)
	if err != nil {
		return pathErr(x.dest, err)
	}
	defer root.Close()
	var first string
	for _, l := range x.links {
		if _, err := root.Stat(l); isEscape(err) {
			if first == "" {
				first = l
			}
			if rerr := root.Remove(l); rerr != nil {
				x.opts.Log.Warn("untar: removing escaping symlink", "name", l, "err", rerr)
			}
		}
	}
	if first != "" {
		return invalid("symlink escapes destination: " + shorten(first))
	}
	return nil
}

// staging is the directory an archive is extracted into before it is
// committed to dest.
type staging struct {
	dest      string
	stagePath string
	stageName string   // its name in its parent
	fresh     bool     // dest did not exist: commit renames the staging dir
	created   []string // ancestors of dest made for it, deepest first
	destFd    int      // -1 when fresh
	stageFd   int
	parentFd  int // the staging dir's parent
}

func stagingName(prefix string) string {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	return prefix + hex.EncodeToString(rnd[:])
}

// newStaging creates the staging directory for dest: inside dest when it
// exists (same filesystem, so every commit rename is atomic), next to it
// (a hidden sibling) when it does not.
func newStaging(dest, prefix string) (*staging, error) {
	s := &staging{dest: dest, destFd: -1, stageFd: -1, parentFd: -1}
	fi, err := os.Stat(dest)
	switch {
	case err == nil && fi.IsDir():
		if s.destFd, err = unix.Open(dest, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
			return nil, pathErr(dest, err)
		}
		s.parentFd = s.destFd
		s.stagePath = dest
	case err == nil:
		return nil, pathErr(dest, &fs.PathError{Op: "mkdir", Path: dest, Err: syscall.EEXIST})
	case errors.Is(err, fs.ErrNotExist):
		if _, lerr := os.Lstat(dest); lerr == nil { // a dangling symlink
			return nil, pathErr(dest, &fs.PathError{Op: "mkdir", Path: dest, Err: syscall.EEXIST})
		}
		s.fresh = true
		parent := rawpath.Parent(dest)
		if parent == "" {
			parent = "."
		}
		for q := parent; q != "" && q != "."; q = rawpath.Parent(q) {
			if _, err := os.Lstat(q); err == nil {
				break
			}
			s.created = append(s.created, q)
		}
		if err := rawpath.MkdirAll(parent); err != nil {
			s.removeCreated()
			return nil, pathErr(parent, err)
		}
		if s.parentFd, err = unix.Open(parent, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
			s.removeCreated()
			return nil, pathErr(parent, err)
		}
		s.stagePath = parent
	default:
		return nil, pathErr(dest, err)
	}
	base := ""
	if s.fresh {
		base = "." + rawpath.Base(dest)
		if len(base) > 180 {
			base = base[:180]
		}
	}
	perm := uint32(0o700) // private while incomplete; a fresh dest gets 0o777 &^ umask at commit
	for range 3 {
		s.stageName = base + stagingName(prefix)
		err = unix.Mkdirat(s.parentFd, s.stageName, perm)
		if err != unix.EEXIST {
			break
		}
	}
	if err != nil {
		s.close()
		s.removeCreated()
		return nil, pathErr(rawpath.Join(s.stagePath, s.stageName), err)
	}
	s.stagePath = rawpath.Join(s.stagePath, s.stageName)
	if s.stageFd, err = openDirAt(s.parentFd, s.stageName); err != nil {
		s.abort(slog.Default())
		s.close()
		return nil, pathErr(s.stagePath, err)
	}
	return s, nil
}

// commit moves the staged tree into dest.
func (s *staging) commit(x *extractor) error {
	if s.fresh {
		if err := umaskChmod(s.stageFd); err != nil {
			return pathErr(s.dest, err)
		}
		err := ignoringEINTR(func() error { return unix.Renameat(s.parentFd, s.stageName, s.parentFd, rawpath.Base(s.dest)) })
		if err == nil {
			s.created = nil
			_ = unix.Fsync(s.parentFd)
			return nil
		}
		if err != unix.EEXIST && err != unix.ENOTEMPTY {
			return pathErr(s.dest, err)
		}
		// dest appeared meanwhile: merge into it.
		if s.destFd, err = unix.Open(s.dest, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
			return pathErr(s.dest, err)
		}
		s.created = nil
	}
	if err := x.merge(s.stageFd, s.destFd, ""); err != nil {
		return err
	}
	_ = unix.Fsync(s.destFd)
	// Empty now; the deferred abort is not run on success, so remove it here.
	if err := unix.Unlinkat(s.parentFd, s.stageName, unix.AT_REMOVEDIR); err != nil {
		_ = os.RemoveAll(s.stagePath)
	}
	return nil
}

// umaskChmod gives a fresh destination the mode a plain mkdir would
// (0o777 less the umask, which is read from /proc to avoid changing it).
func umaskChmod(fd int) error {
	mask := uint32(0o022)
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "Umask:"); ok {
				var m uint32
				if _, err := fmt.Sscanf(strings.TrimSpace(v), "%o", &m); err == nil {
					mask = m
				}
			}
		}
	}
	return unix.Fchmod(fd, 0o777&^mask)
}

// merge renames the entries of staged directory sfd into dfd: what dest
// lacks moves whole, directories both have are merged, files and links
// replace what is there.
func (x *extractor) merge(sfd, dfd int, rel string) error {
	dup, err := unix.Dup(sfd)
	if err != nil {
		return pathErr(x.dest, err)
	}
	d := os.NewFile(uintptr(dup), "staging")
	names, err := d.Readdirnames(-1)
	_ = d.Close()
	if err != nil {
		return pathErr(x.dest, err)
	}
	for _, n := range names {
		r := n
		if rel != "" {
			r = rel + "/" + n
		}
		var ss, ds unix.Stat_t
		if err := lstatAt(sfd, n, &ss); err != nil {
			return x.fsErr(r, err)
		}
		derr := lstatAt(dfd, n, &ds)
		switch {
		case derr != nil && derr != unix.ENOENT:
			return x.fsErr(r, derr)
		case derr == nil && isDir(&ss) && isDir(&ds):
			if err := x.mergeDir(sfd, dfd, n, r); err != nil {
				return err
			}
			continue
		case derr == nil && isDir(&ss):
			// Checked in phase 1: dest changed meanwhile.
			return x.fsErr(r, &fs.PathError{Op: "rename", Path: r, Err: syscall.EEXIST})
		case derr == nil && isDir(&ds):
			return x.fsErr(r, &fs.PathError{Op: "rename", Path: r, Err: syscall.EISDIR})
		}
		if err := ignoringEINTR(func() error { return unix.Renameat(sfd, n, dfd, n) }); err != nil {
			return x.fsErr(r, err)
		}
	}
	return nil
}

func (x *extractor) mergeDir(sfd, dfd int, n, rel string) error {
	s, err := openDirAt(sfd, n)
	if err != nil {
		return x.fsErr(rel, err)
	}
	defer unix.Close(s)
	d, err := openDirAt(dfd, n)
	if err == unix.ELOOP {
		return traversesSymlink(rel)
	}
	if err != nil {
		return x.fsErr(rel, err)
	}
	defer unix.Close(d)
	return x.merge(s, d, rel)
}

// abort removes the staging directory and the ancestors made for dest.
func (s *staging) abort(log *slog.Logger) {
	if s.stagePath != "" && s.stageName != "" {
		if err := os.RemoveAll(s.stagePath); err != nil {
			log.Warn("untar: removing staging directory", "path", s.stagePath, "err", err)
		}
	}
	s.removeCreated()
}

func (s *staging) removeCreated() {
	for _, d := range s.created {
		_ = syscall.Rmdir(d) // only if still empty
	}
	s.created = nil
}

func (s *staging) close() {
	if s.parentFd >= 0 && s.parentFd != s.destFd {
		_ = unix.Close(s.parentFd)
	}
	s.parentFd = -1
	for _, fd := range []*int{&s.stageFd, &s.destFd} {
		if *fd >= 0 {
			_ = unix.Close(*fd)
			*fd = -1
		}
	}
}

// clean is an entry name (or hard link target) relative to dest, without
// "." and empty components; false when it is absolute or climbs out of
// dest (with Options.ResolveDotDot), or has any ".." component (without).
func (x *extractor) clean(name string) (string, bool) {
	rel, ok := rawpath.CleanRelative(name)
	if ok || !x.opts.ResolveDotDot || strings.HasPrefix(name, "/") {
		return rel, ok
	}
	// path.Clean resolves ".." lexically, which is safe here: no entry is
	// ever created through a symlink, so "a/../b" cannot land elsewhere
	// than b even when a is a link.
	switch rel = path.Clean(name); {
	case rel == "..", strings.HasPrefix(rel, "../"):
		return "", false
	case rel == ".":
		return "", true
	}
	return rel, true
}
