package sandboxagent

import (
	"context"
	"fmt"
	"sync"
)

// ctxMutex is a mutex whose lock gives up when the caller's context ends.
// It replaces sync.Mutex wherever the holder waits — for the health gate, a
// restore, the network or the store: with a plain mutex every other caller
// would wait as long as the holder, whatever its own deadline (issue 9: a
// prompt with a 60 s context returned after the gate's 90 s). The zero
// value is unlocked.
type ctxMutex struct {
	once sync.Once
	ch   chan struct{} // one slot: full while locked
}

func (m *ctxMutex) sem() chan struct{} {
	m.once.Do(func() { m.ch = make(chan struct{}, 1) })
	return m.ch
}

// lock takes m, or returns ctx's error wrapped with what was being waited
// for. A context that has already ended fails even if m is free, so the
// outcome does not depend on select's random choice.
func (m *ctxMutex) lock(ctx context.Context, what string) error {
	if err := ctx.Err(); err != nil {
		return ctxWaitErr(what, err)
	}
	select {
	case m.sem() <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctxWaitErr(what, ctx.Err())
	}
}

// unlock releases m; it must be locked.
func (m *ctxMutex) unlock() {
	select {
	case <-m.sem():
	default:
		panic("sandboxagent: unlock of unlocked ctxMutex")
	}
}

// ctxWaitErr is the error of a wait that ended with its context: it wraps
// err (so errors.Is(err, context.DeadlineExceeded) holds) and says what the
// call was waiting for.
func ctxWaitErr(what string, err error) error {
	return fmt.Errorf("sandboxagent: gave up waiting for %s: %w", what, err)
}
