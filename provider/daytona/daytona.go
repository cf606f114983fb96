package daytona

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	sandboxagent "github.com/sandbox-agent-go/sandbox-agent"
	"github.com/sandbox-agent-go/sandbox-agent/provider"
	"github.com/sandbox-agent-go/sandbox-agent/provider/internal/remote"
)

// Name is the provider's name, the prefix of its sandbox ids.
const Name = "daytona"

// Defaults.
const (
	DefaultAPIURL = "https://app.daytona.io/api"
	DefaultPort   = 3000
	// DefaultAutoStopInterval is what this provider sends: 0, auto-stop
	// off, as upstream does. Daytona's own default (the field left out) is
	// VendorAutoStopInterval.
	DefaultAutoStopInterval = 0
	// VendorAutoStopInterval is Daytona's default auto-stop, in idle
	// minutes, when a create request does not set it.
	VendorAutoStopInterval = 15
	DefaultCreateTimeout   = 60 * time.Second
	DefaultDeleteTimeout   = 60 * time.Second
	DefaultCommandTimeout  = 10 * time.Minute
)

// Environment variables read by New.
const (
	EnvAPIKey = "DAYTONA_API_KEY"
	EnvAPIURL = "DAYTONA_API_URL"
	EnvTarget = "DAYTONA_TARGET"
)

