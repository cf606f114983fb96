package sqlite_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/sandbox-agent-go/sandbox-agent/multiplayer/backend"
	"github.com/sandbox-agent-go/sandbox-agent/multiplayer/backend/backendtest"
	"github.com/sandbox-agent-go/sandbox-agent/multiplayer/backend/sqlite"
)

func TestMain(m *testing.M) {
	if helperMain() {
		return
	}
	goleak.VerifyTestMain(m)
}

func open(t testing.TB, dir string) *sqlite.Backend {
	t.Helper()
	b, err := sqlite.Open(t.Context(), sqlite.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Error(err)
		}
	})
	return b
}

func TestConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backendtest.Deployment {
		return backendtest.Deployment{Node: open(t, t.TempDir())}
	})
}

var _ backend.Backend = (*sqlite.Backend)(nil)
