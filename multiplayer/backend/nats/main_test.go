package natsbackend

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/goleak"

	"github.com/sandbox-agent-go/sandbox-agent/multiplayer/internal/natstest"
)

// TestMain checks that nothing outlives the tests: not our goroutines
// (lease loop, watcher, handlers) and not the embedded servers' (each test
// shuts its servers down and waits).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// startServer runs a standalone embedded server with JetStream.
func startServer(t *testing.T) *server.Server { return natstest.Cluster(t, 1)[0] }

var prefixes atomic.Int64

// openNode opens a Backend on its own connection to s; o's Conn, Logger
// and (when empty) Prefix are filled in.
func openNode(t *testing.T, s *server.Server, o Options) *Backend {
	t.Helper()
	if o.Prefix == "" {
		o.Prefix = fmt.Sprintf("t%d", prefixes.Add(1))
	}
	o.Conn = natstest.Connect(t, s.ClientURL())
	if o.Logger == nil {
		o.Logger = quiet
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}
