// Command persistence keeps sessions in SQLite so they survive a restart of
// the application: run it twice with the same database and the second run
// resumes the session — the SDK creates a new agent session and replays the
// stored history before the new prompt.
//
//	go build -o /tmp/sandbox-agent ./cmd/sandbox-agent
//	export SANDBOX_AGENT_BIN=/tmp/sandbox-agent
//	go run ./examples/persistence -db /tmp/sessions.db "my name is Ada"
//	go run ./examples/persistence -db /tmp/sessions.db "what is my name?"
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	sandboxagent "github.com/sandbox-agent-go/sandbox-agent"
	"github.com/sandbox-agent-go/sandbox-agent/persist/sqlite"
	"github.com/sandbox-agent-go/sandbox-agent/provider/local"
)

func main() {
	db := flag.String("db", "sessions.db", "SQLite database file")
	id := flag.String("session", "demo", "local session id")
	flag.Parse()
	text := strings.Join(flag.Args(), " ")
	if text == "" {
		text = "hello"
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	store, err := sqlite.Open(ctx, *db)
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	provider := local.New(local.Options{Stderr: os.Stderr})
	defer provider.Close()
	client, err := sandboxagent.Start(ctx, provider, sandboxagent.StartOptions{Options: sandboxagent.Options{Store: store}})
	if err != nil {
		log.Fatal(err)
	}
	defer client.DestroySandbox(context.Background())

	// Resumes (and restores) the session when the database has it.
	session, err := client.ResumeOrCreateSession(ctx, sandboxagent.CreateSessionRequest{ID: *id, Agent: "mock"})
	if err != nil {
		log.Fatal(err)
	}
	res, err := session.Prompt(ctx, text)
	if err != nil {
		log.Fatal(err)
	}
	page, err := client.GetEvents(ctx, sandboxagent.ListEventsRequest{SessionID: *id, Limit: 1000})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("session %s: stop reason %s; %d events stored in %s\n", *id, res.StopReason, len(page.Items), *db)
}
