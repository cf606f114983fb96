package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

const (
	upstreamPkg     = "@sandbox-agent/cli-linux-x64"
	upstreamVersion = "0.4.2"
)

// artifacts are the binaries under test.
type artifacts struct {
	ours, upstream, agent string
	oursSize, upSize      int64
	upStripped            int64
	upVersion             string
	oursRev               string
}

func command(ctx context.Context, dir string, env []string, name string, args ...string) error {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return nil
}

func fileSize(p string) (int64, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// setup builds ours and the bench agent and installs upstream.
func setup(ctx context.Context, cfg *config, cache string) (*artifacts, error) {
	a := &artifacts{}
	a.agent = filepath.Join(cache, "bench-agent")
	logf("building the bench agent")
	if err := command(ctx, ".", []string{"CGO_ENABLED=0"}, "go", "build", "-o", a.agent, "./bench/agent"); err != nil {
		return nil, err
	}
	if cfg.ours != "" {
		p, err := filepath.Abs(cfg.ours)
		if err != nil {
			return nil, err
		}
		a.ours = p
	} else {
		a.ours = filepath.Join(cache, "ours", "sandbox-agent")
		logf("building ours: CGO_ENABLED=0 go build -ldflags='-s -w' ./cmd/sandbox-agent")
		if err := command(ctx, ".", []string{"CGO_ENABLED=0"}, "go", "build", "-ldflags=-s -w", "-o", a.ours, "./cmd/sandbox-agent"); err != nil {
			return nil, err
		}
	}
	var err error
	if a.oursSize, err = fileSize(a.ours); err != nil {
		return nil, err
	}
	if out, err := exec.Command("git", "describe", "--always", "--dirty", "--abbrev=10").Output(); err == nil {
		a.oursRev = strings.TrimSpace(string(out))
	}

	prefix := filepath.Join(cache, "upstream-"+upstreamVersion)
	a.upstream = filepath.Join(prefix, "node_modules", upstreamPkg, "bin", "sandbox-agent")
	if _, err := os.Stat(a.upstream); err != nil {
		if _, err := exec.LookPath("npm"); err != nil {
			return nil, fmt.Errorf("npm is needed to install upstream %s@%s: %w", upstreamPkg, upstreamVersion, err)
		}
		logf("installing upstream: npm install %s@%s into %s", upstreamPkg, upstreamVersion, prefix)
		if err := os.MkdirAll(prefix, 0o755); err != nil {
			return nil, err
		}
		if err := command(ctx, prefix, nil, "npm", "install", "--no-audit", "--no-fund", "--no-save", "--prefix", prefix, upstreamPkg+"@"+upstreamVersion); err != nil {
			return nil, err
		}
	}
	// npm does not run the package's postinstall (chmod +x) here.
	if err := os.Chmod(a.upstream, 0o755); err != nil {
		return nil, err
	}
	out, err := exec.Command(a.upstream, "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("upstream --version: %w", err)
	}
	a.upVersion = strings.TrimSpace(string(out))
	if !strings.HasSuffix(a.upVersion, upstreamVersion) {
		return nil, fmt.Errorf("upstream reports %q, want %s", a.upVersion, upstreamVersion)
	}
	if a.upSize, err = fileSize(a.upstream); err != nil {
		return nil, err
	}
	// The npm binary ships with its symbol table; compare stripped sizes.
	if strip, err := exec.LookPath("strip"); err == nil {
		s := filepath.Join(cache, "upstream-stripped")
		if err := command(ctx, ".", nil, strip, "-o", s, a.upstream); err == nil {
			a.upStripped, _ = fileSize(s)
		}
	}
	return a, nil
}

// machine describes the host for the report.
func machine() []string {
	cpu := "unknown"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	kernel := "unknown"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(b))
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				var kb int64
				fmt.Sscan(rest, &kb)
				mem = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
			}
		}
	}
	goVer := runtime.Version()
	if out, err := exec.Command("go", "env", "GOVERSION").Output(); err == nil {
		goVer = strings.TrimSpace(string(out))
	}
	return []string{
		"CPU: " + cpu,
		fmt.Sprintf("cores: %d (GOMAXPROCS of the bench client %d)", runtime.NumCPU(), runtime.GOMAXPROCS(0)),
		"memory: " + mem,
		"kernel: Linux " + kernel,
		"Go: " + goVer + " " + runtime.GOOS + "/" + runtime.GOARCH,
		"date: " + time.Now().UTC().Format("2006-01-02 15:04 MST"),
	}
}
