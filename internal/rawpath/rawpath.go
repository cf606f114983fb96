// Package rawpath handles slash paths the way upstream (Rust's std::path)
// does: joined and split lexically, without the normalisation of Go's
// path/filepath, so a path a client sent is reported back as it was sent.
package rawpath

import (
	"errors"
	"io/fs"
	"os"
	"strings"
)

// CleanRelative drops "." and empty components of a relative slash path and
// reports false when a component is "..". An absolute path is not relative.
func CleanRelative(p string) (string, bool) {
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

// Join joins a relative name to dir without normalising dir (as Rust's
// Path::join does).
func Join(dir, name string) string {
	if name == "" {
		return dir
	}
	if dir == "" || strings.HasSuffix(dir, "/") {
		return dir + name
	}
	return dir + "/" + name
}

// Parent is the lexical parent of p (Rust's Path::parent): trailing
// slashes are ignored, "" when p has no parent.
func Parent(p string) string {
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

// Base is the last component of p.
func Base(p string) string {
	for len(p) > 1 && strings.HasSuffix(p, "/") {
		p = p[:len(p)-1]
	}
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

// MkdirAll is `mkdir -p` with Rust's create_dir_all error semantics: a path
// component that exists as a file reports that mkdir's own error ("File
// exists" for the last component) rather than Go's synthetic ENOTDIR.
func MkdirAll(p string) error {
	if p == "" {
		return nil
	}
	err := os.Mkdir(p, 0o777)
	if err == nil {
		return nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		parent := Parent(p)
		if parent == "" || parent == p {
			return err
		}
		if perr := MkdirAll(parent); perr != nil {
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
