package natstest_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/sandbox-agent-go/sandbox-agent/multiplayer/internal/natstest"
)

// The servers' goroutines are gone after each test's cleanup.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A 3-server cluster is ready for an R3 stream as soon as Cluster returns,
// and MoveLeaders moves that stream's leader off a chosen server.
func TestClusterR3AndMoveLeaders(t *testing.T) {
	if testing.Short() {
		t.Skip("3-server cluster")
	}
	srvs := natstest.Cluster(t, 3)
	for i, s := range srvs {
		if s.Name() != natstest.ServerName(i) || !s.JetStreamIsClustered() {
			t.Fatalf("server %d: name %q clustered %v", i, s.Name(), s.JetStreamIsClustered())
		}
	}
	nc := natstest.Connect(t, natstest.URLs(srvs[1])...)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "r3", Subjects: []string{"r3.>"}, Replicas: 3})
	if err != nil {
		t.Fatalf("R3 stream on a fresh cluster: %v", err)
	}
	leader := ""
	for leader == "" {
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		leader = info.Cluster.Leader
	}
	natstest.MoveLeaders(ctx, t, nc, leader, "r3")
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Cluster.Leader == leader || info.Cluster.Leader == "" {
		t.Fatalf("leader %q after moving it off %q", info.Cluster.Leader, leader)
	}
	if _, err := js.Publish(ctx, "r3.x", []byte("after the move")); err != nil {
		t.Fatalf("publish after the move: %v", err)
	}
}

func TestStandalone(t *testing.T) {
	srvs := natstest.Cluster(t, 1)
	if len(srvs) != 1 || srvs[0].JetStreamIsClustered() || !srvs[0].JetStreamEnabled() {
		t.Fatalf("%d servers, clustered %v", len(srvs), srvs[0].JetStreamIsClustered())
	}
	nc := natstest.Connect(t, natstest.URLs(srvs...)...)
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "r1", Subjects: []string{"r1.>"}}); err != nil {
		t.Fatal(err)
	}
}
