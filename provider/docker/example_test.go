package docker_test

import (
	"context"
	"fmt"
	"log"

	sandboxagent "github.com/sandbox-agent-go/sandbox-agent"
	"github.com/sandbox-agent-go/sandbox-agent/provider/docker"
)

// Start a sandbox as a Docker container (the image's entrypoint is
// sandbox-agent), prompt the mock agent in it, and remove the container.
// It needs a Docker Engine, so it is compiled but not run by go test.
func Example() {
	ctx := context.Background()
	p, err := docker.New(docker.Options{
		Image: "ghcr.io/acme/sandbox-agent:latest",
		Env:   []string{"ANTHROPIC_API_KEY=sk-…"},
	})
	if err != nil {
		log.Fatal(err)
	}
	client, err := sandboxagent.Start(ctx, p, sandboxagent.StartOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer client.DestroySandbox(ctx)            // stop (5 s) + remove
	fmt.Println("sandbox:", client.SandboxID()) // docker/<container id>; Start(…{SandboxID}) reconnects
	session, err := client.CreateSession(ctx, sandboxagent.CreateSessionRequest{Agent: "mock"})
	if err != nil {
		log.Fatal(err)
	}
	res, err := session.Prompt(ctx, "hello")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.StopReason)
}
