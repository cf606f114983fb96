package sandboxagent_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	sandboxagent "github.com/sandbox-agent-go/sandbox-agent"
)

// acpRefusingServer answers initialize and session/new but refuses every
// session/prompt POST with a 503 problem document.
func acpRefusingServer(t *testing.T) *httptest.Server {
	h := http.NewServeMux()
	h.HandleFunc("GET /v1/health", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, `{"status":"ok"}`) })
	h.HandleFunc("POST /v1/acp/{id}", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		switch {
		case req.ID == nil:
			w.WriteHeader(http.StatusAccepted)
		case req.Method == "session/prompt":
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"title":"Service Unavailable","status":503,"detail":"agent is restarting"}`)
		default:
			_, _ = fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"sessionId":"agent-1"}}`, req.ID)
		}
	})
	h.HandleFunc("GET /v1/acp/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush()
		<-r.Context().Done()
	})
	h.HandleFunc("DELETE /v1/acp/{id}", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	ts := httptest.NewServer(h)
	t.Cleanup(func() { ts.CloseClientConnections(); ts.Close() })
	return ts
}

// A caller tells an ACP POST refused by the server with errors.As against
// the root package's ACPHTTPError (no import of acp/acphttp), and that the
// connection is gone with errors.Is against ErrConnectionLost.
func TestACPPostFailureIsAnACPHTTPError(t *testing.T) {
	ts := acpRefusingServer(t)
	c, err := sandboxagent.Connect(t.Context(), sandboxagent.Options{BaseURL: ts.URL, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	s, err := c.CreateSession(t.Context(), sandboxagent.CreateSessionRequest{Agent: "mock", Cwd: "/"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Prompt(t.Context(), "hello")
	var he *sandboxagent.ACPHTTPError
	if !errors.As(err, &he) {
		t.Fatalf("errors.As(%v, *ACPHTTPError) = false", err)
	}
	if he.Method != http.MethodPost || he.Status != http.StatusServiceUnavailable {
		t.Errorf("ACPHTTPError = %s %d, want POST 503", he.Method, he.Status)
	}
	if !errors.Is(err, sandboxagent.ErrConnectionLost) {
		t.Errorf("errors.Is(%v, ErrConnectionLost) = false", err)
	}
	var apiErr *sandboxagent.Error
	if errors.As(err, &apiErr) {
		t.Errorf("an ACP failure is also an *Error: %v", apiErr)
	}
}
