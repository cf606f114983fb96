//go:build unix

package remote_test

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	sandboxagent "github.com/sandbox-agent-go/sandbox-agent"
	"github.com/sandbox-agent-go/sandbox-agent/internal/serverprobe"
	"github.com/sandbox-agent-go/sandbox-agent/internal/testutil/testbin"
	"github.com/sandbox-agent-go/sandbox-agent/provider"
	"github.com/sandbox-agent-go/sandbox-agent/provider/internal/fakesandbox"
	"github.com/sandbox-agent-go/sandbox-agent/provider/internal/remote"
)

var bin string

func TestMain(m *testing.M) { os.Exit(testbin.Main(m, &bin)) }

const port = 3000

// sandbox adapts a fakesandbox to remote.Sandbox as a vendor client would,
// rewriting the logical port, and records what it was asked.
type sandbox struct {
	sb   *fakesandbox.Sandbox
	real int

	mu      sync.Mutex
	scripts []string
	writes  []string
	corrupt bool // flip a byte of every upload
}

func newSandbox(t *testing.T, env map[string]string) *sandbox {
	t.Helper()
	sb, err := fakesandbox.New(t.TempDir(), fakesandbox.Options{ID: "sb1", Env: env})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := sb.Destroy(context.Background()); err != nil {
			t.Error(err)
		}
	})
	real, err := sb.Port(port)
	if err != nil {
		t.Fatal(err)
	}
	return &sandbox{sb: sb, real: real}
}

func (s *sandbox) Exec(ctx context.Context, script string) (remote.ExecResult, error) {
	s.mu.Lock()
	s.scripts = append(s.scripts, script)
	s.mu.Unlock()
	script = strings.ReplaceAll(script, "--port "+strconv.Itoa(port), "--port "+strconv.Itoa(s.real))
	script = strings.ReplaceAll(script, "--host 0.0.0.0", "--host 127.0.0.1")
	r, err := s.sb.Run(ctx, fakesandbox.Cmd{Command: script})
	return remote.ExecResult{ExitCode: r.ExitCode, Output: string(r.Stdout) + string(r.Stderr)}, err
}

func (s *sandbox) WriteFile(_ context.Context, p string, data []byte) error {
	s.mu.Lock()
	s.writes = append(s.writes, p)
	if s.corrupt && len(data) > 100 {
		data = append([]byte(nil), data...)
		data[100] ^= 0xff
	}
	s.mu.Unlock()
	return s.sb.WriteFile(p, data, 0o644)
}

func (s *sandbox) url() string { return "http://127.0.0.1:" + strconv.Itoa(s.real) }

