package process

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sandbox-agent-go/sandbox-agent/internal/server"
	"github.com/sandbox-agent-go/sandbox-agent/internal/testutil/wait"
)

func ptr[T any](v T) *T { return &v }

func TestConfigEndpoints(t *testing.T) {
	e := newEnv(t)
	raw := e.call("GET", "/v1/processes/config", nil, 200, nil)
	want := `{"maxConcurrentProcesses":64,"defaultRunTimeoutMs":30000,"maxRunTimeoutMs":300000,"maxOutputBytes":1048576,"maxLogBytesPerProcess":10485760,"maxInputBytesPerRequest":65536}`
	if string(raw) != want {
		t.Fatalf("GET config = %s\nwant %s", raw, want)
	}
	full := func(mod func(map[string]any)) map[string]any {
		c := map[string]any{"maxConcurrentProcesses": 4, "defaultRunTimeoutMs": 1000, "maxRunTimeoutMs": 2000,
			"maxOutputBytes": 10, "maxLogBytesPerProcess": 20, "maxInputBytesPerRequest": 8}
		if mod != nil {
			mod(c)
		}
		return c
	}
	tests := []struct {
		name   string
		body   any
		status int
		want   string // exact body (JSON) or detail (problem) or text
	}{
		{"valid", full(nil), 200, `{"maxConcurrentProcesses":4,"defaultRunTimeoutMs":1000,"maxRunTimeoutMs":2000,"maxOutputBytes":10,"maxLogBytesPerProcess":20,"maxInputBytesPerRequest":8}`},
		{"default timeout clamped", full(func(c map[string]any) { c["defaultRunTimeoutMs"] = 5000 }), 200,
			`{"maxConcurrentProcesses":4,"defaultRunTimeoutMs":2000,"maxRunTimeoutMs":2000,"maxOutputBytes":10,"maxLogBytesPerProcess":20,"maxInputBytesPerRequest":8}`},
		{"zero processes", full(func(c map[string]any) { c["maxConcurrentProcesses"] = 0 }), 400, "invalid request: maxConcurrentProcesses must be greater than 0"},
		{"zero timeout", full(func(c map[string]any) { c["maxRunTimeoutMs"] = 0 }), 400, "invalid request: timeouts must be greater than 0"},
		{"zero bytes", full(func(c map[string]any) { c["maxInputBytesPerRequest"] = 0 }), 400, "invalid request: byte limits must be greater than 0"},
		{"missing field", full(func(c map[string]any) { delete(c, "maxOutputBytes") }), 422, "Failed to deserialize the JSON body into the target type: missing field `maxOutputBytes`"},
		{"negative", full(func(c map[string]any) { c["maxOutputBytes"] = -1 }), 422, ""},
		{"bad json", "{", 400, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, raw := e.do("POST", "/v1/processes/config", tc.body)
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, tc.status, raw)
			}
			switch {
			case tc.want == "":
			case tc.status == 400:
				if d, _ := problemDetail(t, raw); d != tc.want {
					t.Fatalf("detail %q, want %q", d, tc.want)
				}
			case string(raw) != tc.want:
				t.Fatalf("body %s, want %s", raw, tc.want)
			}
		})
	}
	// The stored config is the last valid one.
	var c Config
	e.call("GET", "/v1/processes/config", nil, 200, &c)
	if c.DefaultRunTimeoutMs != 2000 || c.MaxConcurrentProcesses != 4 {
		t.Fatalf("stored config %+v", c)
	}
}

func TestRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dir := t.TempDir()
	tests := []struct {
		name   string
		body   any
		status int
		want   *RunResponse // DurationMs ignored
		detail string
	}{
		{"exit code and streams", map[string]any{"command": "sh", "args": []string{"-c", "echo out; echo err >&2; exit 3"}}, 200,
			&RunResponse{ExitCode: ptr(3), Stdout: "out\n", Stderr: "err\n"}, ""},
		{"cwd and env", map[string]any{"command": "sh", "args": []string{"-c", "pwd; echo $FOO"}, "cwd": dir, "env": map[string]string{"FOO": "bar"}}, 200,
			&RunResponse{ExitCode: ptr(0), Stdout: dir + "\n" + "bar\n"}, ""},
		{"env PATH used for lookup", map[string]any{"command": "true", "env": map[string]string{"PATH": "/nonexistent"}}, 502,
			nil, "stream error: failed to spawn process: No such file or directory (os error 2)"},
		{"truncation", map[string]any{"command": "sh", "args": []string{"-c", "printf 0123456789; printf abcdefghij >&2"}, "maxOutputBytes": 4}, 200,
			&RunResponse{ExitCode: ptr(0), Stdout: "0123", Stderr: "abcd", StdoutTruncated: true, StderrTruncated: true}, ""},
		{"utf8 lossy", map[string]any{"command": "printf", "args": []string{`\342\202 ok \377\360\237\230`}}, 200,
			&RunResponse{ExitCode: ptr(0), Stdout: "\uFFFD ok \uFFFD\uFFFD"}, ""},
		{"signal death", map[string]any{"command": "sh", "args": []string{"-c", "kill -9 $$"}}, 200,
			&RunResponse{ExitCode: nil}, ""},
		{"stdin is empty", map[string]any{"command": "cat"}, 200, &RunResponse{ExitCode: ptr(0)}, ""},
		{"bad command", map[string]any{"command": "definitely-not-a-command-xyz"}, 502, nil,
			"stream error: failed to spawn process: No such file or directory (os error 2)"},
		{"bad cwd", map[string]any{"command": "true", "cwd": "/nonexistent/dir"}, 502, nil,
			"stream error: failed to spawn process: No such file or directory (os error 2)"},
		{"not executable", map[string]any{"command": "/etc/passwd"}, 502, nil,
			"stream error: failed to spawn process: Permission denied (os error 13)"},
		{"empty command", map[string]any{"command": ""}, 400, nil, "invalid request: command must not be empty"},
		{"missing command", map[string]any{"args": []string{}}, 422, nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, raw := e.do("POST", "/v1/processes/run", tc.body)
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, tc.status, raw)
			}
			if tc.detail != "" {
				if d, _ := problemDetail(t, raw); d != tc.detail {
					t.Fatalf("detail %q, want %q", d, tc.detail)
				}
			}
			if tc.want == nil {
				return
			}
			var got RunResponse
			if err := json.Unmarshal(raw, &got); err != nil {
				t.Fatal(err)
			}
			got.DurationMs = 0
			if diff := cmp.Diff(*tc.want, got); diff != "" {
				t.Fatalf("response mismatch (-want +got):\n%s", diff)
			}
			if tc.want.ExitCode == nil && !strings.Contains(string(raw), `"exitCode":null`) {
				t.Fatalf("exitCode must be null, got %s", raw)
			}
		})
	}
}

func TestRunResponseFieldOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	raw := e.call("POST", "/v1/processes/run", map[string]any{"command": "true"}, 200, nil)
	var keys []string
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	_, _ = dec.Token()
	for dec.More() {
		k, _ := dec.Token()
		keys = append(keys, k.(string))
		var v any
		_ = dec.Decode(&v)
	}
	want := []string{"exitCode", "timedOut", "stdout", "stderr", "stdoutTruncated", "stderrTruncated", "durationMs"}
	if !slices.Equal(keys, want) {
		t.Fatalf("keys %v, want %v", keys, want)
	}
}

// A run whose timeout is clamped by maxRunTimeoutMs is killed with its
// whole process group, background children included.
func TestRunTimeoutClampKillsGroup(t *testing.T) {
	t.Parallel()
	c := DefaultConfig()
	c.MaxRunTimeoutMs = 300
	e := newEnv(t, withConfig(c))
	start := time.Now()
	var res RunResponse
	raw := e.call("POST", "/v1/processes/run", map[string]any{
		"command": "sh", "args": []string{"-c", "echo $$; sleep 30 & sleep 30"}, "timeoutMs": 60000,
	}, 200, &res)
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("run took %v: timeout not clamped", el)
	}
	if !res.TimedOut || res.ExitCode != nil || !strings.Contains(string(raw), `"exitCode":null`) {
		t.Fatalf("want timedOut with null exitCode, got %s", raw)
	}
	if res.DurationMs < 300 {
		t.Fatalf("durationMs %d < timeout", res.DurationMs)
	}
	pgid, err := strconv.Atoi(strings.TrimSpace(res.Stdout))
	if err != nil {
		t.Fatalf("stdout %q: %v", res.Stdout, err)
	}
	assertGroupGone(t, pgid)
}

