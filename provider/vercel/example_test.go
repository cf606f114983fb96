//go:build unix

package vercel_test

import (
	"context"
	"fmt"
	"log"
	"os"

	sandboxagent "github.com/sandbox-agent-go/sandbox-agent"
	"github.com/sandbox-agent-go/sandbox-agent/provider"
	"github.com/sandbox-agent-go/sandbox-agent/provider/internal/fakesandbox/vercelfake"
	"github.com/sandbox-agent-go/sandbox-agent/provider/vercel"
)

// Start a Vercel sandbox, prompt the mock agent in it, and delete the
// sandbox. Here the Vercel API is the test fake; in production leave
// APIURL and SandboxURL empty and set VERCEL_TOKEN, VERCEL_TEAM_ID and
// VERCEL_PROJECT_ID (or VERCEL_OIDC_TOKEN), and let Install fetch the
// release (or use a template that has sandbox-agent).
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "vercel-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	fake := vercelfake.Start(dir, vercelfake.Options{})
	defer fake.Close()

	p, err := vercel.New(vercel.Options{
		Token: fake.Token(), TeamID: fake.TeamID(), ProjectID: fake.ProjectID(),
		APIURL: fake.APIURL, SandboxURL: fake.SandboxURL,
		Install: provider.Install{BinaryPath: bin}, // a linux build of sandbox-agent
		Env:     map[string]string{"ANTHROPIC_API_KEY": "sk-…"},
		Logger:  quiet(),
	})
	if err != nil {
		log.Fatal(err)
	}
	client, err := sandboxagent.Start(ctx, p, sandboxagent.StartOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer client.DestroySandbox(ctx) // DELETE /v2/sandboxes/{name}
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
