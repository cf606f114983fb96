package sandboxagent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// SandboxProvider provisions sandboxes that run sandbox-agent. Name must
// equal the prefix of the sandbox ids it hands out ("local/127.0.0.1:2468").
// Optional capabilities are discovered by interface assertion:
// SandboxReconnecter, SandboxPauser, SandboxKiller, URLProvider,
// HTTPClientProvider, ServerEnsurer, DefaultCwdProvider, TokenProvider.
type SandboxProvider interface {
	Name() string
	// Create provisions a sandbox with a running server and returns its
	// raw id.
	Create(ctx context.Context) (string, error)
	// Destroy tears the sandbox down.
	Destroy(ctx context.Context, id string) error
}

// SandboxReconnecter is called before reusing an existing sandbox id; it
// may return *SandboxDestroyedError.
type SandboxReconnecter interface {
	Reconnect(ctx context.Context, id string) error
}

// SandboxPauser pauses a sandbox (PauseSandbox falls back to Destroy).
type SandboxPauser interface {
	Pause(ctx context.Context, id string) error
}

// SandboxKiller kills a sandbox (KillSandbox falls back to Destroy).
type SandboxKiller interface {
	Kill(ctx context.Context, id string) error
}

// URLProvider returns the base URL of the sandbox's server.
type URLProvider interface {
	URL(ctx context.Context, id string) (string, error)
}

// HTTPClientProvider returns an *http.Client that reaches the server (for
// providers without a URL; the base URL is then "http://sandbox-agent"
// unless the provider also implements URLProvider).
type HTTPClientProvider interface {
	HTTPClient(ctx context.Context, id string) (*http.Client, error)
}

// ServerEnsurer (re)starts the server in the sandbox. The health gate calls
// it after every 3 consecutive failed checks.
type ServerEnsurer interface {
	EnsureServer(ctx context.Context, id string) error
}

// DefaultCwdProvider gives the working directory of new sessions.
type DefaultCwdProvider interface {
	DefaultCwd(ctx context.Context, id string) (string, error)
}

// TokenProvider gives the bearer token of the sandbox's server.
type TokenProvider interface {
	Token(ctx context.Context, id string) (string, error)
}

// DefaultProviderBaseURL is used with an HTTPClientProvider and no URL.
const DefaultProviderBaseURL = "http://sandbox-agent"

// StartOptions configure Start: the Options of the client it connects
// (BaseURL must stay empty: the provider supplies the URL; a Token set here
// overrides the provider's), plus the sandbox to reuse.
type StartOptions struct {
	Options
	// SandboxID "<provider>/<rawId>" reconnects to an existing sandbox;
	// empty creates one.
	SandboxID string
}

// ParseSandboxID splits "<provider>/<rawId>" at the first slash.
func ParseSandboxID(id string) (provider, rawID string, err error) {
	i := strings.IndexByte(id, '/')
	if i <= 0 || i == len(id)-1 {
		return "", "", fmt.Errorf(`sandboxagent: sandbox IDs must be prefixed as "{provider}/{id}". Received '%s'`, id)
	}
	return id[:i], id[i+1:], nil
}

