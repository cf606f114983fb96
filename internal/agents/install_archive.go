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
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/sandbox-agent-go/sandbox-agent/internal/untar"
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
		err = untarGz(ctx, data, stage, m.opts.Logger)
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

// releaseLimits bound a registry release archive: generous for any real
// agent distribution (they are tens of MiB), but a hostile or broken
// archive cannot fill the data dir's disk or its inode table.
var releaseLimits = untar.Limits{
	MaxBytes:     4 << 30,
	MaxFileBytes: 2 << 30,
	MaxEntries:   100_000,
	MaxDepth:     64,
	MaxPathBytes: 4096,
}

// untarGz unpacks a release archive into dir with the server's one
// hardened extractor: an entry named outside dir, a link leading out of
// it, or an entry through a link fails the install and leaves dir as it
// was; links inside the archive are created. log (nil: slog.Default)
// receives the extractor's notes.
func untarGz(ctx context.Context, gz []byte, dir string, log *slog.Logger) error {
	_, err := untar.Extract(ctx, dir, bytes.NewReader(gz), untar.Options{
		Limits:        releaseLimits,
		StagingPrefix: ".staging-untar-",
		ResolveDotDot: true,
		Log:           log,
	})
	if err != nil {
		return fmt.Errorf("unpack release archive: %w", err)
	}
	return nil
}
