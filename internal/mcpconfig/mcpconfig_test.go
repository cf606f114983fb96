package mcpconfig

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/sandbox-agent-go/sandbox-agent/internal/openapi"
	"github.com/sandbox-agent-go/sandbox-agent/internal/server"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type env struct {
	t   testing.TB
	srv *httptest.Server
	cwd string
}

func newEnv(t testing.TB) *env {
	t.Helper()
	cwd := t.TempDir()
	return newEnvWith(t, New(Options{Cwd: cwd}), cwd)
}

func newEnvWith(t testing.TB, h *Handler, cwd string) *env {
	api, err := server.NewHandler(server.Config{}, append(server.BaseRoutes("test"), h.Routes()...))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	return &env{t: t, srv: srv, cwd: cwd}
}

type resp struct {
	status int
	ct     string
	body   string
}

func (e *env) do(method, target, contentType, body string) resp {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+target, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, res.Header.Get("Content-Type"), string(b)}
}

func mcpURL(dir, name string) string {
	return "/v1/config/mcp?directory=" + url.QueryEscape(dir) + "&mcpName=" + url.QueryEscape(name)
}

func skillsURL(dir, name string) string {
	return "/v1/config/skills?directory=" + url.QueryEscape(dir) + "&skillName=" + url.QueryEscape(name)
}

func TestMcpRoundTrip(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir() + "/project" // need not exist
	tests := []struct{ name, in, want string }{
		{"local", `{"type":"local","command":"npx","args":["-y","@modelcontextprotocol/server-filesystem","/tmp"],"env":{"A":"1"}}`,
			`{"type":"local","command":"npx","args":["-y","@modelcontextprotocol/server-filesystem","/tmp"],"env":{"A":"1"}}`},
		{"command array, args defaulted", `{"type":"local","command":["npx","-y"]}`,
			`{"type":"local","command":["npx","-y"],"args":[]}`},
		{"stdio alias, field order, unknown dropped", `{"cwd":"/w","timeoutMs":5,"enabled":false,"env":{},"args":null,"command":"x","type":"stdio","bogus":1}`,
			`{"type":"local","command":"x","args":[],"env":{},"enabled":false,"timeoutMs":5,"cwd":"/w"}`},
		{"remote", `{"type":"remote","url":"https://example.com/mcp","headers":{"X":"y"},"bearerTokenEnvVar":"TOK","oauth":{"clientId":"c","clientSecret":"s","scope":"a b"},"enabled":true,"timeoutMs":5000,"transport":"sse"}`,
			`{"type":"remote","url":"https://example.com/mcp","headers":{"X":"y"},"bearerTokenEnvVar":"TOK","oauth":{"clientId":"c","clientSecret":"s","scope":"a b"},"enabled":true,"timeoutMs":5000,"transport":"sse"}`},
		{"http alias, oauth bool", `{"transport":"http","oauth":false,"envHeaders":{"H":"ENV"},"url":"http://x","type":"http"}`,
			`{"type":"remote","url":"http://x","envHeaders":{"H":"ENV"},"oauth":false,"transport":"http"}`},
		{"oauth object unknown fields", `{"type":"remote","url":"u","oauth":{"scope":"s","extra":1}}`,
			`{"type":"remote","url":"u","oauth":{"scope":"s"}}`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := fmt.Sprintf("srv%d", i)
			if r := e.do("PUT", mcpURL(dir, name), "application/json", tt.in); r.status != 204 || r.body != "" {
				t.Fatalf("PUT: %d %q", r.status, r.body)
			}
			r := e.do("GET", mcpURL(dir, name), "", "")
			if r.status != 200 || r.ct != "application/json" || r.body != tt.want {
				t.Fatalf("GET: %d %s %s\nwant %s", r.status, r.ct, r.body, tt.want)
			}
		})
	}
	// Stored where upstream stores it, pretty-printed, keys sorted.
	raw, err := os.ReadFile(dir + "/.sandbox-agent/config/mcp.json")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(raw), "{\n  \"srv0\": {\n    \"type\": \"local\",\n    \"command\": \"npx\",\n    \"args\": [\n      \"-y\",") {
		t.Fatalf("file layout:\n%s", raw)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || len(m) != len(tests) {
		t.Fatalf("file: %v, %d entries", err, len(m))
	}
	// Upsert replaces; DELETE removes; GET then 404.
	if r := e.do("PUT", mcpURL(dir, "srv0"), "application/json; charset=utf-8", `{"type":"local","command":"other"}`); r.status != 204 {
		t.Fatal(r.status, r.body)
	}
	if r := e.do("GET", mcpURL(dir, "srv0"), "", ""); r.body != `{"type":"local","command":"other","args":[]}` {
		t.Fatal(r.body)
	}
	if r := e.do("DELETE", mcpURL(dir, "srv0"), "", ""); r.status != 204 || r.body != "" {
		t.Fatal(r.status, r.body)
	}
	r := e.do("GET", mcpURL(dir, "srv0"), "", "")
	want := `{"type":"urn:sandbox-agent:error:session_not_found","title":"Session Not Found","status":404,"detail":"session not found: mcp:srv0","sessionId":"mcp:srv0"}`
	if r.status != 404 || r.ct != "application/problem+json" || r.body != want {
		t.Fatalf("%d %s %s", r.status, r.ct, r.body)
	}
}

