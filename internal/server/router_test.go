package server

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/sandbox-agent-go/sandbox-agent/internal/httpjson"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func echoRoute() Route {
	return Route{Method: http.MethodPost, Pattern: "/v1/echo", Handler: func(w http.ResponseWriter, r *http.Request) {
		var v map[string]any
		if err := httpjson.Decode(r, &v); err != nil {
			httpjson.Error(w, err)
			return
		}
		httpjson.Write(w, 200, v)
	}}
}

func newTestHandler(t *testing.T, cfg Config) http.Handler {
	t.Helper()
	h, err := NewHandler(cfg, append(BaseRoutes("test"), echoRoute()))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

type result struct {
	status int
	header http.Header
	body   string
}

func call(h http.Handler, method, target string, hdr map[string]string, body string) result {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	b, _ := io.ReadAll(rec.Result().Body)
	return result{rec.Code, rec.Header(), string(b)}
}

func TestAuth(t *testing.T) {
	h := newTestHandler(t, Config{AuthEnabled: true, Token: "secret"})
	unauth := `{"type":"urn:sandbox-agent:error:token_invalid","title":"Token Invalid","status":401,"detail":"token invalid","details":{"message":"missing or invalid bearer token"}}`
	tests := []struct {
		name, method, target string
		hdr                  map[string]string
		status               int
	}{
		{"no token", "GET", "/v1/health", nil, 401},
		{"good token", "GET", "/v1/health", map[string]string{"Authorization": "Bearer secret"}, 200},
		{"lowercase scheme", "GET", "/v1/health", map[string]string{"Authorization": "bearer secret"}, 401},
		{"two spaces", "GET", "/v1/health", map[string]string{"Authorization": "Bearer  secret"}, 401},
		{"raw token", "GET", "/v1/health", map[string]string{"Authorization": "secret"}, 401},
		{"wrong token", "GET", "/v1/health", map[string]string{"Authorization": "Bearer secreT"}, 401},
		{"query token not on normal routes", "GET", "/v1/health?access_token=secret", nil, 401},
		{"root open", "GET", "/", nil, 200},
		{"openapi open", "GET", "/openapi.json", nil, 200},
		{"options open", "OPTIONS", "/v1/health", nil, 200},
		{"fallback open", "GET", "/v1/nope", nil, 404},
		{"auth before method check", "DELETE", "/v1/health", nil, 401},
		{"method check after auth", "DELETE", "/v1/health", map[string]string{"Authorization": "Bearer secret"}, 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := call(h, tt.method, tt.target, tt.hdr, "")
			if r.status != tt.status {
				t.Fatalf("status %d body %s", r.status, r.body)
			}
			if tt.status == 401 && (r.body != unauth || r.header.Get("Content-Type") != "application/problem+json" || r.header.Get("WWW-Authenticate") != "") {
				t.Fatalf("401 shape: %v %s", r.header, r.body)
			}
		})
	}
	// An empty token with auth on can never match.
	empty := newTestHandler(t, Config{AuthEnabled: true})
	if r := call(empty, "GET", "/v1/health", map[string]string{"Authorization": "Bearer "}, ""); r.status != 401 {
		t.Fatalf("empty token: %d", r.status)
	}
}

func TestQueryTokenRoute(t *testing.T) {
	rt := Route{Method: "GET", Pattern: "/v1/ws", QueryToken: true, Handler: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) }}
	h, err := NewHandler(Config{AuthEnabled: true, Token: "tok"}, []Route{rt})
	if err != nil {
		t.Fatal(err)
	}
	for target, want := range map[string]int{"/v1/ws?access_token=tok": 200, "/v1/ws?access_token=bad": 401, "/v1/ws": 401} {
		if r := call(h, "GET", target, nil, ""); r.status != want {
			t.Errorf("%s: %d", target, r.status)
		}
	}
}

func TestFallbackMethodsAndHead(t *testing.T) {
	h := newTestHandler(t, Config{})
	tests := []struct {
		name, method, target string
		status               int
		body, allow          string
	}{
		{"unknown path", "GET", "/nope", 404, `{"type":"urn:sandbox-agent:error:invalid_request","title":"Not Found","status":404,"detail":"endpoint not found"}`, ""},
		{"trailing slash not normalised", "GET", "/v1/health/", 404, "", ""},
		{"wrong method", "POST", "/v1/health", 405, "", "GET,HEAD"},
		{"head", "HEAD", "/v1/health", 200, "", ""},
		{"health", "GET", "/v1/health", 200, `{"status":"ok"}`, ""},
		{"root", "GET", "/", 200, `{"docs":"https://sandboxagent.dev","name":"Sandbox Agent"}`, ""},
		{"options lists allow", "OPTIONS", "/v1/echo", 200, "", "POST"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := call(h, tt.method, tt.target, nil, "")
			if r.status != tt.status {
				t.Fatalf("status %d %s", r.status, r.body)
			}
			if tt.body != "" && r.body != tt.body {
				t.Fatalf("body %s", r.body)
			}
			if tt.status == 405 && r.body != "" {
				t.Fatalf("405 body %q", r.body)
			}
			if tt.allow != "" && r.header.Get("Allow") != tt.allow {
				t.Fatalf("allow %q", r.header.Get("Allow"))
			}
			if r.header.Get("Vary") == "" {
				t.Fatal("vary missing")
			}
		})
	}
}

