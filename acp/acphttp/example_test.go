package acphttp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"

	"github.com/sandbox-agent-go/sandbox-agent/acp/acphttp"
)

// Talk ACP to an agent through a sandbox-agent server without the SDK's
// session layer: the first call creates the agent process, notifications
// stream in on OnNotification, and Close deletes the server. It needs a
// running server, so it is compiled but not run by go test.
func Example() {
	ctx := context.Background()
	conn, err := acphttp.New(acphttp.Options{
		BaseURL:  "http://127.0.0.1:2468",
		ServerID: "raw-demo",
		Agent:    "mock",
		OnNotification: func(r acphttp.Request) {
			fmt.Println(r.Method, string(r.Params)) // session/update chunks
		},
		// Agent→client requests (permissions, fs/*, terminal/*).
		OnRequest: func(ctx context.Context, r acphttp.Request) (any, error) {
			return nil, &acphttp.RPCError{Code: -32601, Message: "not supported here"}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Call(ctx, "initialize", map[string]any{"protocolVersion": 1}); err != nil {
		log.Fatal(err)
	}
	res, err := conn.Call(ctx, "session/new", map[string]any{"cwd": "/tmp", "mcpServers": []any{}})
	if err != nil {
		log.Fatal(err)
	}
	var s struct{ SessionID string }
	_ = json.Unmarshal(res, &s)
	res, err = conn.Call(ctx, "session/prompt", map[string]any{
		"sessionId": s.SessionID,
		"prompt":    []any{map[string]any{"type": "text", "text": "hello"}},
	})
	if err != nil {
		log.Fatal(err) // *acphttp.RPCError for a JSON-RPC error; ErrConnectionLost if the server went away
	}
	fmt.Println(string(res)) // {"stopReason":"end_turn"}
}