func TestFileFormat(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	e.do("PUT", mcpURL(dir, "zeta"), "application/json", `{"type":"local","command":"z"}`)
	e.do("PUT", mcpURL(dir, "alpha"), "application/json", `{"type":"remote","url":"http://a/?x=<1>&y"}`)
	raw, _ := os.ReadFile(dir + "/.sandbox-agent/config/mcp.json")
	want := `{
  "alpha": {
    "type": "remote",
    "url": "http://a/?x=<1>&y"
  },
  "zeta": {
    "type": "local",
    "command": "z",
    "args": []
  }
}`
	if diff := cmp.Diff(want, string(raw)); diff != "" {
		t.Fatalf("file (-want +got):\n%s", diff)
	}
	entries, _ := os.ReadDir(dir + "/.sandbox-agent/config")
	if len(entries) != 1 {
		t.Fatalf("stray files: %v", entries)
	}
}

func TestSkillsRoundTrip(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	in := `{"sources":[{"subpath":"skills","ref":"main","skills":["sandbox-agent"],"source":"rivet-dev/skills","type":"github","x":1},{"type":"local","source":"/workspace/skills"}],"other":true}`
	want := `{"sources":[{"type":"github","source":"rivet-dev/skills","skills":["sandbox-agent"],"ref":"main","subpath":"skills"},{"type":"local","source":"/workspace/skills"}]}`
	if r := e.do("PUT", skillsURL(dir, "default"), "application/json", in); r.status != 204 {
		t.Fatal(r.status, r.body)
	}
	if r := e.do("GET", skillsURL(dir, "default"), "", ""); r.status != 200 || r.body != want {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if r := e.do("PUT", skillsURL(dir, "none"), "application/json", `{"sources":[]}`); r.status != 204 {
		t.Fatal(r.status, r.body)
	}
	if r := e.do("GET", skillsURL(dir, "none"), "", ""); r.body != `{"sources":[]}` {
		t.Fatal(r.body)
	}
	if _, err := os.Stat(dir + "/.sandbox-agent/config/skills.json"); err != nil {
		t.Fatal(err)
	}
	r := e.do("GET", skillsURL(dir, "missing"), "", "")
	if r.status != 404 || !strings.Contains(r.body, `"sessionId":"skills:missing"`) {
		t.Fatal(r.status, r.body)
	}
	// The two kinds do not share entries.
	if r := e.do("GET", mcpURL(dir, "default"), "", ""); r.status != 404 {
		t.Fatal(r.status, r.body)
	}
}

func TestRelativeDirectoryUsesCwd(t *testing.T) {
	e := newEnv(t)
	if r := e.do("PUT", mcpURL("rel/proj", "a"), "application/json", `{"type":"local","command":"c"}`); r.status != 204 {
		t.Fatal(r.status, r.body)
	}
	if _, err := os.Stat(filepath.Join(e.cwd, "rel/proj/.sandbox-agent/config/mcp.json")); err != nil {
		t.Fatal(err)
	}
	if r := e.do("GET", mcpURL(e.cwd+"/rel/proj", "a"), "", ""); r.status != 200 {
		t.Fatal(r.status, r.body)
	}
}

func TestErrors(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	corrupt := t.TempDir()
	must(t, os.MkdirAll(corrupt+"/.sandbox-agent/config", 0o755))
	must(t, os.WriteFile(corrupt+"/.sandbox-agent/config/mcp.json", []byte(`{"a": {`), 0o644))
	badEntry := t.TempDir()
	must(t, os.MkdirAll(badEntry+"/.sandbox-agent/config", 0o755))
	must(t, os.WriteFile(badEntry+"/.sandbox-agent/config/skills.json", []byte(`{"a": {"sources": [{"type": "x"}]}}`), 0o644))
	const js = "application/json"
	problem := func(status int, detail string) string {
		title := map[int]string{400: "Invalid Request", 404: "Session Not Found"}[status]
		code := map[int]string{400: "invalid_request", 404: "session_not_found"}[status]
		return fmt.Sprintf(`{"type":"urn:sandbox-agent:error:%s","title":"%s","status":%d,"detail":%q`, code, title, status, detail)
	}
	tests := []struct {
		name, method, target, ct, body string
		status                         int
		want                           string // prefix of the body
		text                           bool
	}{
		{"missing directory", "GET", "/v1/config/mcp?mcpName=a", "", "", 400, "Failed to deserialize query string: missing field `directory`", true},
		{"missing mcpName", "GET", "/v1/config/mcp?directory=" + dir, "", "", 400, "Failed to deserialize query string: missing field `mcpName`", true},
		{"missing skillName", "PUT", "/v1/config/skills?directory=" + dir, js, `{"sources":[]}`, 400, "Failed to deserialize query string: missing field `skillName`", true},
		{"blank directory", "GET", "/v1/config/mcp?directory=%20&mcpName=a", "", "", 400, problem(400, "invalid request: missing required 'directory' query parameter") + "}", false},
		{"blank mcpName", "DELETE", mcpURL(dir, ""), "", "", 400, problem(400, "invalid request: missing required 'mcpName' query parameter") + "}", false},
		{"blank skillName", "GET", skillsURL(dir, " "), "", "", 400, problem(400, "invalid request: missing required 'skillName' query parameter") + "}", false},
		{"get missing", "GET", mcpURL(dir, "fs"), "", "", 404, problem(404, "session not found: mcp:fs") + `,"sessionId":"mcp:fs"}`, false},
		{"unknown type", "PUT", mcpURL(dir, "x"), js, `{"type":"bogus","command":"c"}`, 422, "Failed to deserialize the JSON body into the target type: type: unknown variant `bogus`, expected one of `local`, `stdio`, `http`, `remote`", true},
		{"missing type", "PUT", mcpURL(dir, "x"), js, `{"command":"c"}`, 422, "Failed to deserialize the JSON body into the target type: missing field `type`", true},
		{"missing command", "PUT", mcpURL(dir, "x"), js, `{"type":"local"}`, 422, "Failed to deserialize the JSON body into the target type: missing field `command`", true},
		{"missing url", "PUT", mcpURL(dir, "x"), js, `{"type":"remote"}`, 422, "Failed to deserialize the JSON body into the target type: missing field `url`", true},
		{"bad command", "PUT", mcpURL(dir, "x"), js, `{"type":"local","command":5}`, 422, "Failed to deserialize the JSON body into the target type: command: ", true},
		{"bad env", "PUT", mcpURL(dir, "x"), js, `{"type":"local","command":"c","env":{"A":1}}`, 422, "Failed to deserialize the JSON body into the target type: ", true},
		{"missing sources", "PUT", skillsURL(dir, "x"), js, `{}`, 422, "Failed to deserialize the JSON body into the target type: missing field `sources`", true},
		{"missing source", "PUT", skillsURL(dir, "x"), js, `{"sources":[{"type":"github"}]}`, 422, "Failed to deserialize the JSON body into the target type: missing field `source`", true},
		{"no content type", "PUT", mcpURL(dir, "x"), "", `{"type":"local","command":"c"}`, 415, "Expected request with `Content-Type: application/json`", true},
		{"bad json", "PUT", mcpURL(dir, "x"), js, `{type}`, 400, "Failed to parse the request body as JSON: ", true},
		{"empty body", "PUT", mcpURL(dir, "x"), js, ``, 400, "Failed to parse the request body as JSON: EOF while parsing a value at line 1 column 0", true},
		{"corrupt GET", "GET", mcpURL(corrupt, "a"), "", "", 400, problem(400, "")[:len(problem(400, ""))-1] + `invalid request: invalid config file ` + corrupt + `/.sandbox-agent/config/mcp.json: `, false},
		{"corrupt PUT", "PUT", mcpURL(corrupt, "b"), js, `{"type":"local","command":"c"}`, 400, problem(400, "")[:len(problem(400, ""))-1] + `invalid request: invalid config file ` + corrupt + `/.sandbox-agent/config/mcp.json: `, false},
		{"corrupt DELETE", "DELETE", mcpURL(corrupt, "a"), "", "", 400, problem(400, "")[:len(problem(400, ""))-1] + `invalid request: invalid config file ` + corrupt + `/.sandbox-agent/config/mcp.json: `, false},
		{"invalid stored entry", "GET", skillsURL(badEntry, "a"), "", "", 400, problem(400, "")[:len(problem(400, ""))-1] + `invalid request: invalid config file ` + badEntry + `/.sandbox-agent/config/skills.json: missing field ` + "`source`", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(tt.method, tt.target, tt.ct, tt.body)
			if r.status != tt.status || !strings.HasPrefix(r.body, tt.want) {
				t.Fatalf("%d %q\nwant %d %q", r.status, r.body, tt.status, tt.want)
			}
			wantCT := "application/problem+json"
			if tt.text {
				wantCT = "text/plain; charset=utf-8"
			}
			if r.ct != wantCT {
				t.Fatalf("content-type %q", r.ct)
			}
		})
	}
	// The corrupt file was not overwritten, and failed PUTs stored nothing.
	if raw, _ := os.ReadFile(corrupt + "/.sandbox-agent/config/mcp.json"); string(raw) != `{"a": {` {
		t.Fatalf("corrupt file rewritten: %q", raw)
	}
	if _, err := os.Stat(dir + "/.sandbox-agent"); err == nil {
		t.Fatal("failed requests created the config directory")
	}
}

