//go:build unix

package daytona

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	sandboxagent "github.com/sandbox-agent-go/sandbox-agent"
	"github.com/sandbox-agent-go/sandbox-agent/provider/internal/fakesandbox/daytonafake"
)

// The toolbox wire: the script goes to the shell's stdin (several lines,
// no quoting), stdout and stderr come back merged with the exit code, a
// file upload lands at its path, and the timeout sent kills the command
// (408).
func TestToolbox(t *testing.T) {
	f := daytonafake.New(t, daytonafake.Options{})
	p, err := New(Options{APIKey: daytonafake.DefaultAPIKey, APIURL: f.APIURL, HTTPClient: f.Client()})
	if err != nil {
		t.Fatal(err)
	}
	sb, err := p.cp.create(t.Context(), p.createRequest())
	if err != nil {
		t.Fatal(err)
	}
	if sb, err = p.ensureStarted(t.Context(), sb.ID); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Destroy(t.Context(), sb.ID) })
	tb, err := newToolbox(p.api, sb, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.WriteFile(t.Context(), "/home/daytona/dir/it's.txt", []byte("uploaded\n")); err != nil {
		t.Fatal(err)
	}
	res, err := tb.Exec(t.Context(), "echo out\necho err >&2\ncat \"$HOME/dir/it's.txt\"\nexit 3")
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 3 || !strings.Contains(res.Output, "out\n") || !strings.Contains(res.Output, "err\n") ||
		!strings.Contains(res.Output, "uploaded\n") {
		t.Fatalf("Exec: %+v", res)
	}
	begin := time.Now()
	_, err = tb.Exec(t.Context(), "sleep 30")
	var ae *sandboxagent.ProviderAPIError
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusRequestTimeout || ae.Code != "REQUEST_TIMEOUT" ||
		ae.Message != "command execution timeout" || time.Since(begin) > 10*time.Second {
		t.Fatalf("Exec past its timeout: %v after %s", err, time.Since(begin))
	}
}

func TestDecodeError(t *testing.T) {
	for _, tc := range []struct{ body, code, message string }{
		{`{"path":"/api/sandbox/x","statusCode":404,"error":"Not Found","message":"Sandbox with ID or name x not found"}`,
			"Not Found", "Sandbox with ID or name x not found"},
		{`{"statusCode":400,"error":"Bad Request","message":["cpu must be a number","memory must be a number"]}`,
			"Bad Request", "cpu must be a number; memory must be a number"},
		{`{"statusCode":408,"message":"command execution timeout","code":"REQUEST_TIMEOUT","method":"POST"}`,
			"REQUEST_TIMEOUT", "command execution timeout"},
		{`<html>bad gateway</html>`, "", ""},
	} {
		code, msg := decodeError(0, []byte(tc.body))
		if code != tc.code || msg != tc.message {
			t.Errorf("%s: %q %q", tc.body, code, msg)
		}
	}
}
