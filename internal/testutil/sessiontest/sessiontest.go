// Package sessiontest holds helpers for tests that drive SDK sessions
// against a real server, such as the providers' recovery tests.
package sessiontest

import (
	"context"
	"strings"
	"testing"

	sandboxagent "github.com/sandbox-agent-go/sandbox-agent"
)

// SlowPromptInFlight starts a prompt that makes the mock agent stream
// slowly and returns once its first chunk has arrived, so the turn is
// certainly in flight. The prompt's error arrives on the channel.
func SlowPromptInFlight(ctx context.Context, s *sandboxagent.Session) <-chan error {
	chunk := make(chan struct{}, 1)
	unsub := s.OnEvent(func(ev sandboxagent.SessionEvent) {
		if strings.Contains(string(ev.Payload), "agent_message_chunk") {
			select {
			case chunk <- struct{}{}:
			default:
			}
		}
	})
	errc := make(chan error, 1)
	go func() {
		_, err := s.Prompt(ctx, "SLOW")
		errc <- err
	}()
	select {
	case <-chunk:
	case <-ctx.Done():
	}
	unsub()
	return errc
}

// Remembered creates a mock-agent session with id and gives it one finished
// turn of history, failing the test on any error.
func Remembered(t testing.TB, c *sandboxagent.Client, id string) *sandboxagent.Session {
	t.Helper()
	s, err := c.CreateSession(t.Context(), sandboxagent.CreateSessionRequest{ID: id, Agent: "mock", Cwd: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prompt(t.Context(), "remember me"); err != nil {
		t.Fatal(err)
	}
	return s
}
