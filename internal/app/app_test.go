package app_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"go.uber.org/goleak"

	"github.com/sandbox-agent-go/sandbox-agent/internal/app"
	"github.com/sandbox-agent-go/sandbox-agent/internal/mockagent"
	"github.com/sandbox-agent-go/sandbox-agent/internal/testutil/apptest"
)

// TestMain lets the test binary stand in for the sandbox-agent binary when
// the mock launcher runs it as `<bin> mock-agent-process`.
func TestMain(m *testing.M) {
	mockagent.ServeIfChild()
	goleak.VerifyTestMain(m)
}

type env struct {
	srv *apptest.Server
	url string
}

func start(t *testing.T, mutate func(*app.Config)) *env {
	t.Helper()
	srv := apptest.Start(t, apptest.Options{Configure: mutate})
	return &env{srv: srv, url: srv.URL}
}

func (e *env) get(t *testing.T, path string) (int, string) {
	t.Helper()
	r, err := http.Get(e.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return r.StatusCode, string(b)
}

func (e *env) post(t *testing.T, path, body string) (int, string) {
	t.Helper()
	r, err := http.Post(e.url+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return r.StatusCode, string(b)
}

// TestOpenAPIMatchesRoutes keeps /openapi.json true: it must be a valid
// OpenAPI 3 document and list exactly the routes the server serves.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	e := start(t, nil)
	status, body := e.get(t, "/openapi.json")
	if status != 200 {
		t.Fatal(status)
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("invalid OpenAPI document: %v", err)
	}
	var documented []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented = append(documented, method+" "+path)
		}
	}
	trail := regexp.MustCompile(`\{\$\}$`)
	var served []string
	for _, r := range e.srv.App().Routes() {
		served = append(served, r.Method+" "+trail.ReplaceAllString(r.Pattern, ""))
	}
	slices.Sort(documented)
	slices.Sort(served)
	if !slices.Equal(documented, served) {
		t.Fatalf("routes and OpenAPI differ\nserved:     %v\ndocumented: %v", served, documented)
	}
}

func TestAgentsCatalog(t *testing.T) {
	e := start(t, func(c *app.Config) {
		c.Agents.Env = []string{"PATH=" + os.Getenv("PATH")}
		// No registry, no npm: installing a real agent must fail fast and clearly.
		c.Agents.RegistryURL, c.Agents.NativeSource, c.Agents.NPM = "off", "npm", "/nonexistent/npm"
	})
	_, body := e.get(t, "/v1/agents")
	var list struct {
		Agents []struct {
			ID                   string
			Installed            bool
			CredentialsAvailable bool
			ConfigOptions        []any
			Capabilities         map[string]bool
		}
	}
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, a := range list.Agents {
		ids = append(ids, a.ID)
		if a.Installed || a.ConfigOptions != nil || a.Capabilities["sharedProcess"] {
			t.Fatalf("%+v", a)
		}
		wantCreds := a.ID == "pi" || a.ID == "cursor" || a.ID == "mock"
		if a.CredentialsAvailable != wantCreds {
			t.Fatalf("%s credentials %v", a.ID, a.CredentialsAvailable)
		}
	}
	if strings.Join(ids, ",") != "claude,codex,opencode,amp,pi,cursor,mock" {
		t.Fatal(ids)
	}
	if !strings.Contains(body, `{"id":"claude","installed":false,"credentialsAvailable":false,"capabilities":{"planMode":false,"permissions":true,"questions":true,"toolCalls":true`) {
		t.Fatalf("field order: %s", body[:200])
	}
	status, body := e.get(t, "/v1/agents/nope")
	if status != 400 || body != `{"type":"urn:sandbox-agent:error:unsupported_agent","title":"Unsupported Agent","status":400,"detail":"unsupported agent: nope","agent":"nope"}` {
		t.Fatal(status, body)
	}
	if status, _ := e.get(t, "/v1/agents?config=1"); status != 400 {
		t.Fatal("config must be true/false")
	}
	_, body = e.get(t, "/v1/agents/mock?config=true")
	if !strings.Contains(body, `"configOptions":[{"category":"model","currentValue":"mock","id":"model","name":"Model","options":[{"name":"Mock","value":"mock"},{"name":"Mock Fast","value":"mock-fast"}],"type":"select"}`) {
		t.Fatal(body)
	}

	status, body = e.post(t, "/v1/agents/mock/install", `{}`)
	if status != 200 || !regexp.MustCompile(`^\{"already_installed":false,"artifacts":\[\{"kind":"agent_process","path":"[^"]+/bin/agent_processes/mock-acp","source":"builtin","version":"builtin"\}\]\}$`).MatchString(body) {
		t.Fatal(status, body)
	}
	if status, body = e.post(t, "/v1/agents/mock/install", `{}`); body != `{"already_installed":true,"artifacts":[]}` {
		t.Fatal(status, body)
	}
	_, body = e.get(t, "/v1/agents/mock?config=true")
	if !strings.Contains(body, `"installed":true`) || !strings.Contains(body, `"version":"builtin","path":"`) {
		t.Fatal(body)
	}
	status, body = e.post(t, "/v1/agents/claude/install", `{}`)
	if status != 500 || !strings.Contains(body, "install_failed") || !strings.Contains(body, "claude-acp") {
		t.Fatal(status, body)
	}
	if status, _ := e.post(t, "/v1/agents/mock/install", ``); status != 400 {
		t.Fatal("empty body", status)
	}
}

