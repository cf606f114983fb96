// Command recovery shows the client bringing a dead server back: it starts
// a local sandbox-agent, prompts the mock agent, kills the server in the
// middle of a slow prompt, and prompts again. The in-flight prompt fails
// with ErrConnectionLost; the client's health gate calls the provider's
// EnsureServer after three failed checks, the server restarts, and the
// session is restored with its history replayed.
//
//	go build -o /tmp/sandbox-agent ./cmd/sandbox-agent
//	SANDBOX_AGENT_BIN=/tmp/sandbox-agent go run ./examples/recovery
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	sandboxagent "github.com/sandbox-agent-go/sandbox-agent"
	"github.com/sandbox-agent-go/sandbox-agent/provider/local"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	provider := local.New(local.Options{Stderr: os.Stderr})
	defer provider.Close()
	client, err := sandboxagent.Start(ctx, provider, sandboxagent.StartOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer client.DestroySandbox(context.Background())

	session, err := client.CreateSession(ctx, sandboxagent.CreateSessionRequest{Agent: "mock"})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := session.Prompt(ctx, "remember the number 42"); err != nil {
		log.Fatal(err)
	}

	streaming := make(chan struct{}, 1)
	stop := session.OnEvent(func(ev sandboxagent.SessionEvent) {
		if _, ok := ev.AgentMessageChunk(); ok {
			select {
			case streaming <- struct{}{}:
			default:
			}
		}
	})
	errc := make(chan error, 1)
	go func() {
		_, err := session.Prompt(ctx, "SLOW")
		errc <- err
	}()
	<-streaming
	stop()

	rawID := strings.TrimPrefix(client.SandboxID(), "local/")
	fmt.Println("killing the server at", rawID)
	killed := time.Now()
	if err := provider.Kill(ctx, rawID); err != nil {
		log.Fatal(err)
	}
	err = <-errc
	fmt.Println("in-flight prompt failed:", errors.Is(err, sandboxagent.ErrConnectionLost))

	res, err := session.Prompt(ctx, "which number did I mention?")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("session continued after %s: stop reason %s\n", time.Since(killed).Round(time.Millisecond), res.StopReason)
}
