package problem

import (
	"errors"
	"fmt"
	"net/http/httptest"
	"testing"
)

func TestDocuments(t *testing.T) {
	three := 3
	tests := []struct {
		p    *Problem
		want string
	}{
		{Unsupported(""), `{"type":"urn:sandbox-agent:error:unsupported_agent","title":"Unsupported Agent","status":400,"detail":"unsupported agent: ","agent":""}`},
		{Exited("mock", &three, "dying now"), `{"type":"urn:sandbox-agent:error:agent_process_exited","title":"Agent Process Exited","status":500,"detail":"agent process exited: mock","agent":"mock","details":{"exitCode":3,"stderr":"dying now"}}`},
		{Exited("mock", nil, ""), `{"type":"urn:sandbox-agent:error:agent_process_exited","title":"Agent Process Exited","status":500,"detail":"agent process exited: mock","agent":"mock"}`},
		{Resource("process", "nope"), `{"type":"urn:sandbox-agent:error:not_found","title":"Not Found","status":404,"detail":"not found: process nope","details":{"id":"nope","resource":"process"}}`},
		{Session("mcp:fs"), `{"type":"urn:sandbox-agent:error:session_not_found","title":"Session Not Found","status":404,"detail":"session not found: mcp:fs","sessionId":"mcp:fs"}`},
		{EndpointNotFound(), `{"type":"urn:sandbox-agent:error:invalid_request","title":"Not Found","status":404,"detail":"endpoint not found"}`},
	}
	for _, tt := range tests {
		got, _ := tt.p.MarshalJSON()
		if string(got) != tt.want {
			t.Errorf("got  %s\nwant %s", got, tt.want)
		}
	}
}

func TestWriteError(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteError(rec, fmt.Errorf("wrapped: %w", ConflictMsg("busy")))
	if rec.Code != 409 || rec.Header().Get("Content-Type") != ContentType {
		t.Fatalf("%d %v", rec.Code, rec.Header())
	}
	rec = httptest.NewRecorder()
	WriteError(rec, errors.New("plain"))
	if rec.Code != 502 {
		t.Fatalf("a plain error is a stream_error, got %d", rec.Code)
	}
}