func TestDeleteAlways204(t *testing.T) {
	e := newEnv(t)
	base := t.TempDir()
	for _, target := range []string{
		mcpURL(base+"/does/not/exist", "a"), // missing directory
		mcpURL(base, "a"),                   // directory without config
		skillsURL(base, "a"),
	} {
		if r := e.do("DELETE", target, "", ""); r.status != 204 || r.body != "" {
			t.Fatalf("%s: %d %q", target, r.status, r.body)
		}
	}
	if _, err := os.Stat(base + "/does"); err == nil {
		t.Fatal("DELETE created directories")
	}
	e.do("PUT", mcpURL(base, "keep"), "application/json", `{"type":"local","command":"c"}`)
	if r := e.do("DELETE", mcpURL(base, "other"), "", ""); r.status != 204 {
		t.Fatal(r.status)
	}
	if r := e.do("GET", mcpURL(base, "keep"), "", ""); r.status != 200 {
		t.Fatal(r.status)
	}
}

// TestConcurrentWriters: many goroutines upsert into the same files, through
// two handlers (as two server processes would, sharing only the flock);
// the files stay valid JSON holding every entry.
func TestConcurrentWriters(t *testing.T) {
	cwd := t.TempDir()
	e1 := newEnvWith(t, New(Options{Cwd: cwd}), cwd)
	e2 := newEnvWith(t, New(Options{Cwd: cwd}), cwd)
	dir := t.TempDir()
	const n = 48
	var wg sync.WaitGroup
	for i := range n {
		e := e1
		if i%2 == 1 {
			e = e2
		}
		wg.Go(func() {
			r := e.do("PUT", mcpURL(dir, fmt.Sprintf("m%02d", i)), "application/json", fmt.Sprintf(`{"type":"local","command":"c%d"}`, i))
			if r.status != 204 {
				t.Errorf("mcp PUT %d: %d %s", i, r.status, r.body)
			}
			r = e.do("PUT", skillsURL(dir, fmt.Sprintf("s%02d", i)), "application/json", `{"sources":[{"type":"local","source":"/s"}]}`)
			if r.status != 204 {
				t.Errorf("skills PUT %d: %d %s", i, r.status, r.body)
			}
			if r := e.do("GET", mcpURL(dir, "m00"), "", ""); r.status != 200 && r.status != 404 {
				t.Errorf("GET during writes: %d %s", r.status, r.body)
			}
		})
	}
	wg.Wait()
	for _, f := range []string{"mcp.json", "skills.json"} {
		raw, err := os.ReadFile(dir + "/.sandbox-agent/config/" + f)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("%s is not valid JSON: %v", f, err)
		}
		if len(m) != n {
			t.Fatalf("%s holds %d entries, want %d", f, len(m), n)
		}
	}
	if entries, _ := os.ReadDir(dir + "/.sandbox-agent/config"); len(entries) != 2 {
		t.Fatalf("stray files: %v", entries)
	}
}

func TestOpenAPIDescribesRoutes(t *testing.T) {
	raw, err := openapi.Document("test")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, rt := range New(Options{}).Routes() {
		item := doc.Paths.Find(rt.Pattern)
		if item == nil || item.GetOperation(rt.Method) == nil {
			t.Errorf("OpenAPI lacks %s %s", rt.Method, rt.Pattern)
		}
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
