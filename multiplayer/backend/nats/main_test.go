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
	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"
)

// TestMain checks that nothing outlives the tests: not our goroutines
// (lease loop, watcher, handlers) and not the embedded servers' (each test
// shuts its servers down and waits).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// startServer runs an embedded nats-server with JetStream on 127.0.0.1,
// ports picked by the OS, storage under t.TempDir(). With name and
// routes set it joins a cluster.
func startServer(t *testing.T, name string, routes ...string) *server.Server {
	t.Helper()
	o := &server.Options{
		ServerName: name,
		Host:       "127.0.0.1",
		Port:       -1,
		JetStream:  true,
		StoreDir:   t.TempDir(),
		NoLog:      true,
		NoSigs:     true,
	}
	if name != "" {
		o.Cluster = server.ClusterOpts{Name: "mp-test", Host: "127.0.0.1", Port: -1}
		o.Routes = server.RoutesFromStr(joinURLs(routes))
	}
	s, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

func connect(t *testing.T, s *server.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

var prefixes atomic.Int64

// openNode opens a Backend on its own connection to s; o's Conn, Logger
// and (when empty) Prefix are filled in.
func openNode(t *testing.T, s *server.Server, o Options) *Backend {
	t.Helper()
	if o.Prefix == "" {
		o.Prefix = fmt.Sprintf("t%d", prefixes.Add(1))
	}
	o.Conn = connect(t, s)
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