// Start creates a sandbox with provider (or reconnects to
// opts.SandboxID: Reconnect, then EnsureServer) and connects to it, waiting
// for health. A sandbox it created is destroyed if anything fails.
func Start(ctx context.Context, provider SandboxProvider, opts StartOptions) (*Client, error) {
	if opts.BaseURL != "" {
		return nil, errors.New("sandboxagent: StartOptions.BaseURL must be empty: the provider supplies the server's URL (use Connect for a known URL)")
	}
	_, hasURL := provider.(URLProvider)
	_, hasHC := provider.(HTTPClientProvider)
	if !hasURL && !hasHC {
		return nil, fmt.Errorf("sandboxagent: sandbox provider '%s' must implement URL() or HTTPClient()", provider.Name())
	}
	rawID := ""
	if opts.SandboxID != "" {
		prefix, raw, err := ParseSandboxID(opts.SandboxID)
		if err != nil {
			return nil, err
		}
		if prefix != provider.Name() {
			return nil, fmt.Errorf("sandboxagent: Start received sandboxId '%s' for provider '%s', but the configured provider is '%s'",
				opts.SandboxID, prefix, provider.Name())
		}
		rawID = raw
		if r, ok := provider.(SandboxReconnecter); ok {
			if err := r.Reconnect(ctx, rawID); err != nil {
				return nil, err
			}
		}
		if e, ok := provider.(ServerEnsurer); ok {
			if err := e.EnsureServer(ctx, rawID); err != nil {
				return nil, err
			}
		}
	}
	created := false
	if rawID == "" {
		id, err := provider.Create(ctx)
		if err != nil {
			return nil, fmt.Errorf("sandboxagent: create sandbox with provider '%s': %w", provider.Name(), err)
		}
		rawID, created = id, true
	}
	c, err := connectProvider(ctx, provider, rawID, opts)
	if err != nil && created {
		if derr := provider.Destroy(context.WithoutCancel(ctx), rawID); derr != nil {
			err = errors.Join(err, fmt.Errorf("sandboxagent: destroy failed sandbox: %w", derr))
		}
	}
	return c, err
}

func connectProvider(ctx context.Context, p SandboxProvider, rawID string, opts StartOptions) (*Client, error) {
	o := opts.Options
	if hp, ok := p.(HTTPClientProvider); ok && o.HTTPClient == nil {
		hc, err := hp.HTTPClient(ctx, rawID)
		if err != nil {
			return nil, err
		}
		o.HTTPClient = hc
	}
	if up, ok := p.(URLProvider); ok {
		u, err := up.URL(ctx, rawID)
		if err != nil {
			return nil, err
		}
		o.BaseURL = u
	}
	if o.BaseURL == "" {
		if o.HTTPClient == nil {
			return nil, fmt.Errorf("sandboxagent: sandbox provider '%s' did not return a base URL", p.Name())
		}
		o.BaseURL = DefaultProviderBaseURL
	}
	if o.Token == "" {
		if tp, ok := p.(TokenProvider); ok {
			t, err := tp.Token(ctx, rawID)
			if err != nil {
				return nil, err
			}
			o.Token = t
		}
	}
	return connect(ctx, o, attachment{provider: p, providerID: rawID, sandboxID: p.Name() + "/" + rawID})
}

// SandboxID returns "<provider>/<rawId>" for a client made by Start, else "".
func (c *Client) SandboxID() string { return c.sandboxID }

// Provider returns the provider of a client made by Start, else nil.
func (c *Client) Provider() SandboxProvider { return c.provider }

var errNotAttached = errors.New("sandboxagent: client is not attached to a provisioned sandbox")

// DestroySandbox destroys the sandbox and closes the client.
func (c *Client) DestroySandbox(ctx context.Context) error {
	return c.sandboxOp(ctx, func(p SandboxProvider) func(context.Context, string) error { return p.Destroy })
}

// PauseSandbox pauses the sandbox (Destroy if the provider cannot pause)
// and closes the client.
func (c *Client) PauseSandbox(ctx context.Context) error {
	return c.sandboxOp(ctx, func(p SandboxProvider) func(context.Context, string) error {
		if pp, ok := p.(SandboxPauser); ok {
			return pp.Pause
		}
		return p.Destroy
	})
}

// KillSandbox kills the sandbox (Destroy if the provider cannot kill) and
// closes the client.
func (c *Client) KillSandbox(ctx context.Context) error {
	return c.sandboxOp(ctx, func(p SandboxProvider) func(context.Context, string) error {
		if k, ok := p.(SandboxKiller); ok {
			return k.Kill
		}
		return p.Destroy
	})
}

func (c *Client) sandboxOp(ctx context.Context, pick func(SandboxProvider) func(context.Context, string) error) error {
	c.mu.Lock()
	p, id := c.provider, c.providerID
	c.mu.Unlock()
	if p == nil {
		return errNotAttached
	}
	_ = c.Close(ctx)
	err := pick(p)(ctx, id)
	c.mu.Lock()
	c.provider, c.providerID, c.sandboxID = nil, "", ""
	c.mu.Unlock()
	return err
}
