package e2b

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	sandboxagent "github.com/sandbox-agent-go/sandbox-agent"
	"github.com/sandbox-agent-go/sandbox-agent/provider/internal/remote"
)

// cleanupTimeout bounds the delete of a sandbox whose bootstrap failed.
const cleanupTimeout = 30 * time.Second

// Provider is the E2B provider. Safe for concurrent use.
type Provider struct {
	o      Options
	api    *remote.API
	tokens remote.Tokens
	// startScripts are the server's start commands (with and without a
	// token file), which envd must run without a deadline.
	startScripts map[string]bool

	mu    sync.Mutex
	boxes map[string]sandboxInfo // what create/connect returned, by id
}

var (
	_ sandboxagent.SandboxProvider    = (*Provider)(nil)
	_ sandboxagent.SandboxReconnecter = (*Provider)(nil)
	_ sandboxagent.SandboxPauser      = (*Provider)(nil)
	_ sandboxagent.SandboxKiller      = (*Provider)(nil)
	_ sandboxagent.URLProvider        = (*Provider)(nil)
	_ sandboxagent.HTTPClientProvider = (*Provider)(nil)
	_ sandboxagent.ServerEnsurer      = (*Provider)(nil)
	_ sandboxagent.DefaultCwdProvider = (*Provider)(nil)
	_ sandboxagent.TokenProvider      = (*Provider)(nil)
)

// New returns an E2B provider. Without an API key (Options.APIKey or
// $E2B_API_KEY) it returns a *sandboxagent.MissingCredentialsError.
func New(o Options) (*Provider, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	key := o.APIKey
	p := &Provider{o: o, boxes: map[string]sandboxInfo{}, startScripts: map[string]bool{}}
	p.api = &remote.API{Provider: "e2b", BaseURL: o.APIURL, Client: o.HTTPClient, DecodeError: apiError,
		Authorize: func(r *http.Request) { r.Header.Set("X-API-Key", key) }}
	for _, tok := range []string{"", "x"} {
		p.startScripts[remote.StartScript(p.config(tok))] = true
	}
	return p, nil
}

// Name is "e2b".
func (p *Provider) Name() string { return "e2b" }

func (p *Provider) config(token string) remote.Config {
	return remote.Config{Port: p.o.Port, Token: token, Install: p.o.Install, StartTimeout: p.o.StartTimeout}
}

// Create creates a sandbox, installs sandbox-agent and starts its server.
// A sandbox whose bootstrap fails is deleted.
func (p *Provider) Create(ctx context.Context) (string, error) {
	token := ""
	if !p.o.NoToken {
		var err error
		if token, err = remote.NewToken(); err != nil {
			return "", err
		}
	}
	info, err := p.createSandbox(ctx)
	if err != nil {
		return "", err
	}
	id := info.SandboxID
	p.remember(info)
	log := p.o.Logger.With("provider", "e2b", "sandbox", id)
	log.DebugContext(ctx, "sandbox created", "template", p.o.Template, "timeout", p.o.Timeout)
	in, err := remote.Bootstrap(ctx, p.envd(info), p.config(token))
	if err != nil {
		// The caller's context may be what ended the bootstrap; the delete
		// gets its own bounded one so the sandbox does not live on.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		derr := p.Destroy(dctx, id)
		cancel()
		if derr != nil {
			err = errors.Join(err, fmt.Errorf("delete the failed sandbox %s: %w", id, derr))
		}
		return "", fmt.Errorf("e2b: sandbox %s: %w", id, err)
	}
	log.DebugContext(ctx, "sandbox-agent started", "install", in.How)
	p.tokens.Put(id, token)
	return id, nil
}

// Destroy deletes the sandbox (upstream's destroy only paused it). One
// already gone is not an error.
func (p *Provider) Destroy(ctx context.Context, id string) error {
	if err := p.deleteSandbox(ctx, id); err != nil {
		return err
	}
	p.forget(id)
	return nil
}

// Kill deletes the sandbox, as Destroy: E2B's kill is the delete.
func (p *Provider) Kill(ctx context.Context, id string) error { return p.Destroy(ctx, id) }

// Pause pauses the sandbox with its memory: Reconnect or EnsureServer
// resumes it with its processes, the server included. Pausing a paused
// sandbox is not an error.
func (p *Provider) Pause(ctx context.Context, id string) error { return p.pauseSandbox(ctx, id) }

// Reconnect connects to the sandbox, resuming it if paused and extending
// its lifetime by Options.Timeout. A deleted (or expired and killed)
// sandbox is a *sandboxagent.SandboxDestroyedError.
func (p *Provider) Reconnect(ctx context.Context, id string) error {
	_, err := p.reconnect(ctx, id)
	return err
}

