//go:build unix

package provider_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/sandbox-agent-go/sandbox-agent/internal/testutil/testbin"
	"github.com/sandbox-agent-go/sandbox-agent/provider/internal/fakesandbox/daytonafake"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func build(t *testing.T, dir, pkg string) string {
	t.Helper()
	bin, err := testbin.Build(dir, pkg)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestProvidersExample runs examples/providers (here because the vendor fakes
// are internal to provider/) with each provider chosen by
// name: local for real, Daytona against its fake (the program only gets
// environment variables, as against the real service; the fake's preview
// hosts are reached through it as an HTTP proxy, which stands in for DNS),
// and a missing credential.
func TestProvidersExample(t *testing.T) {
	dir := t.TempDir()
	server := build(t, dir, "./cmd/sandbox-agent")
	prog := build(t, dir, "./examples/providers")
	fake := daytonafake.New(t, daytonafake.Options{})
	for _, tc := range []struct {
		name string
		env  []string
		fail bool
		want []string
	}{
		{"local", []string{"SANDBOX_PROVIDER=local", "SANDBOX_AGENT_BIN=" + server},
			false, []string{"sandbox: local/", "Mock reply: hello from local", "stop reason: end_turn"}},
		{"daytona", []string{"SANDBOX_PROVIDER=daytona", "DAYTONA_API_KEY=" + daytonafake.DefaultAPIKey,
			"DAYTONA_API_URL=" + fake.APIURL, "HTTP_PROXY=" + strings.TrimSuffix(fake.APIURL, "/api"), "SANDBOX_AGENT_UPLOAD=" + server},
			false, []string{"sandbox: daytona/", "Mock reply: hello from daytona", "stop reason: end_turn"}},
		{"daytona without a key", []string{"SANDBOX_PROVIDER=daytona", "DAYTONA_API_KEY="},
			true, []string{"daytona needs credentials: set DAYTONA_API_KEY"}},
		{"e2b without a key", []string{"SANDBOX_PROVIDER=e2b", "E2B_API_KEY="},
			true, []string{"e2b needs credentials: set E2B_API_KEY"}},
		{"vercel without a token", []string{"SANDBOX_PROVIDER=vercel", "VERCEL_TOKEN=", "VERCEL_OIDC_TOKEN="},
			true, []string{"vercel needs credentials: set VERCEL_TOKEN or VERCEL_OIDC_TOKEN"}},
		{"unknown", []string{"SANDBOX_PROVIDER=nope"}, true, []string{`unknown SANDBOX_PROVIDER "nope"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.CommandContext(t.Context(), prog)
			cmd.Env = append(os.Environ(), "HOME="+dir)
			cmd.Env = append(cmd.Env, tc.env...)
			out, err := cmd.CombinedOutput()
			if (err != nil) != tc.fail {
				t.Fatalf("exit %v (want failure %v)\n%s", err, tc.fail, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(out), w) {
					t.Fatalf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}
