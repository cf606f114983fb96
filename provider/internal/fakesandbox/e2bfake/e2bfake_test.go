//go:build unix

package e2bfake_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/provider/internal/fakesandbox"
	"github.com/sandbox-agent-go/sandbox-agent/provider/internal/fakesandbox/e2bfake"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type sandbox struct {
	SandboxID       string `json:"sandboxID"`
	EnvdAccessToken string `json:"envdAccessToken"`
	Domain          string `json:"domain"`
}

func call(t *testing.T, f *e2bfake.Fake, method, path, body string, header ...string) (int, string) {
	t.Helper()
	u := path
	if !strings.HasPrefix(u, "http") {
		u = f.APIURL + path
	}
	req, _ := http.NewRequestWithContext(t.Context(), method, u, strings.NewReader(body))
	req.Header.Set("X-API-Key", f.APIKey())
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := f.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func create(t *testing.T, f *e2bfake.Fake, body string) sandbox {
	t.Helper()
	status, out := call(t, f, http.MethodPost, "/sandboxes", body)
	var sb sandbox
	if status != http.StatusCreated || json.Unmarshal([]byte(out), &sb) != nil || sb.SandboxID == "" || sb.Domain != f.Domain {
		t.Fatalf("create: %d %s", status, out)
	}
	return sb
}

// exec starts script through envd and reads the stream to its end, or,
// with startOnly, returns after the start event (closing the stream).
func exec(t *testing.T, f *e2bfake.Fake, sb sandbox, script string, header http.Header, startOnly bool) (events []string) {
	t.Helper()
	msg, _ := json.Marshal(map[string]any{"process": map[string]any{"cmd": "/bin/bash", "args": []string{"-l", "-c", script}}})
	frame := append([]byte{0, 0, 0, 0, 0}, msg...)
	binary.BigEndian.PutUint32(frame[1:], uint32(len(msg)))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, f.SandboxURL(sb.SandboxID, e2bfake.EnvdPort)+"/process.Process/Start", bytes.NewReader(frame))
	if header != nil {
		req.Header = header.Clone()
	}
	req.Header.Set("Content-Type", "application/connect+json")
	req.Header.Set("X-Access-Token", sb.EnvdAccessToken)
	resp, err := f.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	for {
		var h [5]byte
		if _, err := io.ReadFull(resp.Body, h[:]); err != nil {
			t.Fatalf("stream: %v after %q", err, events)
		}
		b := make([]byte, binary.BigEndian.Uint32(h[1:]))
		if _, err := io.ReadFull(resp.Body, b); err != nil {
			t.Fatal(err)
		}
		events = append(events, string(b))
		if h[0]&2 != 0 || startOnly {
			return events
		}
	}
}

// TestProcessLifetime: envd's process lives until Connect-Timeout-Ms, and
// not shorter: closing the stream does not end it.
func TestProcessLifetime(t *testing.T) {
	f := e2bfake.New(t, e2bfake.Options{})
	sb := create(t, f, `{"templateID":"base","secure":true}`)
	ev := exec(t, f, sb, "echo hi; exit 3", nil, false)
	if len(ev) != 4 || !strings.Contains(ev[0], `"start":{"pid":`) || ev[1] != `{"event":{"data":{"stdout":"aGkK"}}}` ||
		!strings.Contains(ev[2], `"exitCode":3`) || ev[3] != `{}` {
		t.Fatalf("events %q", ev)
	}
	// No deadline: the process outlives its stream.
	exec(t, f, sb, "sleep 60", nil, true)
	// A deadline kills it.
	ev = exec(t, f, sb, "sleep 60", http.Header{"Connect-Timeout-Ms": {"100"}}, false)
	if !strings.Contains(ev[len(ev)-2], `"exited":false`) {
		t.Fatalf("events after the deadline %q", ev)
	}
	execs := f.Execs(sb.SandboxID)
	select {
	case <-execs[1].Done:
		t.Fatal("the process without a deadline ended with its stream")
	default:
	}
	if execs[0].Command != "echo hi; exit 3" || execs[2].Header.Get("Connect-Timeout-Ms") != "100" {
		t.Fatalf("execs %+v", execs)
	}
	// A wrong access token is refused.
	if status, _ := call(t, f, http.MethodPost, f.SandboxURL(sb.SandboxID, e2bfake.EnvdPort)+"/process.Process/Start", "",
		"X-Access-Token", "wrong", "Content-Type", "application/connect+json"); status != http.StatusUnauthorized {
		t.Fatalf("wrong envd token: %d", status)
	}
}

