package process

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sandbox-agent-go/sandbox-agent/internal/server"
	"github.com/sandbox-agent-go/sandbox-agent/internal/testutil/wait"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testEnv is a Manager served over httptest with the real router.
type testEnv struct {
	t   testing.TB
	m   *Manager
	srv *httptest.Server
}

type envOption func(*Options, *server.Config)

func newEnv(t testing.TB, opts ...envOption) *testEnv {
	t.Helper()
	o := Options{DrainGrace: 500 * time.Millisecond}
	var sc server.Config
	for _, f := range opts {
		f(&o, &sc)
	}
	m := NewManager(o)
	h, err := server.NewHandler(sc, append(server.BaseRoutes("test"), m.Routes()...))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	e := &testEnv{t: t, m: m, srv: srv}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := m.Close(ctx); err != nil {
			t.Errorf("Manager.Close: %v", err)
		}
		srv.Close()
	})
	return e
}

func withConfig(c Config) envOption {
	return func(o *Options, _ *server.Config) { o.Config = &c }
}

// do sends a request; body may be nil, a string (sent as is) or a value
// marshalled to JSON. Content-Type is application/json when body is non-nil.
func (e *testEnv) do(method, path string, body any, hdr ...string) (*http.Response, []byte) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return res, raw
}

// call expects status want and decodes the JSON answer into out (if non-nil).
func (e *testEnv) call(method, path string, body any, want int, out any) []byte {
	e.t.Helper()
	res, raw := e.do(method, path, body)
	if res.StatusCode != want {
		e.t.Fatalf("%s %s: status %d, want %d; body %s", method, path, res.StatusCode, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			e.t.Fatalf("%s %s: decoding %s: %v", method, path, raw, err)
		}
	}
	return raw
}

func (e *testEnv) create(body map[string]any) Info {
	e.t.Helper()
	var in Info
	e.call("POST", "/v1/processes", body, 200, &in)
	return in
}

func (e *testEnv) get(id string) Info {
	e.t.Helper()
	var in Info
	e.call("GET", "/v1/processes/"+id, nil, 200, &in)
	return in
}

// waitExited polls until the process is exited.
func (e *testEnv) waitExited(id string) Info {
	e.t.Helper()
	var in Info
	wait.Until(e.t, 10*time.Second, "process "+id+" exits", func() bool {
		in = e.get(id)
		return in.Status == StatusExited
	})
	return in
}

type logsJSON struct {
	ProcessID string         `json:"processId"`
	Stream    string         `json:"stream"`
	Entries   []logEntryJSON `json:"entries"`
}

func (e *testEnv) logs(id, query string) logsJSON {
	e.t.Helper()
	var l logsJSON
	e.call("GET", "/v1/processes/"+id+"/logs"+query, nil, 200, &l)
	return l
}

func joinData(es []logEntryJSON) string {
	var b strings.Builder
	for _, e := range es {
		b.Write(e.Data)
	}
	return b.String()
}

// waitOutput polls the logs until their concatenated data contains want.
func (e *testEnv) waitOutput(id, query, want string) logsJSON {
	e.t.Helper()
	var l logsJSON
	wait.Until(e.t, 10*time.Second, fmt.Sprintf("output of %s contains %q", id, want), func() bool {
		l = e.logs(id, query)
		return strings.Contains(joinData(l.Entries), want)
	})
	return l
}

// eventually polls cond (every few ms) until it holds or timeout passes.
// groupAlive reports whether any process (zombies included) is in group pgid.
func groupAlive(pgid int) bool { return syscall.Kill(-pgid, 0) != syscall.ESRCH }

// liveMembers lists non-zombie processes of group pgid (for failure messages).
func liveMembers(pgid int) []string {
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, d := range ents {
		if _, err := strconv.Atoi(d.Name()); err != nil {
			continue
		}
		raw, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(raw)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 2 && f[2] == strconv.Itoa(pgid) && f[0] != "Z" {
			out = append(out, d.Name()+":"+f[0])
		}
	}
	return out
}

// assertGroupGone waits until kill(-pgid, 0) fails with ESRCH: every member
// is dead and reaped. Orphaned grandchildren are reaped by PID 1, which in
// some sandboxes only does so every couple of seconds, hence the deadline;
// live (non-zombie) members must be gone at once.
func assertGroupGone(t testing.TB, pgid int) {
	t.Helper()
	wait.Until(t, 2*time.Second, fmt.Sprintf("group %d has no live member", pgid), func() bool {
		return len(liveMembers(pgid)) == 0
	})
	// Zombies keep the group alive until they are reaped.
	wait.Until(t, 15*time.Second, fmt.Sprintf("process group %d no longer exists", pgid), func() bool {
		return !groupAlive(pgid)
	})
}

func problemDetail(t testing.TB, raw []byte) (string, map[string]any) {
	t.Helper()
	var p struct {
		Type    string         `json:"type"`
		Status  int            `json:"status"`
		Detail  string         `json:"detail"`
		Details map[string]any `json:"details"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatalf("not a problem document: %s", raw)
	}
	return p.Detail, p.Details
}

func contextWithCancel() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
