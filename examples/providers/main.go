// Command providers starts a sandbox with the provider named by
// $SANDBOX_PROVIDER, prompts the mock agent once, and destroys the sandbox.
// Each provider reads its own vendor's environment (E2B_API_KEY,
// DAYTONA_API_KEY, VERCEL_TOKEN with VERCEL_TEAM_ID and VERCEL_PROJECT_ID,
// DOCKER_HOST...); a missing credential is reported with the variable to set.
//
//	SANDBOX_PROVIDER=local SANDBOX_AGENT_BIN=/tmp/sandbox-agent go run ./examples/providers
//	SANDBOX_PROVIDER=daytona DAYTONA_API_KEY=... go run ./examples/providers "hello"
//
// Remote providers install sandbox-agent in the sandbox: a template or
// image that has it, else $SANDBOX_AGENT_UPLOAD (a linux build of
// sandbox-agent, uploaded and checked), else the release's install.sh.
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
	"github.com/sandbox-agent-go/sandbox-agent/provider"
	"github.com/sandbox-agent-go/sandbox-agent/provider/daytona"
	"github.com/sandbox-agent-go/sandbox-agent/provider/docker"
	"github.com/sandbox-agent-go/sandbox-agent/provider/e2b"
	"github.com/sandbox-agent-go/sandbox-agent/provider/local"
	"github.com/sandbox-agent-go/sandbox-agent/provider/vercel"
)

// newProvider builds the provider called name from the environment.
func newProvider(name string) (sandboxagent.SandboxProvider, error) {
	install := provider.Install{BinaryPath: os.Getenv("SANDBOX_AGENT_UPLOAD")}
	switch name {
	case "", "local":
		return local.New(local.Options{}), nil
	case "docker":
		return docker.New(docker.Options{Image: os.Getenv("SANDBOX_IMAGE")})
	case "e2b":
		return e2b.New(e2b.Options{Install: install})
	case "daytona":
		return daytona.New(daytona.Options{Install: install})
	case "vercel":
		return vercel.New(vercel.Options{Install: install})
	default:
		return nil, fmt.Errorf("unknown SANDBOX_PROVIDER %q (local, docker, e2b, daytona, vercel)", name)
	}
}

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	p, err := newProvider(os.Getenv("SANDBOX_PROVIDER"))
	var missing *sandboxagent.MissingCredentialsError
	if errors.As(err, &missing) {
		log.Fatalf("%s needs credentials: set %s", missing.Provider, strings.Join(missing.EnvVars, " or "))
	}
	if err != nil {
		log.Fatal(err)
	}
	client, err := sandboxagent.Start(ctx, p, sandboxagent.StartOptions{})
	if errors.Is(err, sandboxagent.ErrProviderUnauthorized) {
		log.Fatalf("%s refused the credentials: %v", p.Name(), err)
	}
	if err != nil {
		log.Fatal(err)
	}
	defer client.DestroySandbox(context.Background())
	fmt.Println("sandbox:", client.SandboxID())

	session, err := client.CreateSession(ctx, sandboxagent.CreateSessionRequest{Agent: "mock"})
	if err != nil {
		log.Fatal(err)
	}
	var reply sandboxagent.Reply
	session.OnEvent(reply.Add)
	text := "hello from " + p.Name()
	if len(os.Args) > 1 {
		text = strings.Join(os.Args[1:], " ")
	}
	res, err := session.Prompt(ctx, text)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(reply.Text())
	fmt.Println("stop reason:", res.StopReason)
}
