package fsapi

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path"
	"strings"
	"syscall"

	"github.com/sandbox-agent-go/sandbox-agent/internal/problem"
)

// maxListedPaths caps the paths upload-batch reports (upstream: 1024).
const maxListedPaths = 1024

type extractOptions struct {
	// maxBytes caps the bytes written to files (0: unlimited), which also
	// bounds gzip bombs and sparse-file expansion.
	maxBytes int64
	buf      []byte
	log      *slog.Logger
}

type extractResult struct {
	paths     []string
	truncated bool
}

// extract unpacks a tar or gzip-compressed tar stream into dest, which
// must exist. Entries are written in archive order (no rollback when a
// later entry fails, as upstream). Every operation goes through an os.Root
// on dest, and on top of that:
//   - names that are absolute or contain ".." are rejected (400);
//   - no entry is created through a symlink (pre-existing or extracted);
//   - symlink targets must stay inside dest, lexically when created and
//     physically once the archive is complete;
//   - hard links must name an earlier non-symlink entry inside dest;
//   - an existing file or link at an entry's name is replaced, never
//     written through.
func extract(dest string, body io.Reader, opts extractOptions) (res extractResult, err error) {
	res.paths = []string{}
	if opts.buf == nil {
		opts.buf = make([]byte, 32<<10)
	}
	if opts.log == nil {
		opts.log = slog.Default()
	}
	br := bufio.NewReaderSize(body, 64<<10)
	var src io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, zerr := gzip.NewReader(br)
		if zerr != nil {
			return res, archiveError(zerr)
		}
		defer zr.Close()
		src = zr
	}
	root, err := os.OpenRoot(dest)
	if err != nil {
		return res, fsError(dest, err)
	}
	defer root.Close()
	x := &extractor{root: root, dest: dest, known: map[string]struct{}{}, opts: opts}
	defer func() {
		if verr := x.verifyLinks(); verr != nil && err == nil {
			err = verr
		}
	}()
	tr := tar.NewReader(src)
	for {
		hdr, nerr := tr.Next()
		if nerr == io.EOF {
			return res, nil
		}
		if nerr != nil {
			return res, archiveError(nerr)
		}
		name, ok := cleanRelative(hdr.Name)
		if !ok {
			return res, problem.Invalid("invalid relative path: " + hdr.Name)
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
}

type extractor struct {
	root    *os.Root
	dest    string
	known   map[string]struct{} // directories created or verified (not symlinks)
	links   []string            // symlinks created, verified at the end
	written int64
	opts    extractOptions
}

// archiveError maps a failure to read the archive: an over-limit body is
// upstream's 413 text, anything else (bad format, truncated stream,
// dropped connection) a 502 stream_error.
func archiveError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return bodyError(err)
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
	return problem.Invalid("archive entry traverses a symlink: " + orig)
}

// parents makes sure every directory above name is a real directory (not
// a symlink), creating missing ones when create is set.
func (x *extractor) parents(name, orig string, create bool) error {
	for i := 0; i < len(name); i++ {
		if name[i] != '/' {
			continue
		}
		dir := name[:i]
		if _, ok := x.known[dir]; ok {
			continue
		}
		if err := x.ensureDir(dir, orig, create, 0o777); err != nil {
			return err
		}
	}
	return nil
}

// ensureDir checks (and optionally creates) one directory.
func (x *extractor) ensureDir(dir, orig string, create bool, perm os.FileMode) error {
	for attempt := 0; ; attempt++ {
		fi, err := x.root.Lstat(dir)
		switch {
		case err == nil && fi.Mode()&fs.ModeSymlink != 0:
			return traversesSymlink(orig)
		case err == nil && fi.IsDir():
			x.known[dir] = struct{}{}
			return nil
		case err == nil:
			return x.fsErr(dir, &fs.PathError{Op: "mkdir", Path: dir, Err: syscall.EEXIST})
		case !errors.Is(err, fs.ErrNotExist) || !create:
			return x.fsErr(dir, err)
		}
		err = x.root.Mkdir(dir, perm)
		if err == nil {
			x.known[dir] = struct{}{}
			return nil
		}
		if !errors.Is(err, fs.ErrExist) || attempt > 0 {
			return x.fsErr(dir, err)
		}
		// Lost a race with a concurrent creator: check what is there now.
	}
}

func (x *extractor) dir(name string, hdr *tar.Header) error {
	if err := x.parents(name, hdr.Name, true); err != nil {
		return err
	}
	if _, ok := x.known[name]; ok {
		return nil
	}
	perm := os.FileMode(hdr.Mode) & 0o777
	if perm == 0 {
		perm = 0o755
	}
	return x.ensureDir(name, hdr.Name, true, perm|0o700)
}

