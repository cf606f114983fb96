package vercel

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	sandboxagent "github.com/sandbox-agent-go/sandbox-agent"
	"github.com/sandbox-agent-go/sandbox-agent/provider/internal/remote"
)

// NamePrefix starts the name of every sandbox the provider creates.
const NamePrefix = "sandbox-agent-"

// Provider is the Vercel Sandbox provider. Safe for concurrent use.
type Provider struct {
	o      Options
	c      *client
	tokens remote.Tokens

	mu    sync.Mutex
	state map[string]current // by sandbox name
}

// current is what the provider last learnt of a sandbox's session.
type current struct {
	sessionID string
	cwd       string
	routes    []routeJSON
}

var (
	_ sandboxagent.SandboxProvider    = (*Provider)(nil)
	_ sandboxagent.SandboxReconnecter = (*Provider)(nil)
	_ sandboxagent.SandboxPauser      = (*Provider)(nil)
	_ sandboxagent.URLProvider        = (*Provider)(nil)
	_ sandboxagent.ServerEnsurer      = (*Provider)(nil)
	_ sandboxagent.DefaultCwdProvider = (*Provider)(nil)
	_ sandboxagent.TokenProvider      = (*Provider)(nil)
)

// New returns a Vercel provider. Without a token it returns a
// *sandboxagent.MissingCredentialsError naming the environment variables.
func New(o Options) (*Provider, error) {
	if err := o.credentials(getenv); err != nil {
		return nil, err
	}
	o.defaults()
	return &Provider{o: o, c: newClient(o), state: map[string]current{}}, nil
}

// Name is "vercel".
func (p *Provider) Name() string { return "vercel" }

func (p *Provider) destroyed(name string, err error) error {
	return &sandboxagent.SandboxDestroyedError{SandboxID: name, Provider: p.Name(), Cause: err}
}

func (p *Provider) remember(name string, s sandboxAndSession) {
	cwd := s.Session.Cwd
	if cwd == "" {
		cwd = s.Sandbox.Cwd
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.state[name] = current{sessionID: s.Session.ID, cwd: cwd, routes: s.Routes}
}

func (p *Provider) cached(name string) (current, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.state[name]
	return c, ok
}

// Create creates a persistent sandbox with the agent port declared and
// the session timeout set, installs sandbox-agent and starts it. A sandbox
// whose bootstrap fails is deleted.
func (p *Provider) Create(ctx context.Context) (string, error) {
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", fmt.Errorf("vercel: sandbox name: %w", err)
	}
	name := NamePrefix + hex.EncodeToString(rnd[:])
	token := ""
	if !p.o.NoToken {
		var err error
		if token, err = remote.NewToken(); err != nil {
			return "", err
		}
	}
	b := createBody{Name: name, Ports: []int{p.o.Port}, Timeout: p.o.Timeout.Milliseconds(),
		// Persistent keeps the filesystem (the installed binary, the
		// token file) across sessions, so EnsureServer only restarts the
		// server after a timeout. It is the vendor's default; we rely on
		// it, so we say it.
		Persistent: true, Runtime: p.o.Runtime, Image: p.o.Image, Env: p.o.Env}
	if p.o.VCPUs > 0 {
		b.Resources = &resources{VCPUs: p.o.VCPUs}
	}
	s, err := p.c.create(ctx, b)
	if err != nil {
		return "", err
	}
	if s.Sandbox.Name != "" {
		name = s.Sandbox.Name
	}
	p.remember(name, s)
	_, err = remote.Bootstrap(ctx, p.sandbox(name), remote.Config{Port: p.o.Port, Token: token, Install: p.o.Install, StartTimeout: p.o.StartTimeout})
	if err != nil {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if derr := p.Destroy(dctx, name); derr != nil {
			p.o.Logger.Warn("vercel: delete the sandbox whose bootstrap failed", "sandbox", name, "err", derr)
		}
		return "", fmt.Errorf("vercel: bootstrap sandbox %s: %w", name, err)
	}
	p.tokens.Put(name, token)
	return name, nil
}

// Destroy deletes the sandbox (DELETE /v2/sandboxes/{name}); one already
// gone is not an error. Upstream's stop() is not a destroy: a persistent
// sandbox survives it.
func (p *Provider) Destroy(ctx context.Context, name string) error {
	if err := p.c.remove(ctx, name); err != nil {
		return err
	}
	p.tokens.Forget(name)
	p.mu.Lock()
	delete(p.state, name)
	p.mu.Unlock()
	return nil
}

// look reads the sandbox without resuming it.
func (p *Provider) look(ctx context.Context, name string) (sandboxAndSession, error) {
	return p.fetch(ctx, name, false)
}

// fetch reads the sandbox (resuming it if asked) and remembers its
// session; a 404 is a *sandboxagent.SandboxDestroyedError.
func (p *Provider) fetch(ctx context.Context, name string, resume bool) (sandboxAndSession, error) {
	s, err := p.c.get(ctx, name, resume)
	if isNotFound(err) {
		return s, p.destroyed(name, err)
	}
	if err != nil {
		return s, err
	}
	p.remember(name, s)
	return s, nil
}

// Pause stops the sandbox's session (POST …/sessions/{id}/stop): the
// persistent filesystem is kept and its processes end; Reconnect or
// EnsureServer resumes it in a new session and starts the server again.
func (p *Provider) Pause(ctx context.Context, name string) error {
	s, err := p.look(ctx, name)
	if err != nil {
		return err
	}
	if s.Session.Status != statusRunning {
		return nil
	}
	err = p.c.stopSession(ctx, s.Session.ID)
	if isStopped(err) || isStopping(err) {
		return nil
	}
	return err
}