func TestChildEnvDropsOnlyTheServersSecrets(t *testing.T) {
	environ := []string{
		"PATH=/usr/bin",
		"SANDBOX_AGENT_TOKEN=tok-123456789",
		"SANDBOX_AGENT_TOKEN_FILE=/run/secrets/token",
		"MY_ALIAS=tok-123456789",
		"WRAPPED=Bearer tok-123456789",
		"ANTHROPIC_API_KEY=sk-ant-1",
		"OPENAI_API_KEY=sk-2",
		"SANDBOX_AGENT_LOG_LEVEL=debug",
		"NOEQUALS",
	}
	for _, tc := range []struct {
		name, token string
		want        []string
	}{
		{"token known", "tok-123456789", []string{"PATH=/usr/bin", "ANTHROPIC_API_KEY=sk-ant-1", "OPENAI_API_KEY=sk-2", "SANDBOX_AGENT_LOG_LEVEL=debug", "NOEQUALS"}},
		{"no token (auth off)", "", []string{"PATH=/usr/bin", "MY_ALIAS=tok-123456789", "WRAPPED=Bearer tok-123456789", "ANTHROPIC_API_KEY=sk-ant-1", "OPENAI_API_KEY=sk-2", "SANDBOX_AGENT_LOG_LEVEL=debug", "NOEQUALS"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := app.ChildEnv(environ, tc.token); !slices.Equal(got, tc.want) {
				t.Fatalf("ChildEnv:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestChildrenDoNotInheritTheToken: the composition root hands the scrubbed
// environment to user processes.
func TestChildrenDoNotInheritTheToken(t *testing.T) {
	const token = "app-test-token-42"
	e := start(t, func(c *app.Config) {
		c.HTTP.Token, c.HTTP.AuthEnabled = token, true
		c.Environ = append(os.Environ(), "SANDBOX_AGENT_TOKEN="+token, "ANTHROPIC_API_KEY=sk-keep")
	})
	req, _ := http.NewRequest("POST", e.url+"/v1/processes/run", strings.NewReader(`{"command":"env"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out struct{ Stdout string }
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil || res.StatusCode != 200 {
		t.Fatalf("run env: %d %v", res.StatusCode, err)
	}
	if strings.Contains(out.Stdout, token) || !strings.Contains(out.Stdout, "ANTHROPIC_API_KEY=sk-keep") {
		t.Fatalf("child environment:\n%s", out.Stdout)
	}
}
