package natsbackend

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/multiplayer/backend"
	"github.com/sandbox-agent-go/sandbox-agent/multiplayer/backend/backendtest"
)

// TestConformance runs the driver suite on one embedded server; every
// subtest gets its own Prefix (so its own buckets and stream) and two
// nodes.
func TestConformance(t *testing.T) {
	s := startServer(t)
	backendtest.Run(t, func(t *testing.T) backendtest.Deployment {
		prefix := fmt.Sprintf("c%d", prefixes.Add(1))
		opts := Options{Prefix: prefix, LeaseTTL: 5 * time.Second} // Expire needs no waiting; a long TTL keeps a loaded machine from fencing
		return backendtest.Deployment{
			Node:   openNode(t, s, opts),
			Second: func(t *testing.T) backend.Backend { return openNode(t, s, opts) },
			Expire: func(t *testing.T, o backend.Owner) {
				b := o.(*owner).b
				b.pause(true)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				if err := b.nodes.Delete(ctx, b.nodeKey); err != nil {
					t.Fatal(err)
				}
			},
		}
	})
}
