package natsbackend_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	natsbackend "github.com/sandbox-agent-go/sandbox-agent/multiplayer/backend/nats"
)

// Example runs one node against an embedded JetStream server: create an
// actor, own it, append a durable event and read it back.
func Example() {
	dir, _ := os.MkdirTemp("", "natsbackend-example")
	defer os.RemoveAll(dir)
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		panic(err)
	}
	srv.Start()
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	if !srv.ReadyForConnections(10 * time.Second) {
		panic("server not ready")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := natsbackend.Open(ctx, natsbackend.Options{URLs: []string{srv.ClientURL()}, NodeID: "node-1"})
	if err != nil {
		panic(err)
	}
	defer b.Close()

	a, created, _ := b.GetOrCreate(ctx, "workspace", []string{"ws-1"}, nil)
	o, err := b.Claim(ctx, a.ID)
	if err != nil {
		panic(err)
	}
	if _, err := o.Append(ctx, "chat.user", []byte(`[{"text":"hi"}]`)); err != nil {
		panic(err)
	}
	evs, _ := b.Events(ctx, a.ID, 0, 0)
	fmt.Println(created, o.Generation(), len(evs), evs[0].Seq, evs[0].Name, string(evs[0].Args))
	// Output: true 1 1 1 chat.user [{"text":"hi"}]
}