// clear removes a non-directory at name so it can be re-created; it is
// never opened, so an existing symlink or hard link is not written through.
func (x *extractor) clear(name string) error {
	if _, ok := x.known[name]; ok {
		return x.fsErr(name, &fs.PathError{Op: "open", Path: name, Err: syscall.EISDIR})
	}
	fi, err := x.root.Lstat(name)
	if err != nil {
		return x.fsErr(name, err)
	}
	if fi.IsDir() {
		return x.fsErr(name, &fs.PathError{Op: "open", Path: name, Err: syscall.EISDIR})
	}
	if err := x.root.Remove(name); err != nil {
		return x.fsErr(name, err)
	}
	return nil
}

// limitWriter enforces maxBytes over everything the archive writes.
type limitWriter struct {
	w io.Writer
	x *extractor
}

func (l limitWriter) Write(p []byte) (int, error) {
	if max := l.x.opts.maxBytes; max > 0 && l.x.written+int64(len(p)) > max {
		return 0, &http.MaxBytesError{Limit: max}
	}
	n, err := l.w.Write(p)
	l.x.written += int64(n)
	return n, err
}

func (x *extractor) file(name string, hdr *tar.Header, r io.Reader) error {
	if err := x.parents(name, hdr.Name, true); err != nil {
		return err
	}
	if _, ok := x.known[name]; ok {
		return x.fsErr(name, &fs.PathError{Op: "open", Path: name, Err: syscall.EISDIR})
	}
	perm := os.FileMode(hdr.Mode) & 0o777
	if perm == 0 {
		perm = 0o644
	}
	const flags = os.O_WRONLY | os.O_CREATE | os.O_EXCL
	f, err := x.root.OpenFile(name, flags, perm)
	if errors.Is(err, fs.ErrExist) {
		if err := x.clear(name); err != nil {
			return err
		}
		f, err = x.root.OpenFile(name, flags, perm)
	}
	if err != nil {
		return x.fsErr(name, err)
	}
	br := &bodyReader{r: r}
	_, err = io.CopyBuffer(limitWriter{f, x}, br, x.opts.buf)
	cerr := f.Close()
	if err != nil {
		var mbe *http.MaxBytesError
		switch {
		case br.err != nil:
			return archiveError(br.err)
		case errors.As(err, &mbe):
			return bodyError(err)
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
		if err := x.root.Chtimes(name, atime, hdr.ModTime); err != nil {
			x.opts.log.Debug("upload-batch: setting mtime", "name", name, "err", err)
		}
	}
	return nil
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
	if err := x.parents(name, hdr.Name, true); err != nil {
		return err
	}
	if !linkStaysInside(name, hdr.Linkname) {
		return problem.Invalid("symlink escapes destination: " + hdr.Name + " -> " + hdr.Linkname)
	}
	err := x.root.Symlink(hdr.Linkname, name)
	if errors.Is(err, fs.ErrExist) {
		if err := x.clear(name); err != nil {
			return err
		}
		err = x.root.Symlink(hdr.Linkname, name)
	}
	if err != nil {
		return x.fsErr(name, err)
	}
	x.links = append(x.links, name)
	return nil
}

func (x *extractor) hardlink(name string, hdr *tar.Header) error {
	if err := x.parents(name, hdr.Name, true); err != nil {
		return err
	}
	src, ok := cleanRelative(hdr.Linkname)
	if !ok || src == "" {
		return problem.Invalid("hard link escapes destination: " + hdr.Name + " -> " + hdr.Linkname)
	}
	if err := x.parents(src, hdr.Name, false); err != nil {
		return err
	}
	fi, err := x.root.Lstat(src)
	if err != nil {
		return x.fsErr(src, err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		// A second link to a relative symlink elsewhere in the tree would
		// resolve differently; refuse rather than re-validate.
		return problem.Invalid("hard link to a symlink: " + hdr.Name + " -> " + hdr.Linkname)
	}
	if fi.IsDir() {
		return x.fsErr(src, &fs.PathError{Op: "link", Path: src, Err: syscall.EPERM})
	}
	if src == name {
		return nil
	}
	err = x.root.Link(src, name)
	if errors.Is(err, fs.ErrExist) {
		if err := x.clear(name); err != nil {
			return err
		}
		err = x.root.Link(src, name)
	}
	if err != nil {
		return x.fsErr(name, err)
	}
	return nil
}

// verifyLinks resolves every extracted symlink inside the root. A link
// that only escapes through other links (say "a -> ." then "b -> a/..")
// passes the lexical check; here it is caught, removed, and reported.
func (x *extractor) verifyLinks() error {
	var first string
	for _, l := range x.links {
		if _, err := x.root.Stat(l); isEscape(err) {
			if first == "" {
				first = l
			}
			if rerr := x.root.Remove(l); rerr != nil {
				x.opts.log.Warn("upload-batch: removing escaping symlink", "name", l, "err", rerr)
			}
		}
	}
	if first != "" {
		return problem.Invalid("symlink escapes destination: " + first)
	}
	return nil
}
