package fsapi

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
	"net/http"
	"os"
	"path"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/sandbox-agent-go/sandbox-agent/internal/problem"
)

// maxListedPaths caps the paths upload-batch reports (upstream: 1024).
const maxListedPaths = 1024

// The names of the upload limits in problems: the server's flag names, so
// whoever reads the error knows which knob to turn.
const (
	LimitUploadBytes     = "upload-max-bytes"
	LimitUploadFileBytes = "upload-max-file-bytes"
	LimitUploadEntries   = "upload-max-entries"
	LimitUploadDepth     = "upload-max-depth"
	LimitUploadPathBytes = "upload-max-path-bytes"
)

// UploadLimits bounds one POST /v1/fs/upload-batch (the size of each entry
// is Options.MaxFileBytes). Zero fields are unlimited. Sizes are logical:
// a sparse file's holes count although they are not written as blocks.
type UploadLimits struct {
	// MaxBytes caps the bytes of all entries together (413).
	MaxBytes int64
	// MaxEntries caps the archive's entries, skipped types included (413).
	MaxEntries int
	// MaxDepth caps the components of an entry's name (400).
	MaxDepth int
	// MaxPathBytes caps the length of an entry's name and link target (400).
	MaxPathBytes int
}

// DefaultUploadLimits are the server's defaults (its --upload-max-* flags):
// room for any real source tree or dataset upload, while a hostile archive
// is stopped long before it fills a sandbox's disk or burns its CPU.
var DefaultUploadLimits = UploadLimits{
	MaxBytes:     8 << 30,
	MaxEntries:   200_000,
	MaxDepth:     256,
	MaxPathBytes: 4096, // PATH_MAX
}

// DefaultMaxFileBytes is the server's default for Options.MaxFileBytes
// (--upload-max-file-bytes).
const DefaultMaxFileBytes = 4 << 30

// metaBytesPerEntry is the archive metadata (headers, PAX records, long
// names) allowed per permitted entry on top of MaxBytes: the tar stream
// itself is capped so a run of headers without entries cannot be fed
// forever. 8 KiB covers a 4 KiB name plus a 4 KiB link target.
const metaBytesPerEntry = 8 << 10

type extractOptions struct {
	limits       UploadLimits
	maxFileBytes int64 // per entry (0: unlimited)
	buf          []byte
	log          *slog.Logger
}

type extractResult struct {
	paths     []string
	truncated bool
	// walkOps counts the directory syscalls (fstatat, mkdirat, openat) of
	// path resolution, so a test can check that it is linear in depth.
	walkOps int
}

// errCanceled is the cause reported when the request ended mid-upload.
var errCanceled = errors.New("upload canceled: the request ended")

