package sandboxagent

import (
	"context"
	"fmt"

	"github.com/sandbox-agent-go/sandbox-agent/internal/ctxsync"
)

// ctxMutex is a ctxsync.Mutex whose failed lock says what was waited for.
// It replaces sync.Mutex wherever the holder waits — for the health gate, a
// restore, the network or the store. The zero value is unlocked.
type ctxMutex struct{ m ctxsync.Mutex }

// lock takes m, or returns ctx's error wrapped with what was being waited for.
func (m *ctxMutex) lock(ctx context.Context, what string) error {
	if err := m.m.Lock(ctx); err != nil {
		return ctxWaitErr(what, err)
	}
	return nil
}

// unlock releases m; it must be locked.
func (m *ctxMutex) unlock() { m.m.Unlock() }

// ctxWaitErr is the error of a wait that ended with its context: it wraps
// err (so errors.Is(err, context.DeadlineExceeded) holds) and says what the
// call was waiting for.
func ctxWaitErr(what string, err error) error {
	return fmt.Errorf("sandboxagent: gave up waiting for %s: %w", what, err)
}
