package agents

// Registry binary distributions: fetch the release archive, unpack it into
// a staging dir, swap it into place.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// binaryEntry installs a registry binary distribution (archive + cmd).
func (in *installer) binaryEntry(ctx context.Context, prefix, version, archive, cmd string, args []string, env map[string]string) (string, bool, error) {
	m := in.m
	stage, err := os.MkdirTemp(m.BinDir(), ".staging-"+in.agent+"-")
	if err != nil {
		return "", false, err
	}
	defer os.RemoveAll(stage)
	if err := os.Chmod(stage, 0o755); err != nil {
		return "", false, err
	}
	data, err := m.download(ctx, archive)
	if err != nil {
		return "", false, err
	}
	switch {
	case strings.HasSuffix(archive, ".tar.gz"), strings.HasSuffix(archive, ".tgz"):
		err = untarGz(data, stage)
	default:
		err = fmt.Errorf("unsupported archive format: %s", archive)
	}
	if err != nil {
		return "", false, err
	}
	if err := swapDir(stage, prefix); err != nil {
		return "", false, err
	}
	exe := filepath.Join(prefix, filepath.Clean("/"+cmd))
	if !isExecutable(exe) {
		found := ""
		_ = filepath.WalkDir(prefix, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && d.Name() == filepath.Base(cmd) && found == "" {
				found = p
			}
			return nil
		})
		if found == "" {
			return "", false, fmt.Errorf("archive %s has no %s", archive, cmd)
		}
		exe = found
	}
	in.exec, in.args = exe, args
	in.env = sortedEnv(env)
	in.mf.Source, in.mf.Package, in.mf.Version = SourceRegistry, archive, version
	in.res.Artifacts = append(in.res.Artifacts, Artifact{Kind: KindAgentProcess, Path: m.LauncherPath(in.agent), Source: SourceRegistry, Version: version})
	return "binary " + archive, false, nil
}

func tarMember(gz []byte, name string) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err != nil {
			return nil, fmt.Errorf("archive has no %s", name)
		}
		if h.Typeflag == tar.TypeReg && filepath.Base(h.Name) == name {
			return io.ReadAll(io.LimitReader(tr, 1<<30))
		}
	}
}

func untarGz(gz []byte, dir string) error {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return err
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		// A release archive is remote input: an entry that names a path
		// outside dir (absolute, or climbing with ..) marks a hostile or
		// broken archive, so the install fails instead of quietly
		// extracting it somewhere else.
		if !filepath.IsLocal(h.Name) {
			return fmt.Errorf("archive entry %q is not inside the archive", h.Name)
		}
		p := filepath.Join(dir, filepath.Clean("/"+h.Name))
		switch h.Typeflag {
		case tar.TypeSymlink, tar.TypeLink:
			// Links are not extracted (an install needs only its regular
			// files, and skipping them means no later entry is written
			// through one), but one aimed outside the archive is the same
			// sign of a hostile archive as an escaping name.
			target := h.Linkname
			if h.Typeflag == tar.TypeSymlink {
				target = filepath.Join(filepath.Dir(h.Name), h.Linkname)
			}
			if filepath.IsAbs(h.Linkname) || !filepath.IsLocal(target) {
				return fmt.Errorf("archive entry %q links outside the archive (%q)", h.Name, h.Linkname)
			}
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode)&0o755|0o600)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, io.LimitReader(tr, 1<<30))
			f.Close()
			if err != nil {
				return err
			}
		}
	}
}