// extract unpacks a tar or gzip-compressed tar stream into dest in two
// phases, so a failed, refused or cancelled upload leaves dest as it was:
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
//   - names that are absolute or contain ".." are rejected (400);
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
// written), so a client that went away stops the extraction at once.
func extract(ctx context.Context, dest string, body io.Reader, opts extractOptions) (res extractResult, err error) {
	res.paths = []string{}
	if opts.buf == nil {
		opts.buf = make([]byte, 32<<10)
	}
	if opts.log == nil {
		opts.log = slog.Default()
	}
	x := &extractor{ctx: ctx, dest: dest, opts: opts}
	defer func() {
		res.walkOps = x.walkOps
		if err != nil && ctx.Err() != nil {
			err = fmt.Errorf("%w: %w", errCanceled, context.Cause(ctx))
		}
	}()

	br := bufio.NewReaderSize(&ctxReader{ctx: ctx, r: body}, 64<<10)
	var src io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, zerr := gzip.NewReader(br)
		if zerr != nil {
			return res, archiveError(zerr)
		}
		defer zr.Close()
		src = &ctxReader{ctx: ctx, r: zr}
	}
	if l := opts.limits; l.MaxBytes > 0 {
		entries := int64(l.MaxEntries)
		if entries <= 0 {
			entries = 1 << 16 // no entry limit: still bound the metadata
		}
		meta := metaBytesPerEntry * entries
		src = &streamCap{r: src, left: l.MaxBytes + meta, limit: l.MaxBytes}
	}

	st, err := newStaging(dest)
	if err != nil {
		return res, err
	}
	x.st = st
	defer func() {
		x.stage.close()
		x.destDirs.close()
		if err != nil {
			st.abort(opts.log)
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
			return res, archiveError(nerr)
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
			opts.log.Debug("upload-batch: skipping entry", "name", hdr.Name, "type", string(hdr.Typeflag))
			continue
		}
		if err != nil {
			return res, err
		}
		if len(res.paths) < maxListedPaths {
			res.paths = append(res.paths, joinRaw(dest, name))
		} else {
			res.truncated = true
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

// ctxReader fails reads once ctx is done, so decompression and the tar
// reader's skipping stop within one chunk of the request ending.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
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
	return problem.OverLimit(http.StatusRequestEntityTooLarge, LimitUploadBytes, max, msg)
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
	l := x.opts.limits
	x.entries++
	if l.MaxEntries > 0 && x.entries > l.MaxEntries {
		return "", problem.OverLimit(http.StatusRequestEntityTooLarge, LimitUploadEntries, int64(l.MaxEntries), "the archive has more entries")
	}
	if l.MaxPathBytes > 0 && (len(hdr.Name) > l.MaxPathBytes || len(hdr.Linkname) > l.MaxPathBytes) {
		return "", problem.OverLimit(http.StatusBadRequest, LimitUploadPathBytes, int64(l.MaxPathBytes), "archive entry name or link target too long: "+shorten(hdr.Name))
	}
	name, ok := cleanRelative(hdr.Name)
	if !ok || strings.IndexByte(name, 0) >= 0 {
		return "", problem.Invalid("invalid relative path: " + shorten(hdr.Name))
	}
	if l.MaxDepth > 0 && strings.Count(name, "/")+1 > l.MaxDepth && name != "" {
		return "", problem.OverLimit(http.StatusBadRequest, LimitUploadDepth, int64(l.MaxDepth), "archive entry path too deep: "+shorten(hdr.Name))
	}
	if !headerOnly(hdr.Typeflag) && hdr.Size > 0 {
		if m := x.opts.maxFileBytes; m > 0 && hdr.Size > m {
			return "", problem.OverLimit(http.StatusRequestEntityTooLarge, LimitUploadFileBytes, m,
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
	opts      extractOptions
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

// archiveError maps a failure to read the archive: an over-limit body is
// upstream's 413 text, a limit of ours its problem, anything else (bad
// format, truncated stream, dropped connection) a 502 stream_error.
func archiveError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return bodyError(err)
	}
	var p *problem.Problem
	if errors.As(err, &p) {
		return p
	}
	return problem.Stream(err.Error())
}

// isEscape recognises os.Root's refusal to leave the root.
func isEscape(err error) bool {
	return err != nil && strings.Contains(err.Error(), "path escapes from parent")
}

func (x *extractor) fsErr(rel string, err error) error {
	if isEscape(err) {
		return problem.Invalid("path escapes destination: " + rel)
	}
	return fsError(joinRaw(x.dest, rel), err)
}

func traversesSymlink(orig string) error {
	return problem.Invalid("archive entry traverses a symlink: " + shorten(orig))
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
	f := os.NewFile(uintptr(fd), joinRaw(x.dest, name))
	err = x.copyData(f, r)
	cerr := f.Close()
	if err != nil {
		var be *bodyReadError
		var p *problem.Problem
		switch {
		case errors.As(err, &be):
			return archiveError(be.err)
		case errors.As(err, &p):
			return p
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
			x.opts.log.Debug("upload-batch: setting mtime", "name", name, "err", err)
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
// *bodyReadError.
func (x *extractor) copyData(f *os.File, r io.Reader) error {
	buf := x.opts.buf
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
			return &bodyReadError{rerr}
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
		return problem.Invalid("symlink escapes destination: " + shorten(hdr.Name) + " -> " + shorten(hdr.Linkname))
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
	src, ok := cleanRelative(hdr.Linkname)
	if !ok || src == "" || strings.IndexByte(src, 0) >= 0 {
		return problem.Invalid("hard link escapes destination: " + shorten(hdr.Name) + " -> " + shorten(hdr.Linkname))
	}
	if m := x.opts.limits.MaxDepth; m > 0 && strings.Count(src, "/")+1 > m {
		return problem.OverLimit(http.StatusBadRequest, LimitUploadDepth, int64(m), "hard link target too deep: "+shorten(hdr.Linkname))
	}
	sfd, sbase, st, err := x.findLinkSource(src, hdr.Name)
	if err != nil {
		return err
	}
	defer unix.Close(sfd)
	if isLink(st) {
		// A second link to a relative symlink elsewhere in the tree would
		// resolve differently; refuse rather than re-validate.
		return problem.Invalid("hard link to a symlink: " + shorten(hdr.Name) + " -> " + shorten(hdr.Linkname))
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
// passes the lexical check; here it is caught and the upload refused. A
// link that does not resolve within the staged tree may resolve through
// what dest already holds, so it is resolved there too.
func (x *extractor) verifyStagedLinks() error {
	if len(x.links) == 0 {
		return nil
	}
	root, err := os.OpenRoot(x.st.stagePath)
	if err != nil {
		return fsError(x.st.stagePath, err)
	}
	defer root.Close()
	var destRoot *os.Root
	if x.checkDest {
		if destRoot, err = os.OpenRoot(x.dest); err != nil {
			return fsError(x.dest, err)
		}
		defer destRoot.Close()
	}
	for _, l := range x.links {
		_, err := root.Stat(l)
		if isEscape(err) {
			return problem.Invalid("symlink escapes destination: " + shorten(l))
		}
		if err == nil || destRoot == nil {
			continue
		}
		target, rerr := root.Readlink(l)
		if rerr != nil {
			continue
		}
		if _, err := destRoot.Stat(path.Join(path.Dir(l), target)); isEscape(err) {
			return problem.Invalid("symlink escapes destination: " + shorten(l))
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
		return fsError(x.dest, err)
	}
	defer root.Close()
	var first string
	for _, l := range x.links {
		if _, err := root.Stat(l); isEscape(err) {
			if first == "" {
				first = l
			}
			if rerr := root.Remove(l); rerr != nil {
				x.opts.log.Warn("upload-batch: removing escaping symlink", "name", l, "err", rerr)
			}
		}
	}
	if first != "" {
		return problem.Invalid("symlink escapes destination: " + shorten(first))
	}
	return nil
}

// staging is the directory an upload is extracted into before it is
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

func stagingSuffix() string {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	return ".sa-upload-" + hex.EncodeToString(rnd[:])
}

// newStaging creates the staging directory for dest: inside dest when it
// exists (same filesystem, so every commit rename is atomic), next to it
// (a hidden sibling) when it does not.
func newStaging(dest string) (*staging, error) {
	s := &staging{dest: dest, destFd: -1, stageFd: -1, parentFd: -1}
	fi, err := os.Stat(dest)
	switch {
	case err == nil && fi.IsDir():
		if s.destFd, err = unix.Open(dest, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
			return nil, fsError(dest, err)
		}
		s.parentFd = s.destFd
		s.stagePath = dest
	case err == nil:
		return nil, fsError(dest, &fs.PathError{Op: "mkdir", Path: dest, Err: syscall.EEXIST})
	case errors.Is(err, fs.ErrNotExist):
		if _, lerr := os.Lstat(dest); lerr == nil { // a dangling symlink
			return nil, fsError(dest, &fs.PathError{Op: "mkdir", Path: dest, Err: syscall.EEXIST})
		}
		s.fresh = true
		parent := parentRaw(dest)
		if parent == "" {
			parent = "."
		}
		for q := parent; q != "" && q != "."; q = parentRaw(q) {
			if _, err := os.Lstat(q); err == nil {
				break
			}
			s.created = append(s.created, q)
		}
		if err := mkdirAll(parent); err != nil {
			s.removeCreated()
			return nil, fsError(parent, err)
		}
		if s.parentFd, err = unix.Open(parent, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
			s.removeCreated()
			return nil, fsError(parent, err)
		}
		s.stagePath = parent
	default:
		return nil, fsError(dest, err)
	}
	base := ""
	if s.fresh {
		base = "." + baseRaw(dest)
		if len(base) > 180 {
			base = base[:180]
		}
	}
	perm := uint32(0o700) // private while incomplete; a fresh dest gets 0o777 &^ umask at commit
	for range 3 {
		s.stageName = base + stagingSuffix()
		err = unix.Mkdirat(s.parentFd, s.stageName, perm)
		if err != unix.EEXIST {
			break
		}
	}
	if err != nil {
		s.close()
		s.removeCreated()
		return nil, fsError(joinRaw(s.stagePath, s.stageName), err)
	}
	s.stagePath = joinRaw(s.stagePath, s.stageName)
	if s.stageFd, err = openDirAt(s.parentFd, s.stageName); err != nil {
		s.abort(slog.Default())
		s.close()
		return nil, fsError(s.stagePath, err)
	}
	return s, nil
}

// commit moves the staged tree into dest.
func (s *staging) commit(x *extractor) error {
	if s.fresh {
		if err := umaskChmod(s.stageFd); err != nil {
			return fsError(s.dest, err)
		}
		err := ignoringEINTR(func() error { return unix.Renameat(s.parentFd, s.stageName, s.parentFd, baseRaw(s.dest)) })
		if err == nil {
			s.created = nil
			_ = unix.Fsync(s.parentFd)
			return nil
		}
		if err != unix.EEXIST && err != unix.ENOTEMPTY {
			return fsError(s.dest, err)
		}
		// dest appeared meanwhile: merge into it.
		if s.destFd, err = unix.Open(s.dest, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
			return fsError(s.dest, err)
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
		return fsError(x.dest, err)
	}
	d := os.NewFile(uintptr(dup), "staging")
	names, err := d.Readdirnames(-1)
	_ = d.Close()
	if err != nil {
		return fsError(x.dest, err)
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
			log.Warn("upload-batch: removing staging directory", "path", s.stagePath, "err", err)
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
