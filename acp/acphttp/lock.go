package acphttp

import (
	"context"
	"fmt"
	"sync"
)

// waitLock is a mutex whose lock gives up when the caller's context ends.
// The Conn's locks are held across I/O (the bootstrap POST) and across the
// Observe callback (which may write to a slow store), so a plain mutex
// would make a caller with a short deadline wait as long as the holder
// (issue 9). The zero value is unlocked.
type waitLock struct {
	once sync.Once
	ch   chan struct{} // one slot: full while locked
}

func (m *waitLock) sem() chan struct{} {
	m.once.Do(func() { m.ch = make(chan struct{}, 1) })
	return m.ch
}

// lock takes m or returns ctx's error wrapped with what was being waited
// for; a context that has already ended fails even if m is free.
func (m *waitLock) lock(ctx context.Context, what string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("acphttp: gave up waiting for %s: %w", what, err)
	}
	select {
	case m.sem() <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("acphttp: gave up waiting for %s: %w", what, ctx.Err())
	}
}

// unlock releases m; it must be locked.
func (m *waitLock) unlock() {
	select {
	case <-m.sem():
	default:
		panic("acphttp: unlock of unlocked waitLock")
	}
}
