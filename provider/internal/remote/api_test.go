package remote

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	sandboxagent "github.com/sandbox-agent-go/sandbox-agent"
)

// script is a server that answers the queued statuses in order, then 200.
type script struct {
	mu      sync.Mutex
	answers []answer
	seen    []*http.Request
	bodies  []string
}

type answer struct {
	status     int
	retryAfter string
	body       string
}

func (s *script) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.seen = append(s.seen, r)
	s.bodies = append(s.bodies, string(b))
	a := answer{status: 200, body: `{"ok":true}`}
	if len(s.answers) > 0 {
		a, s.answers = s.answers[0], s.answers[1:]
	}
	s.mu.Unlock()
	if a.retryAfter != "" {
		w.Header().Set("Retry-After", a.retryAfter)
	}
	w.WriteHeader(a.status)
	_, _ = io.WriteString(w, a.body)
}

func TestAPIRetries(t *testing.T) {
	for _, tc := range []struct {
		name     string
		answers  []answer
		requests int
		sleeps   []time.Duration
		status   int // of the error; 0 = success
	}{
		{"success", nil, 1, nil, 0},
		{"429 then ok, Retry-After honoured", []answer{{status: 429, retryAfter: "3"}}, 2, []time.Duration{3 * time.Second}, 0},
		{"503 twice then ok, backoff", []answer{{status: 503}, {status: 503}}, 3, []time.Duration{retryBase, 2 * retryBase}, 0},
		{"502 three times gives up", []answer{{status: 502}, {status: 502}, {status: 502}}, 3, []time.Duration{retryBase, 2 * retryBase}, 502},
		{"401 never retried", []answer{{status: 401, body: `{"message":"bad key"}`}}, 1, nil, 401},
		{"403 never retried", []answer{{status: 403}}, 1, nil, 403},
		{"404 not retried", []answer{{status: 404}}, 1, nil, 404},
		{"Retry-After too long is returned", []answer{{status: 429, retryAfter: "3600"}}, 1, nil, 429},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &script{answers: tc.answers}
			srv := httptest.NewServer(s)
			defer srv.Close()
			var sleeps []time.Duration
			a := &API{Provider: "acme", BaseURL: srv.URL + "/api", Client: srv.Client(),
				Authorize: func(r *http.Request) { r.Header.Set("X-API-Key", "k") },
				DecodeError: func(_ int, b []byte) (string, string) {
					if strings.Contains(string(b), "bad key") {
						return "unauthorized", "bad key"
					}
					return "", ""
				},
				Sleep: func(_ context.Context, d time.Duration) error { sleeps = append(sleeps, d); return nil }}
			var out struct{ OK bool }
			_, err := a.JSON(t.Context(), Request{Op: "create sandbox", Method: http.MethodPost, Path: "/sandboxes", Body: map[string]int{"timeout": 60}}, &out)
			if len(s.seen) != tc.requests {
				t.Fatalf("%d requests, want %d", len(s.seen), tc.requests)
			}
			for i, r := range s.seen {
				if r.URL.Path != "/api/sandboxes" || r.Header.Get("X-API-Key") != "k" || s.bodies[i] != `{"timeout":60}` ||
					r.Header.Get("Content-Type") != "application/json" {
					t.Fatalf("request %d: %s %v %q", i, r.URL, r.Header, s.bodies[i])
				}
			}
			if len(sleeps) != len(tc.sleeps) || (len(sleeps) > 0 && sleeps[0] != tc.sleeps[0]) {
				t.Fatalf("sleeps %v, want %v", sleeps, tc.sleeps)
			}
			if tc.status == 0 {
				if err != nil || !out.OK {
					t.Fatalf("%v %+v", err, out)
				}
				return
			}
			var pe *sandboxagent.ProviderAPIError
			if !errors.As(err, &pe) || pe.StatusCode != tc.status || pe.Provider != "acme" || pe.Op != "create sandbox" {
				t.Fatalf("error %v", err)
			}
			if unauth := tc.status == 401 || tc.status == 403; errors.Is(err, sandboxagent.ErrProviderUnauthorized) != unauth {
				t.Fatalf("errors.Is(ErrProviderUnauthorized) = %v for %d", !unauth, tc.status)
			}
			if tc.status == 401 && (pe.Code != "unauthorized" || pe.Message != "bad key" || !strings.Contains(err.Error(), "401 Unauthorized (unauthorized): bad key")) {
				t.Fatalf("decoded error %+v: %v", pe, err)
			}
		})
	}
}

func TestAPIOKStatusesAndCancel(t *testing.T) {
	s := &script{answers: []answer{{status: 409, body: `{"message":"already paused"}`}}}
	srv := httptest.NewServer(s)
	defer srv.Close()
	a := &API{Provider: "acme", BaseURL: srv.URL, Client: srv.Client()}
	if st, err := a.JSON(t.Context(), Request{Op: "pause", Method: http.MethodPost, Path: "x", OK: []int{409}}, nil); err != nil || st != 409 {
		t.Fatalf("%d %v", st, err)
	}
	// A cancelled wait between retries ends the call with ctx's error.
	s.answers = []answer{{status: 503}}
	ctx, cancel := context.WithCancel(t.Context())
	a.Sleep = func(ctx context.Context, _ time.Duration) error { cancel(); return ctx.Err() }
	_, err := a.JSON(ctx, Request{Op: "get", Method: http.MethodGet, Path: "x"}, nil)
	var pe *sandboxagent.ProviderAPIError
	if !errors.Is(err, context.Canceled) || !errors.As(err, &pe) || pe.StatusCode != 503 {
		t.Fatalf("%v", err)
	}
}

func TestRetryAfter(t *testing.T) {
	for in, want := range map[string]time.Duration{"": 0, "7": 7 * time.Second, "-1": 0, "soon": 0,
		time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat): 0} {
		if got := retryAfter(in); got != want {
			t.Errorf("retryAfter(%q) = %v, want %v", in, got, want)
		}
	}
	if d := retryAfter(time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)); d < 59*time.Minute {
		t.Errorf("HTTP date: %v", d)
	}
}