// Options configure the provider. The zero value with DAYTONA_API_KEY set
// creates a sandbox from Daytona's default snapshot that never auto-stops.
type Options struct {
	// APIKey is sent as a Bearer token; default $DAYTONA_API_KEY.
	APIKey string
	// APIURL is the control plane; default $DAYTONA_API_URL, then
	// https://app.daytona.io/api.
	APIURL string
	// Target is the region; default $DAYTONA_TARGET (empty: the
	// organisation's default).
	Target string
	// HTTPClient makes every call (control plane, toolbox, agent URL);
	// default http.DefaultClient. Its Timeout should stay 0: event streams
	// last.
	HTTPClient *http.Client

	// Snapshot names the Daytona snapshot to create the sandbox from. Image
	// instead builds it from an image ("FROM <Image>"). At most one; neither
	// uses the organisation's default snapshot.
	Snapshot string
	Image    string
	// Env and Labels of the sandbox. Public makes its preview URLs open to
	// anyone (the server's token still guards it unless NoToken).
	Env    map[string]string
	Labels map[string]string
	Public bool

	// AutoStopInterval is the idle minutes after which Daytona stops the
	// sandbox (losing its processes; EnsureServer starts it and the server
	// again). Default 0: never, as upstream; negative leaves it to
	// Daytona (VendorAutoStopInterval, 15).
	AutoStopInterval int
	// CreateTimeout bounds the wait for a sandbox to reach "started" (on
	// create and on start); default 60 s, as Daytona's SDK.
	CreateTimeout time.Duration
	// DeleteTimeout bounds Destroy's retries while Daytona answers 409
	// "state change in progress"; default 60 s.
	DeleteTimeout time.Duration
	// CommandTimeout bounds each toolbox command (install, server start);
	// default 10 min. The server itself is not bound by it.
	CommandTimeout time.Duration

	// SignedURLTTL > 0 reaches the agent through signed preview URLs (the
	// token is in the host name, no header), fetched with this lifetime
	// (Daytona allows 1 s … 24 h) and refreshed before they expire. Default
	// 0: the standard preview URL with the X-Daytona-Preview-Token header.
	SignedURLTTL time.Duration

	// Port the server listens on in the sandbox; default 3000.
	Port int
	// NoToken starts the server without a token (upstream's behaviour):
	// anyone with the preview URL (and preview token) can drive it.
	NoToken bool
	// Install: how sandbox-agent and agents get into a new sandbox.
	Install provider.Install
	// StartTimeout bounds the server's start; default 30 s.
	StartTimeout time.Duration
	// Cwd is the working directory of new sessions; default the sandbox
	// user's $HOME.
	Cwd string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Provider creates Daytona sandboxes running sandbox-agent. Safe for
// concurrent use.
type Provider struct {
	o        Options
	cp       controlPlane
	api      *remote.API
	tokens   remote.Tokens
	previews previews

	mu    sync.Mutex
	homes map[string]string
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

// New returns a provider; it fails with *sandboxagent.MissingCredentialsError
// without an API key.
func New(o Options) (*Provider, error) {
	if o.APIKey == "" {
		o.APIKey = os.Getenv(EnvAPIKey)
	}
	if o.APIKey == "" {
		return nil, &sandboxagent.MissingCredentialsError{Provider: Name, Option: "APIKey", EnvVars: []string{EnvAPIKey}}
	}
	if o.APIURL == "" {
		o.APIURL = os.Getenv(EnvAPIURL)
	}
	if o.APIURL == "" {
		o.APIURL = DefaultAPIURL
	}
	if o.Target == "" {
		o.Target = os.Getenv(EnvTarget)
	}
	if o.Snapshot != "" && o.Image != "" {
		return nil, errors.New("daytona: set Options.Snapshot or Options.Image, not both")
	}
	if o.SignedURLTTL != 0 && (o.SignedURLTTL < time.Second || o.SignedURLTTL > 24*time.Hour) {
		return nil, fmt.Errorf("daytona: SignedURLTTL %s: Daytona allows 1s to 24h", o.SignedURLTTL)
	}
	if o.HTTPClient == nil {
		o.HTTPClient = http.DefaultClient
	}
	if o.Port == 0 {
		o.Port = DefaultPort
	}
	if o.CreateTimeout <= 0 {
		o.CreateTimeout = DefaultCreateTimeout
	}
	if o.DeleteTimeout <= 0 {
		o.DeleteTimeout = DefaultDeleteTimeout
	}
	if o.CommandTimeout <= 0 {
		o.CommandTimeout = DefaultCommandTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	key := o.APIKey
	api := &remote.API{Provider: Name, BaseURL: strings.TrimRight(o.APIURL, "/"), Client: o.HTTPClient,
		DecodeError: decodeError,
		Authorize: func(r *http.Request) {
			r.Header.Set("Authorization", "Bearer "+key)
			r.Header.Set("X-Daytona-Source", "sandbox-agent-go")
		}}
	p := &Provider{o: o, api: api, cp: controlPlane{api: api}, homes: map[string]string{}}
	p.previews = previews{ttl: o.SignedURLTTL, now: time.Now,
		fetch: func(ctx context.Context, id string) (previewURL, error) {
			return p.cp.preview(ctx, id, p.o.Port, p.o.SignedURLTTL)
		}}
	return p, nil
}

// Name is "daytona".
func (p *Provider) Name() string { return Name }

func (p *Provider) config(token string) remote.Config {
	return remote.Config{Port: p.o.Port, Token: token, Install: p.o.Install, StartTimeout: p.o.StartTimeout}
}

func (p *Provider) createRequest() createRequest {
	req := createRequest{Snapshot: p.o.Snapshot, Env: p.o.Env, Labels: p.o.Labels, Public: p.o.Public, Target: p.o.Target}
	if p.o.Image != "" {
		req.BuildInfo = &buildInfo{DockerfileContent: "FROM " + p.o.Image + "\n"}
	}
	if p.o.AutoStopInterval >= 0 {
		n := p.o.AutoStopInterval
		req.AutoStopInterval = &n
	}
	return req
}

// Create creates a sandbox, waits until it has started, installs
// sandbox-agent and starts the server with a new token. A sandbox that
// fails after its creation is deleted.
func (p *Provider) Create(ctx context.Context) (string, error) {
	token := ""
	if !p.o.NoToken {
		var err error
		if token, err = remote.NewToken(); err != nil {
			return "", err
		}
	}
	sb, err := p.cp.create(ctx, p.createRequest())
	if err != nil {
		return "", err
	}
	if err := p.bootstrap(ctx, sb, token); err != nil {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.o.DeleteTimeout)
		defer cancel()
		if derr := p.Destroy(dctx, sb.ID); derr != nil {
			err = errors.Join(err, fmt.Errorf("daytona: delete the failed sandbox %s: %w", sb.ID, derr))
		}
		return "", err
	}
	return sb.ID, nil
}

func (p *Provider) bootstrap(ctx context.Context, sb sandbox, token string) error {
	sb, err := p.ensureStarted(ctx, sb.ID)
	if err != nil {
		return err
	}
	tb, err := newToolbox(p.api, sb, p.o.CommandTimeout)
	if err != nil {
		return err
	}
	in, err := remote.Bootstrap(ctx, tb, p.config(token))
	if err != nil {
		return err
	}
	p.tokens.Put(sb.ID, token)
	p.mu.Lock()
	p.homes[sb.ID] = in.Home
	p.mu.Unlock()
	p.o.Logger.Debug("daytona sandbox ready", "sandboxId", sb.ID, "install", in.How)
	return nil
}

// Destroy deletes the sandbox, retrying while Daytona reports a state
// change in progress (409), bounded by DeleteTimeout. A sandbox that is
// already gone is not an error.
func (p *Provider) Destroy(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, p.o.DeleteTimeout)
	defer cancel()
	defer p.forget(id)
	var pl remote.Poll
	for {
		err := p.cp.delete(ctx, id)
		var de *sandboxagent.SandboxDestroyedError
		switch {
		case err == nil, errors.As(err, &de):
			return nil
		case !isStatus(err, http.StatusConflict):
			return err
		}
		if werr := pl.Wait(ctx); werr != nil {
			return errors.Join(err, fmt.Errorf("daytona: delete sandbox %s: %w", id, werr))
		}
	}
}

func (p *Provider) forget(id string) {
	p.tokens.Forget(id)
	p.previews.forget(id)
	p.mu.Lock()
	delete(p.homes, id)
	p.mu.Unlock()
}

// Kill deletes the sandbox: Daytona has nothing harder than a delete.
func (p *Provider) Kill(ctx context.Context, id string) error { return p.Destroy(ctx, id) }

// Reconnect checks the sandbox still exists (404 →
// *sandboxagent.SandboxDestroyedError); Start then calls EnsureServer.
func (p *Provider) Reconnect(ctx context.Context, id string) error {
	sb, err := p.cp.get(ctx, id)
	if err != nil {
		return err
	}
	if sb.State == stateError || sb.State == stateBuildFailed {
		return fmt.Errorf("daytona: sandbox %s is in state %s: %s", id, sb.State, sb.ErrorReason)
	}
	return nil
}

// EnsureServer starts the sandbox if Daytona stopped, archived or paused
// it (auto-stop), waits until it has started, and runs the one idempotent
// server start command, which does nothing when the server is running.
func (p *Provider) EnsureServer(ctx context.Context, id string) error {
	sb, err := p.ensureStarted(ctx, id)
	if err != nil {
		return err
	}
	tb, err := newToolbox(p.api, sb, p.o.CommandTimeout)
	if err != nil {
		return err
	}
	token := ""
	if !p.o.NoToken {
		if token, err = p.tokens.Get(ctx, id, func(context.Context) (remote.Sandbox, error) { return tb, nil }); err != nil {
			return err
		}
	}
	return remote.StartServer(ctx, tb, p.config(token))
}

func (p *Provider) toolbox(ctx context.Context, id string) (*toolbox, error) {
	sb, err := p.cp.get(ctx, id)
	if err != nil {
		return nil, err
	}
	return newToolbox(p.api, sb, p.o.CommandTimeout)
}

// URL is the agent port's preview URL (signed, with SignedURLTTL).
func (p *Provider) URL(ctx context.Context, id string) (string, error) {
	pv, err := p.previews.get(ctx, id)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(pv.url.String(), "/"), nil
}

// HTTPClient reaches the agent URL with the preview credential: the
// X-Daytona-Preview-Token header, or the current signed host. The
// credential is fetched when missing or about to expire and refetched when
// the proxy refuses it.
func (p *Provider) HTTPClient(_ context.Context, id string) (*http.Client, error) {
	base := p.o.HTTPClient.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	return &http.Client{Transport: &previewTransport{ps: &p.previews, id: id, base: base},
		CheckRedirect: p.o.HTTPClient.CheckRedirect, Jar: p.o.HTTPClient.Jar}, nil
}

// Token is the server's bearer token ("" with NoToken), read back from the
// sandbox for one this provider did not create.
func (p *Provider) Token(ctx context.Context, id string) (string, error) {
	if p.o.NoToken {
		return "", nil
	}
	return p.tokens.Get(ctx, id, func(ctx context.Context) (remote.Sandbox, error) { return p.toolbox(ctx, id) })
}

// DefaultCwd is Options.Cwd, else the sandbox user's $HOME.
func (p *Provider) DefaultCwd(ctx context.Context, id string) (string, error) {
	if p.o.Cwd != "" {
		return p.o.Cwd, nil
	}
	p.mu.Lock()
	home, ok := p.homes[id]
	p.mu.Unlock()
	if ok {
		return home, nil
	}
	tb, err := p.toolbox(ctx, id)
	if err != nil {
		return "", err
	}
	res, err := tb.Exec(ctx, `printf '%s' "$HOME"`)
	if err != nil {
		return "", err
	}
	home = strings.TrimSpace(res.Output)
	if res.ExitCode != 0 || !strings.HasPrefix(home, "/") {
		return "", fmt.Errorf("daytona: the sandbox's $HOME: exit %d: %q", res.ExitCode, res.Output)
	}
	p.mu.Lock()
	p.homes[id] = home
	p.mu.Unlock()
	return home, nil
}
