package sessionstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	sandboxagent "github.com/sandbox-agent-go/sandbox-agent"
	"github.com/sandbox-agent-go/sandbox-agent/multiplayer/backend"
	"github.com/sandbox-agent-go/sandbox-agent/multiplayer/backend/memory"
	"github.com/sandbox-agent-go/sandbox-agent/multiplayer/sessionstore"
)

// Keep an actor's SDK sessions in its own storage: the next owner of the
// actor finds them, and the previous owner can no longer write.
func Example() {
	ctx := context.Background()
	b := memory.New()
	defer b.Close()
	a, _, err := b.GetOrCreate(ctx, "workspace", []string{"ws-1"}, nil)
	if err != nil {
		panic(err)
	}
	owner, err := b.Claim(ctx, a.ID)
	if err != nil {
		panic(err)
	}

	store := sessionstore.New(owner)
	if err := store.UpdateSession(ctx, sandboxagent.SessionRecord{ID: "s1", Agent: "claude", CreatedAt: 1_700_000_000_000}); err != nil {
		panic(err)
	}
	ev, err := store.InsertEvent(ctx, "s1", sandboxagent.SessionEvent{
		ConnectionID: "conn-1",
		Sender:       sandboxagent.SessionEventSenderClient,
		Payload:      json.RawMessage(`{"jsonrpc":"2.0","id":1,"method":"session/prompt"}`),
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("inserted event", ev.EventIndex)

	// The actor sleeps and is woken again: a new Owner, a new Store.
	if err := owner.Release(ctx); err != nil {
		panic(err)
	}
	next, err := b.Claim(ctx, a.ID)
	if err != nil {
		panic(err)
	}
	events, err := sessionstore.New(next).ListEvents(ctx, sandboxagent.ListEventsRequest{SessionID: "s1"})
	if err != nil {
		panic(err)
	}
	fmt.Println("events after waking:", len(events.Items), string(events.Items[0].Payload))

	err = store.UpdateSession(ctx, sandboxagent.SessionRecord{ID: "s2", Agent: "codex"})
	fmt.Println("old owner fenced:", errors.Is(err, backend.ErrFenced))
	// Output:
	// inserted event 1
	// events after waking: 1 {"jsonrpc":"2.0","id":1,"method":"session/prompt"}
	// old owner fenced: true
}
