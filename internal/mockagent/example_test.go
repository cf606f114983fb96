package mockagent_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	acp "github.com/coder/acp-go-sdk"

	"github.com/sandbox-agent-go/sandbox-agent/internal/mockagent"
)

// textClient is a minimal acp.Client that collects the agent's reply text.
// It advertises no fs or terminal capability, so it is never called for them.
type textClient struct{ reply strings.Builder }

var errUnsupported = errors.New("unsupported")

func (c *textClient) SessionUpdate(_ context.Context, n acp.SessionNotification) error {
	if m := n.Update.AgentMessageChunk; m != nil && m.Content.Text != nil {
		c.reply.WriteString(m.Content.Text.Text)
	}
	return nil
}

func (c *textClient) RequestPermission(context.Context, acp.RequestPermissionRequest) (acp.RequestPermissionResponse, error) {
	return acp.RequestPermissionResponse{}, errUnsupported
}

func (c *textClient) ReadTextFile(context.Context, acp.ReadTextFileRequest) (acp.ReadTextFileResponse, error) {
	return acp.ReadTextFileResponse{}, errUnsupported
}

func (c *textClient) WriteTextFile(context.Context, acp.WriteTextFileRequest) (acp.WriteTextFileResponse, error) {
	return acp.WriteTextFileResponse{}, errUnsupported
}

func (c *textClient) CreateTerminal(context.Context, acp.CreateTerminalRequest) (acp.CreateTerminalResponse, error) {
	return acp.CreateTerminalResponse{}, errUnsupported
}

func (c *textClient) KillTerminal(context.Context, acp.KillTerminalRequest) (acp.KillTerminalResponse, error) {
	return acp.KillTerminalResponse{}, errUnsupported
}

func (c *textClient) TerminalOutput(context.Context, acp.TerminalOutputRequest) (acp.TerminalOutputResponse, error) {
	return acp.TerminalOutputResponse{}, errUnsupported
}

func (c *textClient) ReleaseTerminal(context.Context, acp.ReleaseTerminalRequest) (acp.ReleaseTerminalResponse, error) {
	return acp.ReleaseTerminalResponse{}, errUnsupported
}

func (c *textClient) WaitForTerminalExit(context.Context, acp.WaitForTerminalExitRequest) (acp.WaitForTerminalExitResponse, error) {
	return acp.WaitForTerminalExitResponse{}, errUnsupported
}

// Example runs the mock agent in-process and drives one turn with the
// acp-go-sdk client, as the server does over the agent process's stdio.
func Example() {
	agentIn, clientOut := io.Pipe()
	clientIn, agentOut := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- mockagent.Run(context.Background(), agentIn, agentOut, io.Discard) }()

	client := &textClient{}
	conn := acp.NewClientSideConnection(client, clientOut, clientIn)
	conn.SetLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))

	ctx := context.Background()
	info, err := conn.Initialize(ctx, acp.InitializeRequest{ProtocolVersion: acp.ProtocolVersionNumber})
	if err != nil {
		panic(err)
	}
	sess, err := conn.NewSession(ctx, acp.NewSessionRequest{Cwd: "/tmp", McpServers: []acp.McpServer{}})
	if err != nil {
		panic(err)
	}
	resp, err := conn.Prompt(ctx, acp.PromptRequest{
		SessionId: sess.SessionId,
		Prompt:    []acp.ContentBlock{acp.TextBlock("hello")},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(info.AgentInfo.Name, info.AgentInfo.Version)
	fmt.Println(sess.SessionId)
	fmt.Println(client.reply.String())
	fmt.Println(resp.StopReason)

	_ = clientOut.Close() // stdin EOF: the agent stops
	fmt.Println("Run:", <-done)
	_ = agentOut.Close()
	<-conn.Done()

	// Output:
	// sandbox-agent-mock builtin
	// mock-session-1
	// Mock reply: hello
	// end_turn
	// Run: <nil>
}
