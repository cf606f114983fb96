package backendtest_test

import (
	"errors"
	"testing"

	"go.uber.org/goleak"

	"github.com/sandbox-agent-go/sandbox-agent/multiplayer/backend"
	"github.com/sandbox-agent-go/sandbox-agent/multiplayer/backend/backendtest"
	"github.com/sandbox-agent-go/sandbox-agent/multiplayer/backend/memory"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func closeNode(t *testing.T, n backend.Backend) {
	t.Cleanup(func() {
		if err := n.Close(); err != nil && !errors.Is(err, backend.ErrClosed) {
			t.Error(err)
		}
	})
}

// TestMemory runs the suite on the reference driver with two nodes per
// World and lease expiry, the paths backend/sqlite cannot take.
func TestMemory(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backendtest.Deployment {
		w := memory.NewWorld()
		n := w.Node("")
		closeNode(t, n)
		return backendtest.Deployment{
			Node: n,
			Second: func(t *testing.T) backend.Backend {
				n := w.Node("")
				closeNode(t, n)
				return n
			},
			Expire: func(t *testing.T, o backend.Owner) { w.Expire(o.Actor().ID) },
		}
	})
}

// TestMemoryOneNode runs it with one node, as backend/sqlite does.
func TestMemoryOneNode(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backendtest.Deployment {
		n := memory.New()
		closeNode(t, n)
		return backendtest.Deployment{Node: n}
	})
}
