package server

import (
	"net/http"
	"slices"
	"strings"
	"testing"
)

func TestCrossSiteRefused(t *testing.T) {
	h := newTestHandler(t, Config{CORSOrigins: []string{"https://app.example"}})
	json := "application/json"
	tests := []struct {
		name, method, path, host string
		hdr                      map[string]string
		want                     int
	}{
		{"no browser headers (SDKs, curl)", "GET", "/v1/health", "127.0.0.1:2468", nil, 200},
		{"same origin", "POST", "/v1/echo", "127.0.0.1:2468", map[string]string{"Origin": "http://127.0.0.1:2468", "Content-Type": json}, 200},
		{"same origin, default port", "POST", "/v1/echo", "localhost", map[string]string{"Origin": "http://localhost", "Content-Type": json}, 200},
		{"same origin behind TLS proxy", "POST", "/v1/echo", "box.example", map[string]string{"Origin": "https://box.example", "Content-Type": json}, 200},
		{"same origin, IPv6", "POST", "/v1/echo", "[::1]:2468", map[string]string{"Origin": "http://[::1]:2468", "Content-Type": json}, 200},
		{"same origin, fetch metadata", "GET", "/v1/health", "127.0.0.1:2468", map[string]string{"Sec-Fetch-Site": "same-origin"}, 200},
		{"allow-listed origin", "POST", "/v1/echo", "127.0.0.1:2468", map[string]string{"Origin": "https://app.example", "Content-Type": json}, 200},
		{"user typed or followed a link", "GET", "/v1/health", "127.0.0.1:2468", map[string]string{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}, 200},
		{"direct navigation", "GET", "/v1/health", "127.0.0.1:2468", map[string]string{"Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "navigate"}, 200},

		{"form post from another site", "POST", "/v1/fs/mkdir?path=/tmp/x", "127.0.0.1:2468", map[string]string{"Origin": "https://evil.example", "Content-Type": "application/x-www-form-urlencoded"}, 403},
		{"text/plain post from another site", "POST", "/v1/processes/1/kill", "127.0.0.1:2468", map[string]string{"Origin": "https://evil.example", "Content-Type": "text/plain"}, 403},
		{"websocket from another site", "GET", "/v1/processes/1/terminal/ws", "127.0.0.1:2468", map[string]string{"Origin": "https://evil.example", "Upgrade": "websocket", "Connection": "Upgrade"}, 403},
		{"other port of the same host", "POST", "/v1/echo", "127.0.0.1:2468", map[string]string{"Origin": "http://127.0.0.1:3000", "Content-Type": json}, 403},
		{"other scheme on an explicit port", "POST", "/v1/echo", "localhost:80", map[string]string{"Origin": "https://localhost", "Content-Type": json}, 403},
		{"DNS name of another host", "POST", "/v1/echo", "127.0.0.1:2468", map[string]string{"Origin": "http://127.0.0.1.evil.example:2468", "Content-Type": json}, 403},
		{"opaque origin (sandboxed iframe, file://)", "POST", "/v1/echo", "127.0.0.1:2468", map[string]string{"Origin": "null", "Content-Type": json}, 403},
		{"preflight from another site", "OPTIONS", "/v1/echo", "127.0.0.1:2468", map[string]string{"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}, 403},
		{"no-cors subresource from another site", "GET", "/v1/health", "127.0.0.1:2468", map[string]string{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}, 403},
		{"same-site page on another port", "GET", "/v1/health", "127.0.0.1:2468", map[string]string{"Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "no-cors"}, 403},
		{"cross-site navigation that posts", "POST", "/v1/echo", "127.0.0.1:2468", map[string]string{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Content-Type": json}, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{"Host": tt.host}
			for k, v := range tt.hdr {
				hdr[k] = v
			}
			r := call(h, tt.method, tt.path, hdr, `{}`)
			if r.status != tt.want {
				t.Fatalf("status %d, want %d: %s", r.status, tt.want, r.body)
			}
			if tt.want == 403 && (!strings.Contains(r.body, "urn:sandbox-agent:error:cross_site_request") || r.header.Get("Content-Type") != "application/problem+json") {
				t.Fatalf("403 body %s %v", r.body, r.header)
			}
		})
	}
}

func TestDefaultAllowedHosts(t *testing.T) {
	loop := []string{"localhost", "127.0.0.1", "::1"}
	for host, want := range map[string][]string{
		"127.0.0.1": loop, "127.0.0.2": loop, "::1": loop, "[::1]": loop, "localhost": loop, "LocalHost": loop,
		"0.0.0.0": nil, "::": nil, "10.0.0.5": nil, "box.example": nil,
	} {
		if got := DefaultAllowedHosts(host); !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", host, got, want)
		}
	}
	// "*" lifts the list.
	h := newTestHandler(t, Config{AllowedHosts: []string{"localhost", "*"}})
	if r := call(h, http.MethodGet, "/v1/health", map[string]string{"Host": "anything.example"}, ""); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
}
