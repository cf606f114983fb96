package sandboxagent

import (
	"context"
	"log/slog"
	"testing"

	"github.com/sandbox-agent-go/sandbox-agent/internal/testutil/apptest"
)

// agentBin is the real sandbox-agent binary, built into a temporary
// directory (removed after the run) by the package's TestMain
// (store_test.go, through export_test.go's AgentBinary). The test binary
// cannot serve as the mock agent itself, so the in-process server launches
// `<agentBin> mock-agent-process`.
var agentBin string

func agentBinary(t *testing.T) string {
	t.Helper()
	if agentBin == "" {
		t.Fatal("sandbox-agent was not built: TestMain must run testbin.Main with AgentBinary")
	}
	return agentBin
}

// startTestServer runs an in-process sandbox-agent whose mock agent is
// the real binary; Kill and Restart simulate a crash and a restart.
func startTestServer(t *testing.T) *apptest.Server {
	t.Helper()
	return apptest.Start(t, apptest.Options{Executable: agentBinary(t)})
}

func connectTest(t *testing.T, s *apptest.Server, mut func(*Options)) *Client {
	t.Helper()
	o := Options{BaseURL: s.URL, Logger: slog.New(slog.DiscardHandler)}
	if mut != nil {
		mut(&o)
	}
	c, err := Connect(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}