// TestLifecycle: pause (409 twice), port 502 bodies, connect 201/200,
// delete 204 then 404, and the shared host with E2b-Sandbox-* headers.
func TestLifecycle(t *testing.T) {
	f := e2bfake.New(t, e2bfake.Options{})
	sb := create(t, f, `{"templateID":"base","timeout":60,"autoPause":true,"secure":true}`)
	id := sb.SandboxID
	if _, err := f.Sandbox(id).Port(3000); err != nil {
		t.Fatal(err)
	}
	if status, body := call(t, f, http.MethodGet, f.SandboxURL(id, 3000)+"/", ""); status != http.StatusBadGateway ||
		!strings.Contains(body, "port is not open") || !strings.Contains(body, `"port":3000`) {
		t.Fatalf("closed port: %d %s", status, body)
	}
	if status, body := call(t, f, http.MethodGet, "http://sandbox."+f.Domain+"/health", "", "E2b-Sandbox-Id", id, "E2b-Sandbox-Port", "49983", "X-Access-Token", sb.EnvdAccessToken); status != http.StatusNoContent {
		t.Fatalf("envd health on the shared host: %d %s", status, body)
	}
	for i, want := range []int{http.StatusNoContent, http.StatusConflict} {
		if status, body := call(t, f, http.MethodPost, "/sandboxes/"+id+"/pause", ""); status != want {
			t.Fatalf("pause %d: %d %s", i, status, body)
		}
	}
	if status, body := call(t, f, http.MethodGet, "/sandboxes/"+id, ""); status != http.StatusOK || !strings.Contains(body, `"state":"paused"`) {
		t.Fatalf("get paused: %d %s", status, body)
	}
	if status, body := call(t, f, http.MethodGet, f.SandboxURL(id, 3000)+"/", ""); status != http.StatusBadGateway || !strings.Contains(body, "The sandbox was not found") {
		t.Fatalf("paused port: %d %s", status, body)
	}
	for i, want := range []int{http.StatusCreated, http.StatusOK} {
		if status, body := call(t, f, http.MethodPost, "/sandboxes/"+id+"/connect", `{"timeout":600}`); status != want {
			t.Fatalf("connect %d: %d %s", i, status, body)
		}
	}
	if f.Sandbox(id).State() != fakesandbox.Running || time.Until(f.EndAt(id)) < 500*time.Second {
		t.Fatalf("after connect: %s, ends %s", f.Sandbox(id).State(), f.EndAt(id))
	}
	if status, _ := call(t, f, http.MethodDelete, "/sandboxes/"+id, ""); status != http.StatusNoContent {
		t.Fatalf("delete: %d", status)
	}
	for _, path := range []string{"/sandboxes/" + id, "/sandboxes/" + id + "/connect"} {
		method := http.MethodGet
		if strings.HasSuffix(path, "connect") {
			method = http.MethodPost
		}
		if status, body := call(t, f, method, path, `{"timeout":1}`); status != http.StatusNotFound || !strings.Contains(body, "doesn't exist") {
			t.Fatalf("%s after delete: %d %s", path, status, body)
		}
	}
	if status, _ := call(t, f, http.MethodGet, "/sandboxes/"+id, "", "X-API-Key", "e2b_wrong"); status != http.StatusUnauthorized {
		t.Fatalf("wrong key: %d", status)
	}
}

// TestPauseWithoutMemory: memory:false (or PauseLosesMemory) kills the
// processes; resume comes back empty.
func TestPauseWithoutMemory(t *testing.T) {
	f := e2bfake.New(t, e2bfake.Options{})
	sb := create(t, f, `{"templateID":"base","secure":true}`)
	exec(t, f, sb, "sleep 60", nil, true)
	if status, _ := call(t, f, http.MethodPost, "/sandboxes/"+sb.SandboxID+"/pause", `{"memory":false}`); status != http.StatusNoContent {
		t.Fatalf("pause: %d", status)
	}
	select {
	case <-f.Execs(sb.SandboxID)[0].Done:
	default:
		t.Fatal("the process survived a pause without memory")
	}
}
