package remote

import (
	"context"
	"errors"
	"sync"
)

// Tokens remembers the server token of each sandbox a provider created or
// reconnected to, and reads it back from the sandbox for one it has not
// seen (a new process reconnecting by id). Safe for concurrent use.
type Tokens struct {
	mu sync.Mutex
	m  map[string]string
}

// Put records id's token.
func (t *Tokens) Put(id, token string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[string]string{}
	}
	t.m[id] = token
}

// Forget drops id's token (the sandbox was destroyed).
func (t *Tokens) Forget(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.m, id)
}

// Get returns id's token, reading it from the sandbox that open returns
// when it is not known yet. A sandbox without a token file (started with
// NoToken) has the token "".
func (t *Tokens) Get(ctx context.Context, id string, open func(context.Context) (Sandbox, error)) (string, error) {
	t.mu.Lock()
	tok, ok := t.m[id]
	t.mu.Unlock()
	if ok {
		return tok, nil
	}
	sb, err := open(ctx)
	if err != nil {
		return "", err
	}
	tok, err = ReadToken(ctx, sb)
	if errors.Is(err, ErrNoToken) {
		tok, err = "", nil
	}
	if err != nil {
		return "", err
	}
	t.Put(id, tok)
	return tok, nil
}
