package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sandbox-agent-go/sandbox-agent/internal/agents"
	"github.com/sandbox-agent-go/sandbox-agent/internal/app"
	"github.com/sandbox-agent-go/sandbox-agent/internal/testutil/apptest"
)

// Amp and Cursor cannot run here (amp-acp is not on this npm registry and
// needs an Amp account; cursor-agent is not on npm): the user must get an
// error that says what to do. These tests need no agents cache.

func startWith(t *testing.T, opts agents.Options) string {
	t.Helper()
	srv := apptest.Start(t, apptest.Options{Configure: func(c *app.Config) {
		c.Version = "e2e"
		opts.DataDir = c.Agents.DataDir
		opts.Logger = c.Logger
		opts.Env = baseEnv(c.Home)
		c.Agents = opts
	}})
	return srv.URL
}

func postJSON(t *testing.T, url, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

// npm404 is an npm that answers like a registry without the package.
func npm404(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "npm")
	script := "#!/bin/sh\necho 'npm error code E404' >&2\necho 'npm error 404 Not Found - GET https://registry.npmjs.org/amp-acp - Not found' >&2\nexit 1\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAmpErrorIsActionable(t *testing.T) {
	url := startWith(t, agents.Options{RegistryURL: "off", NPM: npm404(t)})
	for _, path := range []string{"/v1/agents/amp/install", "/v1/acp/amp-1?agent=amp"} {
		body := `{}`
		if strings.Contains(path, "acp") {
			body = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":1}}`
		}
		status, p := postJSON(t, url+path, body)
		details, _ := p["details"].(map[string]any)
		msg, _ := details["stderr"].(string)
		if status != 500 || p["type"] != "urn:sandbox-agent:error:install_failed" {
			t.Fatalf("%s: %d %v", path, status, p)
		}
		for _, want := range []string{"step agent_process failed", "amp-acp@0.7.0", "does not exist on the configured npm registry", "AMP_API_KEY", "SANDBOX_AGENT_ACP_REGISTRY_URL"} {
			if !strings.Contains(msg, want) {
				t.Errorf("%s: %q missing from %q", path, want, msg)
			}
		}
	}
	resp, err := http.Get(url + "/v1/agents/amp")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var info agents.Info
	_ = json.NewDecoder(resp.Body).Decode(&info)
	if info.Installed {
		t.Fatal("amp reported installed after a failed install")
	}
}

func TestCursorErrorIsActionable(t *testing.T) {
	opts := agents.Options{RegistryURL: "off", RequirePreinstall: true}
	url := startWith(t, opts)
	// Not installed, preinstall required: agent_not_installed.
	status, p := postJSON(t, url+"/v1/acp/c1?agent=cursor", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":1}}`)
	if status != 404 || p["type"] != "urn:sandbox-agent:error:agent_not_installed" {
		t.Fatalf("%d %v", status, p)
	}
}

func TestCursorWithoutCLIIsActionable(t *testing.T) {
	home := t.TempDir()
	dataDir := t.TempDir()
	// The adapter is installed (here: a stand-in launcher); the Cursor CLI
	// it needs is not.
	launcher := filepath.Join(dataDir, "bin", "agent_processes", "cursor-acp")
	writeFile(t, launcher, "#!/bin/sh\nexec cat\n")
	if err := os.Chmod(launcher, 0o755); err != nil {
		t.Fatal(err)
	}
	url := startServer(t, dataDir, baseEnv(home), home)
	status, p := postJSON(t, url+"/v1/acp/c1?agent=cursor", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":1}}`)
	detail, _ := p["detail"].(string)
	if status != 502 || !strings.Contains(detail, "`cursor-agent` is not on PATH") || !strings.Contains(detail, "https://cursor.com/install") || !strings.Contains(detail, "CURSOR_API_KEY") {
		t.Fatalf("%d %v", status, p)
	}
}
