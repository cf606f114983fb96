package sandboxagent_test

import (
	"context"
	"encoding/json"
	"fmt"

	sandboxagent "github.com/sandbox-agent-go/sandbox-agent"
)

func ExampleMemoryStore() {
	ctx := context.Background()
	store := sandboxagent.NewMemoryStore(sandboxagent.MemoryStoreOptions{
		MaxSessions:         1024,
		MaxEventsPerSession: 500,
	})

	err := store.UpdateSession(ctx, sandboxagent.SessionRecord{
		ID:          "my-session",
		Agent:       "claude",
		CreatedAt:   1_700_000_000_000,
		SessionInit: json.RawMessage(`{"cwd":"/workspace","mcpServers":[]}`),
	})
	if err != nil {
		panic(err)
	}

	// The store assigns event indexes: 1, 2, 3, ...
	for _, method := range []string{"session/new", "session/prompt", "session/cancel"} {
		ev, err := store.InsertEvent(ctx, "my-session", sandboxagent.SessionEvent{
			ConnectionID: "conn-1",
			Sender:       sandboxagent.SessionEventSenderClient,
			Payload:      json.RawMessage(fmt.Sprintf(`{"jsonrpc":"2.0","method":%q}`, method)),
		})
		if err != nil {
			panic(err)
		}
		fmt.Println("stored event", ev.EventIndex)
	}

	// Page through the log two events at a time.
	req := sandboxagent.ListEventsRequest{SessionID: "my-session", Limit: 2}
	for {
		page, err := store.ListEvents(ctx, req)
		if err != nil {
			panic(err)
		}
		for _, ev := range page.Items {
			fmt.Printf("%d %s %s\n", ev.EventIndex, ev.Sender, ev.Payload)
		}
		if page.NextCursor == "" {
			break
		}
		fmt.Println("next cursor:", page.NextCursor)
		req.Cursor = page.NextCursor
	}

	rec, ok, err := store.GetSession(ctx, "my-session")
	if err != nil {
		panic(err)
	}
	fmt.Println(ok, rec.Agent, string(rec.SessionInit))
	// Output:
	// stored event 1
	// stored event 2
	// stored event 3
	// 1 client {"jsonrpc":"2.0","method":"session/new"}
	// 2 client {"jsonrpc":"2.0","method":"session/prompt"}
	// next cursor: 2
	// 3 client {"jsonrpc":"2.0","method":"session/cancel"}
	// true claude {"cwd":"/workspace","mcpServers":[]}
}