func status(t *testing.T, s *sandbox, token string) int {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, s.url()+"/v1/agents", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// release publishes the test binary as a release of version v the way
// scripts/release.sh lays it out, with the real scripts/install.sh.
func release(t *testing.T, v string, tamper bool) *httptest.Server {
	t.Helper()
	dir := t.TempDir()
	name := fmt.Sprintf("sandbox-agent_%s_linux_%s.tar.gz", v, runtime.GOARCH)
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	zw, _ := gzip.NewWriterLevel(f, gzip.BestSpeed)
	tw := tar.NewWriter(zw)
	if err := tw.WriteHeader(&tar.Header{Name: "sandbox-agent", Mode: 0o755, Size: int64(len(data))}); err != nil {
		t.Fatal(err)
	}
	_, _ = tw.Write(data)
	if err := errors.Join(tw.Close(), zw.Close(), f.Close()); err != nil {
		t.Fatal(err)
	}
	archive, _ := os.ReadFile(filepath.Join(dir, name))
	sum := sha256.Sum256(archive)
	if tamper {
		sum[0] ^= 0xff
	}
	sums := fmt.Sprintf("%x  %s\n", sum, name)
	install, err := os.ReadFile(filepath.Join(testbin.ModuleRoot(), "scripts", "install.sh"))
	if err != nil {
		t.Fatal(err)
	}
	for n, b := range map[string][]byte{"checksums.txt": []byte(sums), "install.sh": install} {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(srv.Close)
	return srv
}

func TestBootstrapModes(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the sandbox runs the linux test binary")
	}
	for _, tc := range []struct {
		name    string
		mode    provider.InstallMode
		upload  bool // BinaryPath set
		onPath  bool // a sandbox-agent on the sandbox's PATH
		release bool // a release server for install.sh
		noToken bool
		agents  []string
		how     string
	}{
		{name: "upload", upload: true, agents: []string{"mock"}, how: "upload"},
		{name: "upload without token", upload: true, noToken: true, how: "upload"},
		{name: "on PATH wins in auto", upload: true, onPath: true, how: "path"},
		{name: "forced upload over PATH", mode: provider.InstallUpload, upload: true, onPath: true, how: "upload"},
		{name: "install.sh", release: true, how: "script"},
		{name: "install.sh forced", mode: provider.InstallScript, upload: true, release: true, how: "script"},
		{name: "none, on PATH", mode: provider.InstallNone, onPath: true, how: "path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var env map[string]string
			var pathDir string
			if tc.onPath {
				pathDir = t.TempDir()
				if err := os.Symlink(bin, filepath.Join(pathDir, "sandbox-agent")); err != nil {
					t.Fatal(err)
				}
				env = map[string]string{"PATH": pathDir + ":/usr/bin:/bin"}
			}
			s := newSandbox(t, env)
			c := remote.Config{Port: port, Install: provider.Install{Mode: tc.mode}}
			if tc.upload {
				c.Install.BinaryPath = bin
			}
			c.Install.Agents = tc.agents
			if tc.release {
				c.Install.Version = "9.8.7"
				c.Install.ReleaseURL = release(t, "9.8.7", false).URL
			}
			if !tc.noToken {
				var err error
				if c.Token, err = remote.NewToken(); err != nil {
					t.Fatal(err)
				}
			}
			in, err := remote.Bootstrap(t.Context(), s, c)
			if err != nil {
				t.Fatal(err)
			}
			if in.How != tc.how || in.Home != s.sb.HostPath("/home/user") {
				t.Fatalf("installed %+v", in)
			}
			switch tc.how {
			case "path":
				if in.Bin != filepath.Join(pathDir, "sandbox-agent") {
					t.Fatalf("bin %s", in.Bin)
				}
			default:
				b, err := s.sb.ReadFile("/home/user/.local/bin/sandbox-agent")
				want, _ := os.ReadFile(bin)
				if err != nil || sha256.Sum256(b) != sha256.Sum256(want) {
					t.Fatalf("installed binary differs (%v)", err)
				}
				if fi, err := os.Stat(s.sb.HostPath("/home/user/.local/bin/sandbox-agent")); err != nil || fi.Mode().Perm()&0o111 == 0 {
					t.Fatalf("not executable: %v %v", fi, err)
				}
			}
			for _, a := range tc.agents {
				if _, err := s.sb.ReadFile("/home/user/.local/share/sandbox-agent/bin/agent_processes/" + a + "-acp"); err != nil {
					t.Fatalf("agent %s not installed: %v", a, err)
				}
			}
			if tc.noToken {
				if st := status(t, s, ""); st != 200 {
					t.Fatalf("no-token server: %d", st)
				}
				if _, err := remote.ReadToken(t.Context(), s); !errors.Is(err, remote.ErrNoToken) {
					t.Fatalf("ReadToken: %v", err)
				}
				return
			}
			if st := status(t, s, ""); st != http.StatusUnauthorized {
				t.Fatalf("without token: %d", st)
			}
			if st := status(t, s, c.Token); st != 200 {
				t.Fatalf("with token: %d", st)
			}
			fi, err := os.Stat(s.sb.HostPath("/home/user/.config/sandbox-agent/server-token"))
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("token file: %v %v", fi, err)
			}
			if tok, err := remote.ReadToken(t.Context(), s); err != nil || tok != c.Token {
				t.Fatalf("ReadToken %q %v", tok, err)
			}
			for _, sc := range s.scripts {
				if strings.Contains(sc, c.Token) {
					t.Fatalf("the token is on a command line: %q", sc)
				}
			}
		})
	}
}

