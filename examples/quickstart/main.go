// Command quickstart starts a local sandbox-agent (the provider/local
// provider; set SANDBOX_AGENT_BIN or put sandbox-agent on PATH), opens a
// session with the deterministic mock agent, and prints the streamed reply.
//
//	go build -o /tmp/sandbox-agent ./cmd/sandbox-agent
//	SANDBOX_AGENT_BIN=/tmp/sandbox-agent go run ./examples/quickstart "hello there"
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	sandboxagent "github.com/sandbox-agent-go/sandbox-agent"
	"github.com/sandbox-agent-go/sandbox-agent/provider/local"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	text := "hello"
	if len(os.Args) > 1 {
		text = strings.Join(os.Args[1:], " ")
	}

	provider := local.New(local.Options{Stderr: os.Stderr})
	defer provider.Close()
	client, err := sandboxagent.Start(ctx, provider, sandboxagent.StartOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer client.DestroySandbox(context.Background())
	fmt.Println("sandbox:", client.SandboxID())

	session, err := client.CreateSession(ctx, sandboxagent.CreateSessionRequest{Agent: "mock"})
	if err != nil {
		log.Fatal(err)
	}
	// Print the agent's message chunks as they stream in.
	session.OnEvent(func(ev sandboxagent.SessionEvent) {
		if chunk, ok := ev.AgentText(); ok {
			fmt.Print(chunk)
		}
	})
	res, err := session.Prompt(ctx, text)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("\nstop reason: %s\n", res.StopReason)
}
