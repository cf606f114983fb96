// Package ctxsync holds the SDK's context-aware waits: a mutex whose Lock
// gives up when the caller's context ends, a wait for a done channel, and
// a reader that fails once a context ends.
// They replace sync.Mutex and bare channel receives wherever the holder
// waits on I/O (the health gate, a restore, the bootstrap POST, a slow
// store): with a plain mutex every other caller would wait as long as the
// holder, whatever its own deadline (issue 9).
package ctxsync

import (
	"context"
	"sync"
)

// Mutex is a mutual-exclusion lock whose Lock honours a context. The zero
// value is unlocked.
type Mutex struct {
	once sync.Once
	ch   chan struct{} // one slot: full while locked
}

func (m *Mutex) sem() chan struct{} {
	m.once.Do(func() { m.ch = make(chan struct{}, 1) })
	return m.ch
}

// Lock takes m or returns ctx.Err(). A context that has already ended
// fails even if m is free, so the outcome does not depend on select's
// random choice.
func (m *Mutex) Lock(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case m.sem() <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Unlock releases m; it must be locked.
func (m *Mutex) Unlock() {
	select {
	case <-m.sem():
	default:
		panic("ctxsync: unlock of unlocked Mutex")
	}
}

// Wait returns nil once done is closed, or ctx.Err() when ctx ends first.
// A done channel already closed wins over an ended context.
func Wait(ctx context.Context, done <-chan struct{}) error {
	select {
	case <-done:
		return nil
	default:
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
