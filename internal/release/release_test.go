package release

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

const testVersion = "9.8.7-test"

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func requireTools(t *testing.T) {
	t.Helper()
	if runtime.GOOS != "linux" && runtime.GOOS != "darwin" {
		t.Skipf("release scripts target linux/darwin, host is %s", runtime.GOOS)
	}
	for _, tool := range []string{"sh", "tar", "gzip", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not on PATH: %v", tool, err)
		}
	}
	_, e1 := exec.LookPath("sha256sum")
	_, e2 := exec.LookPath("shasum")
	if e1 != nil && e2 != nil {
		t.Skip("neither sha256sum nor shasum on PATH")
	}
}

// buildRelease runs release.sh for the host target only (one build keeps the
// test at a few seconds) and returns the output directory.
func buildRelease(ctx context.Context, t *testing.T) string {
	t.Helper()
	out := t.TempDir()
	cmd := exec.CommandContext(ctx, "sh", filepath.Join(repoRoot(t), "scripts", "release.sh"), out)
	cmd.Env = append(os.Environ(), "VERSION="+testVersion, "TARGETS="+runtime.GOOS+"/"+runtime.GOARCH)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("release.sh: %v\n%s", err, b)
	}
	return out
}

// runInstall runs the released install.sh against base, installing into dir.
func runInstall(ctx context.Context, t *testing.T, dist, base, dir string, extraEnv ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(ctx, "sh", filepath.Join(dist, "install.sh"), "--version", testVersion, "--base-url", base, "--dir", dir)
	cmd.Env = append(append(os.Environ(), "HOME="+t.TempDir()), extraEnv...)
	b, err := cmd.CombinedOutput()
	return string(b), err
}

func TestReleaseInstall(t *testing.T) {
	requireTools(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	dist := buildRelease(ctx, t)
	archive := "sandbox-agent_" + testVersion + "_" + runtime.GOOS + "_" + runtime.GOARCH + ".tar.gz"
	for _, f := range []string{archive, "checksums.txt", "install.sh"} {
		if _, err := os.Stat(filepath.Join(dist, f)); err != nil {
			t.Fatalf("release output: %v", err)
		}
	}

	t.Run("installs and runs", func(t *testing.T) {
		srv := httptest.NewServer(http.FileServer(http.Dir(dist)))
		defer srv.Close()
		dir := t.TempDir()
		out, err := runInstall(ctx, t, dist, srv.URL, dir)
		if err != nil {
			t.Fatalf("install.sh: %v\n%s", err, out)
		}
		bin := filepath.Join(dir, "sandbox-agent")
		if !strings.Contains(out, bin) {
			t.Errorf("install.sh output does not name %s:\n%s", bin, out)
		}
		v, err := exec.CommandContext(ctx, bin, "--version").CombinedOutput()
		if err != nil || strings.TrimSpace(string(v)) != "sandbox-agent "+testVersion {
			t.Fatalf("%s --version = %q, %v; want version %s", bin, v, err, testVersion)
		}
	})

	t.Run("refuses a checksum mismatch", func(t *testing.T) {
		tampered := t.TempDir()
		for _, f := range []string{archive, "install.sh"} {
			b, err := os.ReadFile(filepath.Join(dist, f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(tampered, f), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		bad := strings.Repeat("0", 64) + "  " + archive + "\n"
		if err := os.WriteFile(filepath.Join(tampered, "checksums.txt"), []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(http.FileServer(http.Dir(tampered)))
		defer srv.Close()
		dir := t.TempDir()
		out, err := runInstall(ctx, t, dist, srv.URL, dir)
		if err == nil || !strings.Contains(out, "checksum mismatch") {
			t.Fatalf("install.sh with bad checksum: err=%v, want failure naming the mismatch\n%s", err, out)
		}
		assertEmpty(t, dir)
	})

	t.Run("rejects unsupported platforms", func(t *testing.T) {
		for _, tc := range []struct{ s, m, want string }{
			{"Linux", "riscv64", "unsupported architecture: riscv64"},
			{"FreeBSD", "x86_64", "unsupported OS: FreeBSD"},
		} {
			shim := t.TempDir()
			script := "#!/bin/sh\ncase \"$1\" in -s) echo " + tc.s + ";; -m) echo " + tc.m + ";; *) echo " + tc.s + ";; esac\n"
			if err := os.WriteFile(filepath.Join(shim, "uname"), []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			out, err := runInstall(ctx, t, dist, "http://127.0.0.1:1", dir, "PATH="+shim+string(os.PathListSeparator)+os.Getenv("PATH"))
			if err == nil || !strings.Contains(out, tc.want) {
				t.Errorf("uname %s/%s: err=%v, want %q in\n%s", tc.s, tc.m, err, tc.want, out)
			}
			assertEmpty(t, dir)
		}
	})
}

func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Errorf("%s not empty after a refused install: %v", dir, ents)
	}
}