func TestCORS(t *testing.T) {
	cfg := Config{CORSOrigins: []string{"http://x.example"}, CORSMethods: []string{"GET", "POST"}, CORSHeaders: []string{"authorization", "content-type"}, CORSCredentials: true}
	h := newTestHandler(t, cfg)
	r := call(h, "OPTIONS", "/v1/health", map[string]string{"Origin": "http://x.example", "Access-Control-Request-Method": "GET"}, "")
	if r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != "http://x.example" ||
		r.header.Get("Access-Control-Allow-Methods") != "GET,POST" || r.header.Get("Access-Control-Allow-Headers") != "authorization,content-type" ||
		r.header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Fatalf("preflight %v", r.header)
	}
	// Origins match exactly; one that does not is another site (refused,
	// see TestCrossSiteRefused).
	for _, origin := range []string{"http://x.example/", "HTTP://X.example", "http://evil.example"} {
		r := call(h, "GET", "/v1/health", map[string]string{"Origin": origin}, "")
		if r.status != 403 || r.header.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("%s: %d %v", origin, r.status, r.header)
		}
	}
	// Defaults: wildcard lists, no origin ever allowed.
	d := newTestHandler(t, Config{})
	r = call(d, "OPTIONS", "/v1/anything", nil, "")
	if r.status != 200 || r.header.Get("Access-Control-Allow-Methods") != "*" || r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("defaults %v", r.header)
	}
}

func TestInvalidCORSConfigIsAnErrorNotAPanic(t *testing.T) {
	for _, cfg := range []Config{
		{CORSOrigins: []string{"*"}},
		{CORSCredentials: true},
		{CORSCredentials: true, CORSMethods: []string{"GET"}},
		{CORSCredentials: true, CORSHeaders: []string{"x"}},
	} {
		if _, err := NewHandler(cfg, nil); !errors.Is(err, ErrInvalidCORS) {
			t.Errorf("%+v: %v", cfg, err)
		}
	}
}

func TestBodyLimitAndExtractorErrors(t *testing.T) {
	h := newTestHandler(t, Config{MaxBodyBytes: 64})
	json := map[string]string{"Content-Type": "application/json"}
	tests := []struct {
		name   string
		hdr    map[string]string
		body   string
		status int
		prefix string
	}{
		{"ok", json, `{"a":1}`, 200, `{"a":1}`},
		{"exactly at limit", json, `{"a":"` + strings.Repeat("x", 64-8) + `"}`, 200, ""},
		{"over limit", json, `{"a":"` + strings.Repeat("x", 64) + `"}`, 413, "Failed to buffer the request body: length limit exceeded"},
		{"no content type", nil, `{}`, 415, "Expected request with `Content-Type: application/json`"},
		{"charset allowed", map[string]string{"Content-Type": "application/json; charset=utf-8"}, `{}`, 200, ""},
		{"malformed", json, `{x}`, 400, "Failed to parse the request body as JSON"},
		{"empty", json, ``, 400, "Failed to parse the request body as JSON: EOF"},
		{"wrong shape", json, `[1]`, 422, "Failed to deserialize the JSON body into the target type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := call(h, "POST", "/v1/echo", tt.hdr, tt.body)
			if r.status != tt.status || !strings.HasPrefix(r.body, tt.prefix) {
				t.Fatalf("%d %q", r.status, r.body)
			}
			if tt.status >= 400 && !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
				t.Fatalf("extractor errors are text: %s", r.header.Get("Content-Type"))
			}
		})
	}
}

func TestHostAllowList(t *testing.T) {
	h := newTestHandler(t, Config{AllowedHosts: []string{"localhost", "127.0.0.1", "::1"}})
	for host, want := range map[string]int{"localhost:2468": 200, "127.0.0.1": 200, "[::1]:80": 200, "evil.example:2468": 403, "LOCALHOST": 200} {
		r := call(h, "GET", "/v1/health", map[string]string{"Host": host}, "")
		if r.status != want {
			t.Errorf("%s: %d %s", host, r.status, r.body)
		}
		if want == 403 && !strings.Contains(r.body, "permission_denied") {
			t.Errorf("403 body %s", r.body)
		}
	}
}
