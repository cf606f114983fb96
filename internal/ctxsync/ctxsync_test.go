package ctxsync

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestMutex(t *testing.T) {
	var m Mutex
	if err := m.Lock(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := m.Lock(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("held: %v", err)
	}
	m.Unlock()
	if err := m.Lock(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("free but ended context: %v", err)
	}
	if err := m.Lock(t.Context()); err != nil {
		t.Fatal(err)
	}
	m.Unlock()
}

func TestWait(t *testing.T) {
	done := make(chan struct{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := Wait(ctx, done); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	close(done)
	if err := Wait(ctx, done); err != nil {
		t.Fatalf("closed done wins: %v", err)
	}
}

func TestReader(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	r := Reader(ctx, strings.NewReader("abcd"))
	buf := make([]byte, 2)
	if n, err := r.Read(buf); n != 2 || err != nil {
		t.Fatalf("Read = %d, %v before cancel", n, err)
	}
	cancel()
	if n, err := r.Read(buf); n != 0 || !errors.Is(err, context.Canceled) {
		t.Fatalf("Read = %d, %v after cancel, want 0, context.Canceled", n, err)
	}
}
