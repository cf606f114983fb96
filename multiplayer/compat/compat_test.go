// Package compat drives the official rivetkit client — three pinned
// versions, both encodings, from Node and from headless Chromium — against
// the Go multiplayer runtime, with the same scripts that pass against
// rivetkit's own server (rivet-server.mjs; see README.md).
package compat

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sandbox-agent-go/sandbox-agent/multiplayer"
	"github.com/sandbox-agent-go/sandbox-agent/multiplayer/backend/sqlite"
	"github.com/sandbox-agent-go/sandbox-agent/multiplayer/internal/compatactors"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// need skips (or, in CI, fails) when a tool is missing.
func need(t *testing.T, what string, ok bool) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is missing; the README's test command installs it", what)
	}
	t.Skipf("skipping: %s is missing (run `npm ci` in multiplayer/compat; apt-get install chromium)", what)
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func requireNode(t *testing.T) {
	t.Helper()
	_, err := exec.LookPath("node")
	need(t, "node", err == nil)
	need(t, "multiplayer/compat/node_modules", exists("node_modules/rivetkit/package.json"))
}

// serve runs compatactors on a fresh local backend over loopback HTTP.
func serve(t *testing.T, origins ...string) string {
	t.Helper()
	b, err := sqlite.Open(t.Context(), sqlite.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	reg := multiplayer.NewRegistry()
	compatactors.Register(reg, compatactors.Options{})
	rt, err := multiplayer.Open(context.Background(), reg, multiplayer.Config{Backend: b, Logger: slog.New(slog.DiscardHandler), AllowedOrigins: origins})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(rt.Handler())
	t.Cleanup(func() {
		// Actors and their connections first, then the listener.
		_ = rt.Close()
		srv.CloseClientConnections()
		srv.Close()
		_ = b.Close()
	})
	return srv.URL
}

type check struct {
	Name    string          `json:"name"`
	OK      bool            `json:"ok"`
	Detail  json.RawMessage `json:"detail"`
	Summary bool            `json:"summary"`
	Passed  int             `json:"passed"`
	Failed  int             `json:"failed"`
}

// runScript runs a node script that prints one JSON check per line and
// fails the test with every failed check.
func runScript(t *testing.T, args ...string) []check {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var checks []check
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var c check
		if json.Unmarshal(sc.Bytes(), &c) == nil && (c.Name != "" || c.Summary) {
			checks = append(checks, c)
			if !c.OK && !c.Summary {
				t.Errorf("%s: %s", c.Name, c.Detail)
			}
		}
	}
	if err != nil {
		t.Fatalf("node %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, stderr.String())
	}
	if len(checks) == 0 {
		t.Fatalf("no checks reported:\n%s\n%s", out, stderr.String())
	}
	return checks
}

// TestConformanceMatrix: every pinned client version in both encodings
// passes every check (rivetkit's own 2.3.19 server fails the older
// clients in BARE: it answers only v4; we answer in the client's version).
func TestConformanceMatrix(t *testing.T) {
	requireNode(t)
	endpoint := serve(t)
	for _, client := range []string{"rivetkit", "rivetkit-2.2", "rivetkit-2.0"} {
		for _, enc := range []string{"json", "bare"} {
			t.Run(client+"/"+enc, func(t *testing.T) {
				t.Parallel()
				checks := runScript(t, "conformance.mjs", endpoint, "--client", client, "--encoding", enc,
					"--server", "go", "--key-prefix", client+"-"+enc)
				last := checks[len(checks)-1]
				if !last.Summary || last.Failed != 0 || last.Passed < 14 {
					t.Fatalf("summary %+v", last)
				}
			})
		}
	}
}

// TestBrowserTwoTabs: the docs' browser code in headless Chromium, two
// tabs on one workspace, the page on another origin (allowed by
// AllowedOrigins: CORS with credentials in a real browser), no request to
// a third origin.
func TestBrowserTwoTabs(t *testing.T) {
	requireNode(t)
	need(t, "/usr/bin/chromium", exists("/usr/bin/chromium"))
	endpoint := serve(t, "*")
	checks := runScript(t, "browser/browser.mjs", endpoint)
	for _, c := range checks {
		if !c.OK {
			t.Fatalf("%s failed", c.Name)
		}
	}
}
