package fsapi

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/sandbox-agent-go/sandbox-agent/internal/problem"
	"github.com/sandbox-agent-go/sandbox-agent/internal/rawpath"
)

// movePath renames from to to with upstream's rules: the source must
// exist, an existing destination is an error unless overwrite is set (then
// a file or a whole directory there is replaced), and the destination's
// parents are created. Beyond upstream, a move across filesystems (EXDEV)
// falls back to copy-then-delete instead of failing.
func movePath(from, to string, overwrite bool) error {
	fromInfo, err := os.Lstat(from)
	if err != nil {
		return fsError(from, err)
	}
	toInfo, err := os.Lstat(to)
	switch {
	case err == nil && !overwrite:
		return problem.Invalid("destination already exists: " + to)
	case err == nil:
		if filepath.Clean(from) == filepath.Clean(to) {
			return nil // moving onto itself
		}
		if os.SameFile(fromInfo, toInfo) {
			if fromInfo.IsDir() {
				return nil // the same directory reached through a symlink
			}
			// Two hard links to one inode: rename(2) would do nothing.
			if err := syscall.Unlink(from); err != nil {
				return fsError(from, err)
			}
			return nil
		}
		rf, rt := realPath(from), realPath(to)
		if within(rt, rf) || within(rf, rt) {
			// Replacing an ancestor or descendant would destroy the source.
			return errnoProblem(syscall.EINVAL)
		}
		if toInfo.IsDir() {
			err = os.RemoveAll(to)
		} else if fromInfo.IsDir() {
			err = syscall.Unlink(to)
		}
		if err != nil {
			return fsError(to, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return fsError(to, err)
	}
	if parent := rawpath.Parent(to); parent != "" {
		if err := rawpath.MkdirAll(parent); err != nil {
			return fsError(parent, err)
		}
	}
	err = os.Rename(from, to)
	if errors.Is(err, syscall.EXDEV) {
		err = moveAcrossDevices(from, to, fromInfo)
	}
	if err != nil {
		return fsError(from, err)
	}
	return nil
}

// realPath resolves the symlinks in p's parent directories (not in p
// itself, which may be a link being moved).
func realPath(p string) string {
	parent := rawpath.Parent(p)
	if parent == "" {
		return filepath.Clean(p)
	}
	if rp, err := filepath.EvalSymlinks(parent); err == nil {
		return filepath.Join(rp, rawpath.Base(p))
	}
	return filepath.Clean(p)
}

// within reports whether p is inside (or equal to) dir, lexically.
func within(p, dir string) bool {
	p, dir = filepath.Clean(p), filepath.Clean(dir)
	return p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}

// moveAcrossDevices copies from into a temporary sibling of to, renames it
// into place and only then deletes the source, so a failure never loses
// data.
func moveAcrossDevices(from, to string, fi fs.FileInfo) error {
	tmp := tempName(to)
	if err := copyTree(from, tmp, fi); err != nil {
		_ = os.RemoveAll(tmp)
		return err
	}
	if err := os.Rename(tmp, to); err != nil {
		_ = os.RemoveAll(tmp)
		return err
	}
	return os.RemoveAll(from)
}

// copyTree copies regular files, directories and symlinks, keeping modes
// and modification times.
func copyTree(src, dst string, fi fs.FileInfo) error {
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		return os.Symlink(target, dst)
	case fi.IsDir():
		if err := os.Mkdir(dst, 0o700); err != nil {
			return err
		}
		d, err := os.Open(src)
		if err != nil {
			return err
		}
		des, err := d.ReadDir(-1)
		d.Close()
		if err != nil {
			return err
		}
		for _, de := range des {
			info, err := de.Info()
			if err != nil {
				return err
			}
			if err := copyTree(rawpath.Join(src, de.Name()), rawpath.Join(dst, de.Name()), info); err != nil {
				return err
			}
		}
		if err := os.Chmod(dst, fi.Mode().Perm()); err != nil {
			return err
		}
		return os.Chtimes(dst, fi.ModTime(), fi.ModTime())
	case fi.Mode().IsRegular():
		in, err := os.Open(src)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fi.Mode().Perm()|0o200)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil { // copy_file_range when possible
			out.Close()
			return err
		}
		if err := out.Chmod(fi.Mode().Perm()); err != nil {
			out.Close()
			return err
		}
		if err := out.Close(); err != nil {
			return err
		}
		return os.Chtimes(dst, fi.ModTime(), fi.ModTime())
	default:
		return &fs.PathError{Op: "copy", Path: src, Err: syscall.EOPNOTSUPP}
	}
}
