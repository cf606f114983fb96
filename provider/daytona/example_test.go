//go:build unix

package daytona_test

import (
	"context"
	"fmt"
	"log"

	sandboxagent "github.com/sandbox-agent-go/sandbox-agent"
	"github.com/sandbox-agent-go/sandbox-agent/provider"
	"github.com/sandbox-agent-go/sandbox-agent/provider/daytona"
	"github.com/sandbox-agent-go/sandbox-agent/provider/internal/fakesandbox/daytonafake"
)

// Start a Daytona sandbox, prompt the mock agent in it, and delete it.
// Here Daytona is the test fake; against the real service leave APIURL and
// HTTPClient unset and set DAYTONA_API_KEY (Install then defaults to the
// release's install.sh, or use a snapshot that has sandbox-agent).
func Example() {
	fake, err := daytonafake.Start(daytonafake.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer fake.Close()

	ctx := context.Background()
	p, err := daytona.New(daytona.Options{
		APIKey:     daytonafake.DefaultAPIKey, // default $DAYTONA_API_KEY
		APIURL:     fake.APIURL,               // default $DAYTONA_API_URL, then https://app.daytona.io/api
		HTTPClient: fake.Client(),
		Env:        map[string]string{"ANTHROPIC_API_KEY": "sk-…"},
		Install:    provider.Install{BinaryPath: bin}, // a linux build of sandbox-agent, uploaded
		// AutoStopInterval: 0 (default) never stops an idle sandbox.
	})
	if err != nil {
		log.Fatal(err)
	}
	client, err := sandboxagent.Start(ctx, p, sandboxagent.StartOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer client.DestroySandbox(ctx)
	session, err := client.CreateSession(ctx, sandboxagent.CreateSessionRequest{Agent: "mock"})
	if err != nil {
		log.Fatal(err)
	}
	res, err := session.Prompt(ctx, "hello")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.StopReason)
	// Output: end_turn
}
