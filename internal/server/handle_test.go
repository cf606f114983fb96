package server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sandbox-agent-go/sandbox-agent/internal/httpjson"
	"github.com/sandbox-agent-go/sandbox-agent/internal/problem"
)

func TestHandle(t *testing.T) {
	gone := problem.Session("s1")
	tests := []struct {
		name   string
		fn     HandlerFunc
		status int
		ctype  string
		body   string
		logged string // substring of the log; "" means nothing logged
	}{
		{name: "nil error keeps the answer", fn: func(w http.ResponseWriter, r *http.Request) error {
			httpjson.Write(w, http.StatusOK, map[string]int{"n": 1})
			return nil
		}, status: 200, ctype: "application/json", body: `{"n":1}`},
		{name: "problem", fn: func(http.ResponseWriter, *http.Request) error { return gone },
			status: 404, ctype: problem.ContentType, body: mustJSON(t, gone)},
		{name: "wrapped problem found with errors.As", fn: func(http.ResponseWriter, *http.Request) error {
			return fmt.Errorf("looking up: %w", gone)
		}, status: 404, ctype: problem.ContentType, body: mustJSON(t, gone)},
		{name: "extractor text error", fn: func(http.ResponseWriter, *http.Request) error {
			return httpjson.QueryError("missing field `path`")
		}, status: 400, ctype: "text/plain; charset=utf-8", body: "Failed to deserialize query string: missing field `path`"},
		{name: "plain error is today's 502 stream_error, logged", fn: func(http.ResponseWriter, *http.Request) error {
			return errors.New("boom")
		}, status: 502, ctype: problem.ContentType, body: mustJSON(t, problem.Stream("boom")), logged: "handler failed"},
		{name: "error after the answer started is logged, not written", fn: func(w http.ResponseWriter, r *http.Request) error {
			w.WriteHeader(http.StatusAccepted)
			_, _ = io.WriteString(w, "partial")
			return gone
		}, status: 202, body: "partial", logged: "handler failed after answering"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			h, err := NewHandler(Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))},
				[]Route{{Method: http.MethodGet, Pattern: "/v1/x", Handler: Handle(tt.fn)}})
			if err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/x", nil))
			if rec.Code != tt.status {
				t.Errorf("status = %d, want %d", rec.Code, tt.status)
			}
			if got := rec.Body.String(); got != tt.body {
				t.Errorf("body = %q, want %q", got, tt.body)
			}
			if tt.ctype != "" && rec.Header().Get("Content-Type") != tt.ctype {
				t.Errorf("content type = %q, want %q", rec.Header().Get("Content-Type"), tt.ctype)
			}
			switch {
			case tt.logged == "" && logs.Len() > 0:
				t.Errorf("unexpected log: %s", logs.String())
			case tt.logged != "" && !strings.Contains(logs.String(), tt.logged):
				t.Errorf("log %q lacks %q", logs.String(), tt.logged)
			}
		})
	}
}

func mustJSON(t *testing.T, p *problem.Problem) string {
	t.Helper()
	b, err := p.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
