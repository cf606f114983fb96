package server

import (
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// statusRecorder remembers the status and size of an answer for the
// request log. Unwrap keeps http.ResponseController working through it
// (SSE flushes, write deadlines, the hijacked upload path).
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(p []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(p)
	s.bytes += int64(n)
	return n, err
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// secretHeaders are never logged with their values.
var secretHeaders = map[string]bool{"Authorization": true, "Cookie": true, "Proxy-Authorization": true, "X-Api-Key": true}

// redactedQuery hides the token a browser WebSocket passes in the URL.
func redactedQuery(q url.Values) string {
	if len(q) == 0 {
		return ""
	}
	if _, ok := q["access_token"]; ok {
		q = maps.Clone(q) // Set replaces the slice; the request's stays intact
		q.Set("access_token", "[redacted]")
	}
	return q.Encode()
}

// logRequest writes one line per finished request: method, path, query
// (tokens redacted), status, bytes, duration, remote address, and, with
// headers set, the request headers (secrets redacted). A hijacked
// connection (large uploads) reports status 0: its answer is written
// past net/http.
func logRequest(log *slog.Logger, headers bool, r *http.Request, rec *statusRecorder, d time.Duration) {
	attrs := []slog.Attr{
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.Int("status", rec.status),
		slog.Int64("bytes", rec.bytes),
		slog.Duration("duration", d),
		slog.String("remote", r.RemoteAddr),
	}
	if q := redactedQuery(r.URL.Query()); q != "" {
		attrs = append(attrs, slog.String("query", q))
	}
	if headers {
		h := make([]any, 0, 2*len(r.Header))
		for k, v := range r.Header {
			val := strings.Join(v, ", ")
			if secretHeaders[k] {
				val = "[redacted]"
			}
			h = append(h, k, val)
		}
		attrs = append(attrs, slog.Group("headers", h...))
	}
	log.LogAttrs(r.Context(), slog.LevelInfo, "http request", attrs...)
}