func (p *Provider) reconnect(ctx context.Context, id string) (sandboxInfo, error) {
	info, err := p.connect(ctx, id)
	if err != nil {
		return info, err
	}
	p.remember(info)
	return info, nil
}

// EnsureServer resumes the sandbox if it is paused (connect), then runs
// `sandbox-agent daemon start`, which returns at once when the server is
// running and otherwise starts it and waits for its health. Idempotent.
func (p *Provider) EnsureServer(ctx context.Context, id string) error {
	info, err := p.reconnect(ctx, id)
	if err != nil {
		return err
	}
	sb := p.envd(info)
	token, err := p.tokens.Get(ctx, id, func(context.Context) (remote.Sandbox, error) { return sb, nil })
	if err != nil {
		return fmt.Errorf("e2b: sandbox %s: %w", id, err)
	}
	if err := remote.StartServer(ctx, sb, p.config(token)); err != nil {
		return fmt.Errorf("e2b: sandbox %s: %w", id, err)
	}
	return nil
}

// URL is the server's URL: Options.SandboxURL(id, Port), by default
// https://<port>-<id>.<domain>.
func (p *Provider) URL(_ context.Context, id string) (string, error) {
	info, _ := p.known(id)
	return p.sandboxURL(info, id, p.o.Port), nil
}

// HTTPClient returns Options.HTTPClient; for a Private sandbox, a client
// that adds its traffic access token to requests to the sandbox's host
// (connecting to learn it if this provider has not seen the sandbox).
func (p *Provider) HTTPClient(ctx context.Context, id string) (*http.Client, error) {
	if !p.o.Private {
		return p.o.HTTPClient, nil
	}
	info, err := p.info(ctx, id)
	if err != nil {
		return nil, err
	}
	if info.TrafficAccessToken == "" {
		return p.o.HTTPClient, nil
	}
	return p.trafficClient(info, id), nil
}

// DefaultCwd is Options.Cwd (default /home/user, E2B's user's home).
func (p *Provider) DefaultCwd(context.Context, string) (string, error) { return p.o.Cwd, nil }

// Token is the server's token: remembered for a sandbox this provider
// created, otherwise read back from the sandbox's token file ("" for one
// started with NoToken).
func (p *Provider) Token(ctx context.Context, id string) (string, error) {
	return p.tokens.Get(ctx, id, func(ctx context.Context) (remote.Sandbox, error) {
		info, err := p.info(ctx, id)
		if err != nil {
			return nil, err
		}
		return p.envd(info), nil
	})
}

// envd returns the sandbox's envd client.
func (p *Provider) envd(info sandboxInfo) *envd {
	access, traffic := info.EnvdAccessToken, info.TrafficAccessToken
	api := &remote.API{Provider: "e2b", BaseURL: p.sandboxURL(info, info.SandboxID, EnvdPort), Client: p.o.HTTPClient,
		DecodeError: apiError, Authorize: func(r *http.Request) {
			if access != "" {
				r.Header.Set("X-Access-Token", access)
			}
			if traffic != "" && p.o.Private {
				r.Header.Set(trafficHeader, traffic)
			}
		}}
	return &envd{api: api, commandTimeout: p.o.CommandTimeout, unbounded: func(s string) bool { return p.startScripts[s] },
		user: legacyUser(info.EnvdVersion)}
}

func (p *Provider) sandboxURL(info sandboxInfo, id string, port int) string {
	if p.o.SandboxURL != nil {
		return p.o.SandboxURL(id, port)
	}
	domain := info.Domain
	if domain == "" {
		domain = p.o.Domain
	}
	return "https://" + strconv.Itoa(port) + "-" + url.PathEscape(id) + "." + domain
}

// info returns what create or connect said about the sandbox, connecting
// if this provider has not seen it (a new process).
func (p *Provider) info(ctx context.Context, id string) (sandboxInfo, error) {
	if info, ok := p.known(id); ok {
		return info, nil
	}
	return p.reconnect(ctx, id)
}

func (p *Provider) known(id string) (sandboxInfo, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	info, ok := p.boxes[id]
	if !ok {
		info.SandboxID = id
	}
	return info, ok
}

func (p *Provider) remember(info sandboxInfo) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.boxes[info.SandboxID] = info
}

func (p *Provider) forget(id string) {
	p.mu.Lock()
	delete(p.boxes, id)
	p.mu.Unlock()
	p.tokens.Forget(id)
}
