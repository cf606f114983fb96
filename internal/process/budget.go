package process

import (
	"container/list"
	"sync"
	"sync/atomic"
)

// exitedLogs enforces Options.ExitedLogBudget: the log rings of exited
// processes are kept, oldest exit first, while their bytes sum to at most
// the budget. Running processes are bounded by MaxLogBytesPerProcess alone
// (their output is live); once a process exits its ring is retired here,
// and retiring one that brings the total over the budget releases the
// oldest retired rings until it fits. Without this, processes that are
// never deleted keep up to MaxLogBytesPerProcess each for ever (100 exited
// processes at 10 MiB: 1 GiB).
//
// A background child still writing to an exited leader's pipes grows its
// ring after retirement; the total follows (rings add their deltas) and the
// next retirement evicts accordingly, so the overshoot is at most one
// per-process limit per such lingering writer.
type exitedLogs struct {
	budget uint64
	total  atomic.Int64 // bytes of the retired, unreleased rings

	mu    sync.Mutex
	order list.List // of *proc, oldest retirement first
}

func (e *exitedLogs) init(budget uint64) {
	if budget == 0 {
		budget = DefaultExitedLogBudget
	}
	e.budget = budget
}

// retire counts p's ring against the budget, then releases the oldest
// retired rings while the total is over it.
func (e *exitedLogs) retire(p *proc) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if p.forgotten || p.budget != nil {
		return
	}
	p.logs.account(&e.total)
	p.budget = e.order.PushBack(p)
	for e.total.Load() > int64(e.budget) {
		front := e.order.Front()
		if front == nil {
			break
		}
		old := e.order.Remove(front).(*proc)
		old.budget = nil
		old.logs.release()
	}
}

// forget removes a deleted process from the budget (its ring goes with it).
func (e *exitedLogs) forget(p *proc) {
	e.mu.Lock()
	defer e.mu.Unlock()
	p.forgotten = true
	if p.budget != nil {
		e.order.Remove(p.budget)
		p.budget = nil
		p.logs.unaccount()
	}
}

// bytes is the log memory currently kept by exited processes.
func (e *exitedLogs) bytes() int64 { return e.total.Load() }