// TestStartServerIsIdempotent: EnsureServer's command does nothing when the
// server runs, and starts it again after the sandbox lost its processes.
func TestStartServerIsIdempotent(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the sandbox runs the linux test binary")
	}
	s := newSandbox(t, nil)
	tok, _ := remote.NewToken()
	c := remote.Config{Port: port, Token: tok, Install: provider.Install{BinaryPath: bin}}
	if _, err := remote.Bootstrap(t.Context(), s, c); err != nil {
		t.Fatal(err)
	}
	pids := s.sb.Leftovers()
	if err := remote.StartServer(t.Context(), s, c); err != nil {
		t.Fatal(err)
	}
	if after := s.sb.Leftovers(); len(after) != len(pids) {
		t.Fatalf("a running server was started again: %v → %v", pids, after)
	}
	// A cold boot: everything is gone, the files stay.
	if err := s.sb.Pause(t.Context(), fakesandbox.Kill); err != nil {
		t.Fatal(err)
	}
	if err := s.sb.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := serverprobe.Check(t.Context(), http.DefaultClient, s.url(), tok); err == nil {
		t.Fatal("server answers after the cold boot")
	}
	if err := remote.StartServer(t.Context(), s, c); err != nil {
		t.Fatal(err)
	}
	if st := status(t, s, tok); st != 200 {
		t.Fatalf("after restart: %d", st)
	}
}

func TestBootstrapRefuses(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the sandbox runs the linux test binary")
	}
	notELF := filepath.Join(t.TempDir(), "sandbox-agent")
	if err := os.WriteFile(notELF, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		install func(t *testing.T) provider.Install
		corrupt bool
		want    string
	}{
		{"sha256 mismatch", func(*testing.T) provider.Install { return provider.Install{BinaryPath: bin} }, true, "uploaded sandbox-agent has sha256"},
		{"not an executable", func(*testing.T) provider.Install { return provider.Install{BinaryPath: notELF} }, false, "not a Linux (ELF) executable"},
		{"missing BinaryPath file", func(*testing.T) provider.Install { return provider.Install{BinaryPath: notELF + ".gone"} }, false, "read BinaryPath"},
		{"release checksum mismatch", func(t *testing.T) provider.Install {
			return provider.Install{Version: "1.0.0", ReleaseURL: release(t, "1.0.0", true).URL}
		}, false, "checksum mismatch"},
		{"release unreachable", func(*testing.T) provider.Install {
			return provider.Install{Version: "1.0.0", ReleaseURL: "http://127.0.0.1:1"}
		}, false, "install sandbox-agent (script)"},
		{"none and not on PATH", func(*testing.T) provider.Install { return provider.Install{Mode: provider.InstallNone} }, false, "not on the sandbox's PATH"},
		{"upload without a binary", func(*testing.T) provider.Install { return provider.Install{Mode: provider.InstallUpload} }, false, "needs Install.BinaryPath"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSandbox(t, nil)
			s.corrupt = tc.corrupt
			_, err := remote.Bootstrap(t.Context(), s, remote.Config{Port: port, Token: "t0ken", Install: tc.install(t)})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if _, err := s.sb.ReadFile("/home/user/.local/bin/sandbox-agent"); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("something was installed: %v", err)
			}
			if len(s.sb.Leftovers()) != 0 {
				t.Fatalf("processes left: %v", s.sb.Leftovers())
			}
		})
	}
}

func TestDefaultReleaseURL(t *testing.T) {
	if got := remote.DefaultReleaseURL("v" + sandboxagent.Version); got != "https://github.com/sandbox-agent-go/sandbox-agent/releases/download/v"+sandboxagent.Version {
		t.Fatal(got)
	}
}
