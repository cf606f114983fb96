// Package natstest runs embedded NATS servers with JetStream for tests: a
// standalone server or a cluster routed on loopback, each with its storage
// under the test's temporary directory and shut down when the test ends.
// The multiplayer runtime's and backend/nats's tests share it.
package natstest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ReadyTimeout bounds the wait for a server to accept clients and for a
// cluster to have its routes and a JetStream meta leader.
const ReadyTimeout = 20 * time.Second

// ClusterName is the cluster the servers of Cluster join.
const ClusterName = "mp-test"

// ServerName is the name of Cluster's server i (s0, s1, ...), which
// JetStream reports as a stream's leader.
func ServerName(i int) string { return fmt.Sprintf("s%d", i) }

// Cluster starts n embedded nats-servers with JetStream on 127.0.0.1 (client
// ports picked by the OS, routes on free loopback ports) and returns them once they are routed to
// one another and JetStream has a meta leader on which every server agrees,
// so that streams with up to n replicas can be created at once. n == 1 is a
// standalone server (no cluster). Each server stores under t.TempDir() and
// is shut down, and waited for, at the test's cleanup; shutting one down
// earlier (a killed node) is fine.
func Cluster(t testing.TB, n int) []*server.Server {
	t.Helper()
	if n < 1 {
		t.Fatalf("natstest: a cluster of %d servers", n)
	}
	if n == 1 {
		return []*server.Server{start(t, "", 0, nil)}
	}
	// Every server lists the routes to all (itself included: a server
	// ignores a route to itself), as a production cluster is configured;
	// JetStream refuses to cluster without configured routes.
	ports := freePorts(t, n)
	routes := make([]*url.URL, n)
	for i, p := range ports {
		routes[i] = &url.URL{Scheme: "nats", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(p))}
	}
	srvs := make([]*server.Server, n)
	for i := range srvs {
		srvs[i] = start(t, ServerName(i), ports[i], routes)
	}
	waitClustered(t, srvs)
	return srvs
}

// freePorts finds n free loopback ports: listened on, then closed, so a
// port may in principle be taken again before its server binds it (start
// then fails the test rather than hanging).
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	out := make([]int, n)
	for i := range out {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("natstest: %v", err)
		}
		out[i] = ln.Addr().(*net.TCPAddr).Port
		defer ln.Close()
	}
	return out
}

func start(t testing.TB, name string, clusterPort int, routes []*url.URL) *server.Server {
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
		o.Cluster = server.ClusterOpts{Name: ClusterName, Host: "127.0.0.1", Port: clusterPort}
		o.Routes = routes
	}
	s, err := server.NewServer(o)
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	s.Start()
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	if !s.ReadyForConnections(ReadyTimeout) {
		t.Fatalf("natstest: server %q not ready for connections within %v", name, ReadyTimeout)
	}
	return s
}

// waitClustered polls the servers' own view (there is no event to wait
// on): full mesh of routes, one meta leader, every meta replica current.
func waitClustered(t testing.TB, srvs []*server.Server) {
	t.Helper()
	deadline := time.Now().Add(ReadyTimeout)
	for {
		why := clusterState(srvs)
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("natstest: cluster of %d not ready within %v: %s", len(srvs), ReadyTimeout, why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// clusterState is "" when the cluster is ready, else what it waits for.
func clusterState(srvs []*server.Server) string {
	leaders := 0
	for _, s := range srvs {
		if got := s.NumRemotes(); got != len(srvs)-1 {
			return fmt.Sprintf("%s has routes to %d servers of %d", s.Name(), got, len(srvs)-1)
		}
		if !s.JetStreamIsCurrent() {
			return s.Name() + "'s JetStream meta state is not current"
		}
		if s.JetStreamIsLeader() {
			leaders++
		}
	}
	if leaders != 1 {
		return fmt.Sprintf("%d JetStream meta leaders", leaders)
	}
	return ""
}

// URLs are the client URLs of srvs.
func URLs(srvs ...*server.Server) []string {
	out := make([]string, len(srvs))
	for i, s := range srvs {
		out[i] = s.ClientURL()
	}
	return out
}

// Connect opens a client connection to urls (comma-joined into one
// server list) that reconnects forever, quickly; closed at cleanup
// (closing it earlier, to kill a node, is fine).
func Connect(t testing.TB, urls ...string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(strings.Join(urls, ","), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatalf("natstest: connect %v: %v", urls, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// MoveLeaders makes every stream in streams led by a server other than
// the one named off, asking its leader to step down while it is off's,
// and returns once each has another leader (bounded by ctx). Tests that
// kill server off call it first, so that what they measure is the
// multiplayer lease, not Raft's election timeout (4–9 s in nats-server).
func MoveLeaders(ctx context.Context, t testing.TB, nc *nats.Conn, off string, streams ...string) {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	for _, name := range streams {
		for {
			leader := ""
			if st, err := js.Stream(ctx, name); err == nil && st.CachedInfo().Cluster != nil {
				leader = st.CachedInfo().Cluster.Leader
			}
			if leader != "" && leader != off {
				break
			}
			if leader == off {
				if _, err := nc.RequestWithContext(ctx, "$JS.API.STREAM.LEADER.STEPDOWN."+name, nil); err != nil {
					t.Logf("natstest: stepdown of %s: %v", name, err)
				}
			}
			select {
			case <-ctx.Done():
				t.Fatalf("natstest: stream %s: leader not moved off %s: %v", name, off, ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}