// Reconnect finds the sandbox by name and resumes its session if it
// stopped. A deleted sandbox is a *sandboxagent.SandboxDestroyedError.
func (p *Provider) Reconnect(ctx context.Context, name string) error {
	_, err := p.resume(ctx, name)
	return err
}

// EnsureServer resumes the sandbox (a new session when it had stopped, its
// processes gone), extends a running session's timeout by
// Options.ExtendBy, and runs `sandbox-agent daemon start`, which returns at
// once when the server is already healthy. Idempotent.
func (p *Provider) EnsureServer(ctx context.Context, name string) error {
	s, err := p.resume(ctx, name)
	if err != nil {
		return err
	}
	if !s.Resumed && p.o.ExtendBy > 0 {
		// Best effort: the plan's maximum may refuse it, and the server
		// start below matters more.
		if err := p.c.extendTimeout(ctx, s.Session.ID, p.o.ExtendBy); err != nil {
			if ctx.Err() != nil {
				return err
			}
			p.o.Logger.Warn("vercel: extend the session timeout", "sandbox", name, "session", s.Session.ID, "err", err)
		}
	}
	token, err := p.Token(ctx, name)
	if err != nil {
		return err
	}
	return remote.StartServer(ctx, p.sandbox(name), remote.Config{Port: p.o.Port, Token: token, Install: p.o.Install, StartTimeout: p.o.StartTimeout})
}

// resume is GET /v2/sandboxes/{name}?resume=true, waiting (bounded by
// Options.StoppingWait) for a session that is stopping or snapshotting to
// finish first, as the SDK does.
func (p *Provider) resume(ctx context.Context, name string) (sandboxAndSession, error) {
	s, err := p.fetch(ctx, name, true)
	if isStopping(err) || err == nil && (s.Session.Status == statusStopping || s.Session.Status == statusSnapshotting) {
		if err := p.waitStopped(ctx, name); err != nil {
			return s, err
		}
		s, err = p.fetch(ctx, name, true)
	}
	return s, err
}

// pollInterval is how often waitStopped looks (the SDK's 500 ms).
var pollInterval = 500 * time.Millisecond

func (p *Provider) waitStopped(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, p.o.StoppingWait)
	defer cancel()
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("vercel: sandbox %s: waiting for its session to stop: %w", name, ctx.Err())
		case <-t.C:
		}
		s, err := p.c.get(ctx, name, false)
		if isNotFound(err) {
			return p.destroyed(name, err)
		}
		if err != nil && !isStopping(err) {
			return err
		}
		if err == nil && s.Session.Status != statusStopping && s.Session.Status != statusSnapshotting {
			return nil
		}
	}
}

// URL is SandboxURL(name, Port) if set, else https://<subdomain>.vercel.run
// of the port's route. It reads the routes again (cheap), as they may
// change when a sandbox resumes.
func (p *Provider) URL(ctx context.Context, name string) (string, error) {
	s, err := p.look(ctx, name)
	if err != nil {
		return "", err
	}
	for _, r := range s.Routes {
		if r.Port != p.o.Port {
			continue
		}
		if p.o.SandboxURL != nil {
			return p.o.SandboxURL(name, p.o.Port), nil
		}
		return "https://" + r.Subdomain + ".vercel.run", nil
	}
	return "", fmt.Errorf("vercel: sandbox %s has no route for port %d (ports are declared at create)", name, p.o.Port)
}

// DefaultCwd is the session's working directory as the API reports it
// (/vercel/sandbox today).
func (p *Provider) DefaultCwd(ctx context.Context, name string) (string, error) {
	if c, ok := p.cached(name); ok && c.cwd != "" {
		return c.cwd, nil
	}
	s, err := p.look(ctx, name)
	if err != nil {
		return "", err
	}
	if s.Session.Cwd != "" {
		return s.Session.Cwd, nil
	}
	return s.Sandbox.Cwd, nil
}

// Token is the server's token: remembered from Create, or read back from
// the sandbox's token file by a provider that did not create it. "" with
// NoToken.
func (p *Provider) Token(ctx context.Context, name string) (string, error) {
	return p.tokens.Get(ctx, name, func(context.Context) (remote.Sandbox, error) { return p.sandbox(name), nil })
}

// sandbox adapts the sandbox's current session to remote.Sandbox.
func (p *Provider) sandbox(name string) remote.Sandbox { return &box{p: p, name: name} }

type box struct {
	p    *Provider
	name string
}

func (b *box) Exec(ctx context.Context, script string) (remote.ExecResult, error) {
	var res remote.ExecResult
	err := b.p.withSession(ctx, b.name, func(sid string) error {
		var err error
		res, err = b.p.c.run(ctx, sid, script)
		return err
	})
	return res, err
}

func (b *box) WriteFile(ctx context.Context, path string, data []byte) error {
	return b.p.withSession(ctx, b.name, func(sid string) error { return b.p.c.writeFile(ctx, sid, path, data) })
}

// withSession runs fn with the sandbox's current session; when that
// session has stopped (410 sandbox_stopped) or is stopping (422), it
// resumes the sandbox and runs fn once more, as the SDK's withResume does.
func (p *Provider) withSession(ctx context.Context, name string, fn func(sid string) error) error {
	c, ok := p.cached(name)
	if !ok {
		s, err := p.resume(ctx, name)
		if err != nil {
			return err
		}
		c.sessionID = s.Session.ID
	}
	err := fn(c.sessionID)
	if !isStopped(err) && !isStopping(err) && !(isNotFound(err) && ok) {
		return err
	}
	// A 404 on a cached session: it may be an old one; the sandbox decides.
	s, rerr := p.resume(ctx, name)
	if rerr != nil {
		return rerr
	}
	return fn(s.Session.ID)
}