// A client that goes away cancels its run and kills the group.
func TestRunCancelledByClient(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	pidFile := t.TempDir() + "/pid"
	done := make(chan struct{})
	ctx, cancel := contextWithCancel()
	go func() {
		defer close(done)
		req, _ := http.NewRequestWithContext(ctx, "POST", e.srv.URL+"/v1/processes/run",
			strings.NewReader(fmt.Sprintf(`{"command":"sh","args":["-c","echo $$ > %s; sleep 30"]}`, pidFile)))
		req.Header.Set("Content-Type", "application/json")
		if res, err := e.srv.Client().Do(req); err == nil {
			res.Body.Close()
		}
	}()
	var pgid int
	wait.Until(t, 5*time.Second, "run writes its pid", func() bool {
		b, err := os.ReadFile(pidFile)
		if err != nil || !strings.HasSuffix(string(b), "\n") {
			return false
		}
		pgid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	cancel()
	<-done
	assertGroupGone(t, pgid)
}

func TestProcessLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dir := t.TempDir()

	in := e.create(map[string]any{"command": "sh", "args": []string{"-c", "read x; exit 7"}, "cwd": dir, "owner": "system", "interactive": true})
	if in.ID != "proc_1" || in.Status != StatusRunning || in.Pid == nil || in.Owner != OwnerUser || !in.Interactive ||
		in.Cwd == nil || *in.Cwd != dir || in.ExitCode != nil || in.ExitedAtMs != nil || in.CreatedAtMs == 0 {
		t.Fatalf("created %+v", in)
	}
	raw := e.call("GET", "/v1/processes/proc_1", nil, 200, nil)
	wantPrefix := fmt.Sprintf(`{"id":"proc_1","command":"sh","args":["-c","read x; exit 7"],"cwd":%q,"tty":false,"interactive":true,"owner":"user","status":"running","pid":%d,"createdAtMs":`, dir, *in.Pid)
	if !strings.HasPrefix(string(raw), wantPrefix) {
		t.Fatalf("GET = %s\nwant prefix %s", raw, wantPrefix)
	}
	// Delete while running is a conflict.
	res, raw := e.do("DELETE", "/v1/processes/proc_1", nil)
	if d, _ := problemDetail(t, raw); res.StatusCode != 409 || d != "conflict: process is still running; stop or kill it before delete" {
		t.Fatalf("delete running: %d %s", res.StatusCode, raw)
	}
	e.call("POST", "/v1/processes/proc_1/input", map[string]any{"data": "\n", "encoding": "text"}, 200, nil)
	in = e.waitExited("proc_1")
	if in.ExitCode == nil || *in.ExitCode != 7 || in.Pid != nil || in.ExitedAtMs == nil {
		t.Fatalf("exited %+v", in)
	}
	raw = e.call("GET", "/v1/processes/proc_1", nil, 200, nil)
	if strings.Contains(string(raw), `"pid"`) || !strings.Contains(string(raw), `"status":"exited","exitCode":7,"createdAtMs":`) {
		t.Fatalf("exited info %s", raw)
	}

	// No cwd: omitted. Args default to [].
	e.create(map[string]any{"command": "true"})
	raw = e.call("GET", "/v1/processes/proc_2", nil, 200, nil)
	if strings.Contains(string(raw), `"cwd"`) || !strings.Contains(string(raw), `"args":[]`) {
		t.Fatalf("info %s", raw)
	}
	// Ids sort as strings: proc_10 < proc_2.
	for range 8 {
		e.create(map[string]any{"command": "true"})
	}
	var list struct{ Processes []Info }
	e.call("GET", "/v1/processes", nil, 200, &list)
	var ids []string
	for _, p := range list.Processes {
		ids = append(ids, p.ID)
	}
	want := []string{"proc_1", "proc_10", "proc_2", "proc_3", "proc_4", "proc_5", "proc_6", "proc_7", "proc_8", "proc_9"}
	if !slices.Equal(ids, want) {
		t.Fatalf("ids %v, want %v", ids, want)
	}
	e.call("GET", "/v1/processes?owner=user", nil, 200, &list)
	if len(list.Processes) != 10 {
		t.Fatalf("owner=user: %d processes", len(list.Processes))
	}
	e.call("GET", "/v1/processes?owner=desktop", nil, 200, &list)
	if len(list.Processes) != 0 {
		t.Fatalf("owner=desktop: %d processes", len(list.Processes))
	}
	res, raw = e.do("GET", "/v1/processes?owner=bogus", nil)
	if res.StatusCode != 400 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/plain") ||
		string(raw) != "Failed to deserialize query string: unknown variant `bogus`, expected one of `user`, `desktop`, `system`" {
		t.Fatalf("owner=bogus: %d %q", res.StatusCode, raw)
	}

	// Delete, then 404 everywhere.
	e.waitExited("proc_1")
	e.call("DELETE", "/v1/processes/proc_1", nil, 204, nil)
	for _, rq := range []struct{ method, path string }{
		{"GET", "/v1/processes/proc_1"}, {"DELETE", "/v1/processes/proc_1"}, {"POST", "/v1/processes/proc_1/stop"},
		{"POST", "/v1/processes/proc_1/kill"}, {"GET", "/v1/processes/proc_1/logs"},
	} {
		res, raw := e.do(rq.method, rq.path, nil)
		d, details := problemDetail(t, raw)
		if res.StatusCode != 404 || d != "not found: process proc_1" ||
			!cmp.Equal(details, map[string]any{"id": "proc_1", "resource": "process"}) {
			t.Fatalf("%s %s: %d %s", rq.method, rq.path, res.StatusCode, raw)
		}
	}
}

func TestStopKill(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name     string
		args     []string
		action   string
		query    string
		exited   bool
		elapseLo time.Duration // the call waited at least this long
	}{
		{"stop", []string{"-c", "echo $$; sleep 30 & sleep 30 & wait"}, "stop", "", true, 0},
		{"kill", []string{"-c", "echo $$; sleep 30 & wait"}, "kill", "?waitMs=5000", true, 0},
		{"stop ignored by TERM-proof child", []string{"-c", "trap '' TERM; echo $$; sleep 30 & wait"}, "stop", "?waitMs=150", false, 150 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := e.create(map[string]any{"command": "sh", "args": tc.args})
			l := e.waitOutput(in.ID, "", "\n")
			if got := strings.TrimSpace(joinData(l.Entries)); got != strconv.Itoa(*in.Pid) {
				t.Fatalf("pid %q vs %d", got, *in.Pid)
			}
			start := time.Now()
			var after Info
			e.call("POST", "/v1/processes/"+in.ID+"/"+tc.action+tc.query, nil, 200, &after)
			if el := time.Since(start); el < tc.elapseLo {
				t.Fatalf("returned after %v, want >= %v", el, tc.elapseLo)
			}
			if (after.Status == StatusExited) != tc.exited {
				t.Fatalf("after %s: %+v", tc.action, after)
			}
			if !tc.exited {
				e.call("POST", "/v1/processes/"+in.ID+"/kill", nil, 200, &after)
			}
			if after.Status != StatusExited || after.ExitCode != nil {
				t.Fatalf("want exited by signal (no exitCode), got %+v", after)
			}
			assertGroupGone(t, *in.Pid)
			// Stop on an exited process answers its info.
			e.call("POST", "/v1/processes/"+in.ID+"/stop", nil, 200, &after)
			if after.Status != StatusExited {
				t.Fatalf("stop after exit: %+v", after)
			}
		})
	}
	t.Run("bad waitMs", func(t *testing.T) {
		t.Parallel()
		res, raw := e.do("POST", "/v1/processes/proc_1/stop?waitMs=abc", nil)
		if res.StatusCode != 400 || !strings.HasPrefix(string(raw), "Failed to deserialize query string") {
			t.Fatalf("waitMs=abc: %d %s", res.StatusCode, raw)
		}
	})
}

