//go:build unix

package e2bfake

import (
	"context"
	"testing"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/provider/internal/fakesandbox"
)

// Sandbox returns the sandbox with the id, or nil.
func (f *Fake) Sandbox(id string) *fakesandbox.Sandbox {
	if b := f.box(id); b != nil {
		return b.sb
	}
	return nil
}

// Expire is the sandbox's timeout running out: E2B pauses a sandbox
// created with autoPause (with its memory unless PauseLosesMemory) and
// deletes the others.
func (f *Fake) Expire(t *testing.T, id string) {
	t.Helper()
	b := f.mustBox(t, id)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var err error
	if b.autoPause {
		err = f.pauseBox(ctx, b, true)
	} else {
		err = b.sb.Destroy(ctx)
	}
	if err != nil {
		t.Fatalf("e2bfake: expire %s: %v", id, err)
	}
}

// Delete deletes the sandbox behind the provider's back.
func (f *Fake) Delete(t *testing.T, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.mustBox(t, id).sb.Destroy(ctx); err != nil {
		t.Fatalf("e2bfake: delete %s: %v", id, err)
	}
}

// HoldBoot makes creates wait (as a slow boot) until release is called or
// their request ends; a create abandoned so leaves nothing behind.
func (f *Fake) HoldBoot() (release func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := make(chan struct{})
	f.hold = h
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.hold == h {
			close(h)
			f.hold = nil
		}
	}
}

// Creates returns the create requests' bodies.
func (f *Fake) Creates() []map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]map[string]any(nil), f.creates...)
}

// Execs returns the commands envd ran in the sandbox.
func (f *Fake) Execs(id string) []Exec {
	f.mu.Lock()
	defer f.mu.Unlock()
	if b := f.boxes[id]; b != nil {
		return append([]Exec(nil), b.execs...)
	}
	return nil
}

// ServerStarts counts the commands that started a sandbox-agent daemon
// (`daemon start` printing "daemon started").
func (f *Fake) ServerStarts(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if b := f.boxes[id]; b != nil {
		return b.starts
	}
	return 0
}

// Leftovers lists the sandbox's live processes (see fakesandbox).
func (f *Fake) Leftovers(id string) []int {
	if b := f.box(id); b != nil {
		return b.sb.Leftovers()
	}
	return nil
}

// EndAt is when the sandbox's timeout runs out.
func (f *Fake) EndAt(id string) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	if b := f.boxes[id]; b != nil {
		return b.endAt
	}
	return time.Time{}
}

func (f *Fake) mustBox(t *testing.T, id string) *box {
	t.Helper()
	b := f.box(id)
	if b == nil {
		t.Fatalf("e2bfake: no sandbox %q", id)
	}
	return b
}
