package postgres_test

import (
	"context"
	"log"

	sandboxagent "github.com/sandbox-agent-go/sandbox-agent"
	"github.com/sandbox-agent-go/sandbox-agent/persist/postgres"
)

// Keep sessions and their events in PostgreSQL, in a schema of their own
// (created and migrated on Open), and give the store to a client. It needs
// a database, so it is compiled but not run by go test.
func ExampleOpen() {
	ctx := context.Background()
	store, err := postgres.Open(ctx, "postgres://app@db.internal/app?sslmode=require",
		postgres.WithSchema("sandbox_agent"), postgres.WithMaxConns(8))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	client, err := sandboxagent.Connect(ctx, sandboxagent.Options{BaseURL: "http://127.0.0.1:2468", Store: store})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close(ctx)
	// Sessions created here survive this process: a later client with the
	// same store resumes them (and replays their history into a new agent
	// session when the old one is gone).
	session, err := client.ResumeOrCreateSession(ctx, sandboxagent.CreateSessionRequest{ID: "support-42", Agent: "claude"})
	if err != nil {
		log.Fatal(err)
	}
	_, _ = session.Prompt(ctx, "Where were we?")
}
