package e2b

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/provider/internal/remote"
)

// TestExecStream: Exec reads to the end event through keepalives, keeps
// every output kind, reports a killed process as exit -1 and a Connect
// error as an error.
func TestExecStream(t *testing.T) {
	for _, tc := range []struct {
		name     string
		frames   [][]byte
		code     int
		output   string
		errMatch string
	}{
		{"exit 0", [][]byte{frame(0, `{"event":{"start":{"pid":7}}}`), frame(0, `{"event":{"keepalive":{}}}`),
			frame(0, `{"event":{"data":{"stdout":"b2s="}}}`), frame(0, `{"event":{"data":{"pty":"IQ=="}}}`),
			frame(0, `{"event":{"end":{"exited":true,"status":"exit status 0"}}}`), frame(2, `{}`)}, 0, "ok!", ""},
		{"killed", [][]byte{frame(0, `{"event":{"start":{"pid":7}}}`),
			frame(0, `{"event":{"end":{"exited":false,"status":"signal: killed","error":"context deadline exceeded"}}}`), frame(2, `{}`)},
			-1, "\ncontext deadline exceeded", ""},
		{"connect error", [][]byte{frame(2, `{"error":{"code":"permission_denied","message":"no such user"}}`)}, 0, "", "permission_denied: no such user"},
		{"cut short", [][]byte{frame(0, `{"event":{"start":{"pid":7}}}`), frame(2, `{}`)}, 0, "", "without the process's end"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/process.Process/Start" || r.Header.Get("Content-Type") != "application/connect+json" ||
					r.Header.Get("Connect-Timeout-Ms") != "60000" {
					http.Error(w, "bad request "+r.URL.Path, http.StatusBadRequest)
					return
				}
				w.Header().Set("Content-Type", "application/connect+json")
				for _, f := range tc.frames {
					_, _ = w.Write(f)
				}
			}))
			defer srv.Close()
			e := &envd{api: &remote.API{Provider: "e2b", BaseURL: srv.URL, Client: srv.Client()}, commandTimeout: time.Minute}
			res, err := e.Exec(t.Context(), "true")
			if tc.errMatch != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errMatch) {
					t.Fatalf("err %v, want %q", err, tc.errMatch)
				}
				return
			}
			if err != nil || res.ExitCode != tc.code || res.Output != tc.output {
				t.Fatalf("%+v %v, want exit %d output %q", res, err, tc.code, tc.output)
			}
		})
	}
}

// TestLegacyUser: envd before 0.4.0 has no default user, so one is named.
func TestLegacyUser(t *testing.T) {
	for v, want := range map[string]string{"": "", "0.3.9": "user", "0.1.4": "user", "0.4.0": "", "0.5.7": "", "1.0": "", "0.10.0": ""} {
		if got := legacyUser(v); got != want {
			t.Errorf("legacyUser(%q) = %q, want %q", v, got, want)
		}
	}
}
