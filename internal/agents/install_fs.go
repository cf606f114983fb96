package agents

// Atomic filesystem swaps behind installs, and LinkAgent.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// swapDir replaces dst with the directory stage (rename; the old dst is
// moved aside first and removed after).
func swapDir(stage, dst string) error {
	old := ""
	if _, err := os.Lstat(dst); err == nil {
		old = fmt.Sprintf("%s.old-%d", dst, time.Now().UnixNano())
		if err := os.Rename(dst, old); err != nil {
			return err
		}
	}
	if err := os.Rename(stage, dst); err != nil {
		if old != "" {
			_ = os.Rename(old, dst)
		}
		return err
	}
	if old != "" {
		_ = os.RemoveAll(old)
	}
	return nil
}

// replaceSymlink atomically points link at target (relative when target
// is relative-able and under the link's directory tree, else absolute).
func replaceSymlink(target, link string) error {
	rel, err := filepath.Rel(filepath.Dir(link), target)
	if err != nil || strings.HasPrefix(rel, "..") {
		rel = target
	}
	tmp := fmt.Sprintf("%s.tmp-%d", link, time.Now().UnixNano())
	if err := os.Symlink(rel, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, link); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

// LinkAgent makes agent, installed under the data directory from, usable
// from the data directory to by symlinking its launcher, manifest and
// native CLI (launchers hold absolute paths, so the install itself stays
// where it is). Tests use it to share one agents cache between servers.
func LinkAgent(from, to, agent string) error {
	src := NewManager(Options{DataDir: from, Env: []string{}})
	dst := NewManager(Options{DataDir: to, Env: []string{}})
	if !isExecutable(src.LauncherPath(agent)) {
		return fmt.Errorf("%s is not installed in %s", agent, from)
	}
	links := [][2]string{{src.LauncherPath(agent), dst.LauncherPath(agent)}, {src.manifestPath(agent), dst.manifestPath(agent)}}
	if p := src.NativePath(agent); p != "" {
		links = append(links, [2]string{p, dst.NativePath(agent)})
	}
	for _, l := range links {
		if _, err := os.Stat(l[0]); err != nil {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(l[1]), 0o755); err != nil {
			return err
		}
		target, err := filepath.Abs(l[0])
		if err != nil {
			return err
		}
		if err := replaceSymlink(target, l[1]); err != nil {
			return err
		}
	}
	return nil
}
