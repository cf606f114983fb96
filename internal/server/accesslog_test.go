package server

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
)

func TestRequestLogRedactsSecrets(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	flushed := false
	stream := Route{Method: "GET", Pattern: "/v1/ws", QueryToken: true, Handler: func(w http.ResponseWriter, r *http.Request) {
		// The recorder must not hide the writer's capabilities.
		_, _ = w.Write([]byte("data: x\n\n"))
		flushed = http.NewResponseController(w).Flush() == nil
	}}
	h, err := NewHandler(Config{AuthEnabled: true, Token: "s3cret-token", Logger: log, LogHTTP: true, LogHTTPHeaders: true},
		append(BaseRoutes("test"), echoRoute(), stream))
	if err != nil {
		t.Fatal(err)
	}
	call(h, "POST", "/v1/echo", map[string]string{"Authorization": "Bearer s3cret-token", "Content-Type": "application/json", "X-Trace": "t1"}, `{"a":1}`)
	call(h, "GET", "/v1/ws?access_token=s3cret-token&cols=80", nil, "")
	call(h, "GET", "/v1/health", map[string]string{"Authorization": "Bearer wrong"}, "")
	if strings.Contains(buf.String(), "s3cret-token") {
		t.Fatalf("a secret reached the log:\n%s", buf.String())
	}
	if !flushed {
		t.Error("Flush through the request recorder failed")
	}
	type line struct {
		Msg, Method, Path, Query string
		Status                   int
		Bytes                    int64
		Headers                  map[string]string
	}
	var lines []line
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var v line
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		lines = append(lines, v)
	}
	if len(lines) != 3 {
		t.Fatalf("%d lines:\n%s", len(lines), buf.String())
	}
	if l := lines[0]; l.Msg != "http request" || l.Method != "POST" || l.Path != "/v1/echo" || l.Status != 200 || l.Bytes != 7 ||
		l.Headers["Authorization"] != "[redacted]" || l.Headers["X-Trace"] != "t1" {
		t.Errorf("echo: %+v", l)
	}
	if l := lines[1]; l.Status != 200 || l.Query != "access_token=%5Bredacted%5D&cols=80" {
		t.Errorf("ws: %+v", l)
	}
	if l := lines[2]; l.Status != 401 || l.Path != "/v1/health" {
		t.Errorf("refused: %+v", l)
	}
}