// Delete kills what a process left running in its group.
func TestDeleteKillsLeftovers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *Options, _ *server.Config) { o.DrainGrace = time.Minute })
	in := e.create(map[string]any{"command": "sh", "args": []string{"-c", "sleep 30 & echo started"}})
	e.waitOutput(in.ID, "", "started\n")
	e.waitExited(in.ID)
	if !groupAlive(*in.Pid) {
		t.Fatal("background child should still run before delete")
	}
	// A follow stream stays open (the child holds stdout) until delete.
	s := e.follow(in.ID, "")
	if _, en := s.next(t); string(en.Data) != "started\n" {
		t.Fatalf("replay %q", en.Data)
	}
	e.call("DELETE", "/v1/processes/"+in.ID, nil, 204, nil)
	s.expectEnd(t)
	assertGroupGone(t, *in.Pid)
}

func TestConcurrencyLimit(t *testing.T) {
	t.Parallel()
	c := DefaultConfig()
	c.MaxConcurrentProcesses = 2
	e := newEnv(t, withConfig(c))
	a := e.create(map[string]any{"command": "sleep", "args": []string{"30"}})
	e.create(map[string]any{"command": "sleep", "args": []string{"30"}})
	for range 2 {
		res, raw := e.do("POST", "/v1/processes", map[string]any{"command": "true"})
		d, details := problemDetail(t, raw)
		if res.StatusCode != 409 || d != "conflict: max concurrent process limit reached (2)" ||
			details["message"] != "max concurrent process limit reached (2)" {
			t.Fatalf("third create: %d %s", res.StatusCode, raw)
		}
	}
	// /run is not limited.
	e.call("POST", "/v1/processes/run", map[string]any{"command": "true"}, 200, nil)
	e.call("POST", "/v1/processes/"+a.ID+"/kill", nil, 200, nil)
	// The 409s consumed no id; a spawn failure does.
	res, _ := e.do("POST", "/v1/processes", map[string]any{"command": "/nonexistent"})
	if res.StatusCode != 502 {
		t.Fatalf("spawn failure: %d", res.StatusCode)
	}
	in := e.create(map[string]any{"command": "true"})
	if in.ID != "proc_4" {
		t.Fatalf("id %s, want proc_4", in.ID)
	}
	// Exited processes do not count.
	e.waitExited(in.ID)
	e.create(map[string]any{"command": "true"})
}

func TestCreateErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name   string
		body   any
		status int
		detail string
	}{
		{"empty command", map[string]any{"command": ""}, 400, "invalid request: command must not be empty"},
		{"missing command", map[string]any{}, 422, ""},
		{"bad cwd", map[string]any{"command": "true", "cwd": "/nonexistent"}, 502, "stream error: failed to spawn process: No such file or directory (os error 2)"},
		{"bad cwd tty", map[string]any{"command": "true", "cwd": "/nonexistent", "tty": true}, 502, "stream error: failed to spawn process: No such file or directory (os error 2)"},
		{"wrong content type", "{}", 415, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var res *http.Response
			var raw []byte
			if s, ok := tc.body.(string); ok {
				res, raw = e.do("POST", "/v1/processes", nil, "Content-Type", "text/plain")
				_ = s
			} else {
				res, raw = e.do("POST", "/v1/processes", tc.body)
			}
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, tc.status, raw)
			}
			if tc.detail != "" {
				if d, _ := problemDetail(t, raw); d != tc.detail {
					t.Fatalf("detail %q, want %q", d, tc.detail)
				}
			}
		})
	}
}

func TestInput(t *testing.T) {
	t.Parallel()
	c := DefaultConfig()
	c.MaxInputBytesPerRequest = 8
	e := newEnv(t, withConfig(c))
	in := e.create(map[string]any{"command": "cat"})
	path := "/v1/processes/" + in.ID + "/input"
	tests := []struct {
		name    string
		body    map[string]any
		status  int
		written int
		detail  string
	}{
		{"base64 default", map[string]any{"data": "aGkK"}, 200, 3, ""},
		{"utf8", map[string]any{"data": "é\n", "encoding": "utf8"}, 200, 3, ""},
		{"text", map[string]any{"data": "t\n", "encoding": "text"}, 200, 2, ""},
		{"empty", map[string]any{"data": ""}, 200, 0, ""},
		{"exactly the limit", map[string]any{"data": "12345678", "encoding": "text"}, 200, 8, ""},
		{"over the limit", map[string]any{"data": "123456789", "encoding": "text"}, 413, 0, "invalid request: input payload exceeds maxInputBytesPerRequest (8)"},
		{"bad base64", map[string]any{"data": "abc\n"}, 400, 0, "invalid request: invalid base64 input: Invalid symbol 10, offset 3."},
		{"bad encoding", map[string]any{"data": "x", "encoding": "hex"}, 400, 0, "invalid request: encoding must be one of: base64, utf8, text"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, raw := e.do("POST", path, tc.body)
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, tc.status, raw)
			}
			if tc.status == 200 {
				if want := fmt.Sprintf(`{"bytesWritten":%d}`, tc.written); string(raw) != want {
					t.Fatalf("body %s, want %s", raw, want)
				}
				return
			}
			d, _ := problemDetail(t, raw)
			if d != tc.detail {
				t.Fatalf("detail %q, want %q", d, tc.detail)
			}
			if tc.status == 413 && !strings.Contains(string(raw), `"type":"urn:sandbox-agent:error:invalid_request","title":"Payload Too Large","status":413`) {
				t.Fatalf("413 body %s", raw)
			}
		})
	}
	e.waitOutput(in.ID, "", "hi\né\nt\n12345678")
	res, _ := e.do("POST", path, map[string]any{})
	if res.StatusCode != 422 {
		t.Fatalf("missing data: %d", res.StatusCode)
	}
	e.call("POST", "/v1/processes/"+in.ID+"/kill", nil, 200, nil)
	e.waitExited(in.ID)
	res, raw := e.do("POST", path, map[string]any{"data": "aGkK"})
	if d, _ := problemDetail(t, raw); res.StatusCode != 409 || d != "conflict: process is not running" {
		t.Fatalf("input after exit: %d %s", res.StatusCode, raw)
	}
	res, _ = e.do("POST", "/v1/processes/nope/input", map[string]any{"data": "aGkK"})
	if res.StatusCode != 404 {
		t.Fatalf("unknown: %d", res.StatusCode)
	}
}

// A write blocked on a child that does not read is abandoned with its
// context, and the next write (once the child reads) is not affected.
func TestInputBlockedWriteIsCancellable(t *testing.T) {
	t.Parallel()
	c := DefaultConfig()
	c.MaxInputBytesPerRequest = 1 << 20
	e := newEnv(t, withConfig(c))
	trigger := t.TempDir() + "/go"
	in := e.create(map[string]any{"command": "sh", "args": []string{"-c",
		fmt.Sprintf("while [ ! -e %s ]; do sleep 0.01; done; exec cat >/dev/null", trigger)}})
	ctx, cancel := contextWithTimeout(200 * time.Millisecond)
	defer cancel()
	n, err := e.m.Input(ctx, in.ID, make([]byte, 1<<20)) // far beyond the pipe buffer
	if err == nil {
		t.Fatal("write into a full pipe should be cancelled")
	}
	if n >= 1<<20 {
		t.Fatalf("wrote %d bytes", n)
	}
	if err := os.WriteFile(trigger, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := contextWithTimeout(10 * time.Second)
	defer cancel2()
	if n, err := e.m.Input(ctx2, in.ID, []byte("more")); err != nil || n != 4 {
		t.Fatalf("second write: %d %v", n, err)
	}
}
