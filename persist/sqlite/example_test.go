package sqlite_test

import (
	"context"
	"encoding/json"
	"fmt"

	sandboxagent "github.com/sandbox-agent-go/sandbox-agent"
	"github.com/sandbox-agent-go/sandbox-agent/persist/sqlite"
)

func ExampleOpen() {
	ctx := context.Background()
	// A file name works the same way, e.g. "sessions.db"; several processes
	// may share one file.
	store, err := sqlite.Open(ctx, ":memory:")
	if err != nil {
		panic(err)
	}
	defer store.Close()

	var s sandboxagent.SessionStore = store
	if err := s.UpdateSession(ctx, sandboxagent.SessionRecord{
		ID:        "my-session",
		Agent:     "codex",
		CreatedAt: 1_700_000_000_000,
	}); err != nil {
		panic(err)
	}
	for _, sender := range []sandboxagent.SessionEventSender{sandboxagent.SessionEventSenderClient, sandboxagent.SessionEventSenderAgent} {
		ev, err := s.InsertEvent(ctx, "my-session", sandboxagent.SessionEvent{
			ConnectionID: "conn-1",
			Sender:       sender,
			Payload:      json.RawMessage(`{"jsonrpc":"2.0","id":1}`),
		})
		if err != nil {
			panic(err)
		}
		fmt.Println("event", ev.EventIndex, "from", ev.Sender)
	}

	page, err := s.ListSessions(ctx, sandboxagent.ListPageRequest{})
	if err != nil {
		panic(err)
	}
	for _, rec := range page.Items {
		fmt.Println(rec.ID, rec.Agent)
	}
	// Output:
	// event 1 from client
	// event 2 from agent
	// my-session codex
}
