//go:build unix

package e2b_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"strings"

	sandboxagent "github.com/sandbox-agent-go/sandbox-agent"
	"github.com/sandbox-agent-go/sandbox-agent/provider"
	"github.com/sandbox-agent-go/sandbox-agent/provider/e2b"
	"github.com/sandbox-agent-go/sandbox-agent/provider/internal/fakesandbox/e2bfake"
)

// Start an E2B sandbox, prompt the mock agent in it, and delete the
// sandbox. Here a fake E2B stands in for api.e2b.app; with a real account,
// e2b.New(e2b.Options{}) reads E2B_API_KEY and the sandbox installs the
// release's sandbox-agent itself.
func Example() {
	ctx := context.Background()
	fake, err := e2bfake.Start(e2bfake.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer fake.Close()
	p, err := e2b.New(e2b.Options{
		APIKey: fake.APIKey(), // default: $E2B_API_KEY
		// Only for the fake: E2B's URLs, on loopback.
		APIURL: fake.APIURL, HTTPClient: fake.Client(), SandboxURL: fake.SandboxURL,
		// A linux build of sandbox-agent to upload (default: the release's
		// install.sh, or the template's own sandbox-agent).
		Install: provider.Install{BinaryPath: bin},
		Logger:  slog.New(slog.DiscardHandler),
	})
	if err != nil {
		log.Fatal(err)
	}
	client, err := sandboxagent.Start(ctx, p, sandboxagent.StartOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer client.DestroySandbox(ctx) // deletes the sandbox; PauseSandbox pauses it
	fmt.Println(strings.HasPrefix(client.SandboxID(), "e2b/"))
	session, err := client.CreateSession(ctx, sandboxagent.CreateSessionRequest{Agent: "mock"})
	if err != nil {
		log.Fatal(err)
	}
	res, err := session.Prompt(ctx, "hello")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.StopReason)
	// Output:
	// true
	// end_turn
}
