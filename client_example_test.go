package sandboxagent_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"

	sandboxagent "github.com/sandbox-agent-go/sandbox-agent"
	"github.com/sandbox-agent-go/sandbox-agent/provider/local"
)

func ExampleConnect() {
	// A stand-in server; normally BaseURL points at sandbox-agent.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/health":
			_, _ = io.WriteString(w, `{"status":"ok"}`)
		case "/v1/agents/nope":
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"type":"urn:sandbox-agent:error:unsupported_agent","title":"Unsupported Agent","status":400,"detail":"unsupported agent: nope","agent":"nope"}`)
		}
	}))
	defer srv.Close()

	ctx := context.Background()
	client, err := sandboxagent.Connect(ctx, sandboxagent.Options{BaseURL: srv.URL})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close(ctx)

	h, _ := client.GetHealth(ctx)
	fmt.Println("health:", h.Status)

	_, err = client.GetAgent(ctx, "nope", sandboxagent.AgentQuery{})
	var apiErr *sandboxagent.Error
	if errors.As(err, &apiErr) {
		fmt.Println(apiErr.Status, apiErr.Problem.Type, apiErr.Problem.Extra["agent"])
	}
	// Output:
	// health: ok
	// 400 urn:sandbox-agent:error:unsupported_agent nope
}

func ExampleParseSandboxID() {
	provider, raw, _ := sandboxagent.ParseSandboxID("local/127.0.0.1:2468")
	fmt.Println(provider, raw)
	_, _, err := sandboxagent.ParseSandboxID("no-prefix")
	fmt.Println(err)
	// Output:
	// local 127.0.0.1:2468
	// sandboxagent: sandbox IDs must be prefixed as "{provider}/{id}". Received 'no-prefix'
}

// Start a local sandbox, prompt the mock agent and stream its reply.
func ExampleStart() {
	ctx := context.Background()
	provider := local.New(local.Options{}) // finds sandbox-agent via SANDBOX_AGENT_BIN or PATH
	defer provider.Close()
	client, err := sandboxagent.Start(ctx, provider, sandboxagent.StartOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer client.DestroySandbox(ctx)

	session, err := client.CreateSession(ctx, sandboxagent.CreateSessionRequest{Agent: "mock"})
	if err != nil {
		log.Fatal(err)
	}
	// OnEvent is the primary event API: every event of the turn has been
	// passed to it when Prompt returns.
	stop := session.OnEvent(func(ev sandboxagent.SessionEvent) {
		fmt.Println(ev.EventIndex, ev.Sender, string(ev.Payload))
	})
	defer stop()
	res, err := session.Prompt(ctx, "hello")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.StopReason)
}

// Answer an agent's permission requests.
func ExampleSession_OnPermissionRequest() {
	var session *sandboxagent.Session // from CreateSession
	session.OnPermissionRequest(func(req sandboxagent.PermissionRequest) {
		fmt.Println("agent asks:", string(req.ToolCall), "replies:", req.AvailableReplies)
		_ = session.RespondPermission(req.ID, sandboxagent.PermissionOnce)
	})
}

// Range over a session's events on a goroutine of your own.
func ExampleSession_Events() {
	ctx := context.Background()
	var session *sandboxagent.Session // from CreateSession
	events, stop := context.WithCancel(ctx)
	defer stop()
	seq := session.Events(events) // listening from now on, before the prompt
	go func() {
		for ev, err := range seq {
			if err != nil { // fell behind: read the rest with GetEvents
				log.Print(err)
				return
			}
			fmt.Println(ev.EventIndex, ev.Sender)
		}
	}()
	_, _ = session.Prompt(ctx, "hello")
}
