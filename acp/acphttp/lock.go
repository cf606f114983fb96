package acphttp

import (
	"context"
	"fmt"

	"github.com/sandbox-agent-go/sandbox-agent/internal/ctxsync"
)

// waitLock is a ctxsync.Mutex whose failed lock says what was waited for.
// The Conn's locks are held across I/O (the bootstrap POST) and across the
// Observe callback (which may write to a slow store), so a plain mutex
// would make a caller with a short deadline wait as long as the holder.
type waitLock struct{ m ctxsync.Mutex }

func (m *waitLock) lock(ctx context.Context, what string) error {
	if err := m.m.Lock(ctx); err != nil {
		return fmt.Errorf("acphttp: gave up waiting for %s: %w", what, err)
	}
	return nil
}

func (m *waitLock) unlock() { m.m.Unlock() }
