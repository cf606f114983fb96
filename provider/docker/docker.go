// Package docker is a sandboxagent.SandboxProvider that runs each sandbox
// as a Docker container whose main process is `sandbox-agent server`,
// talking to the Docker Engine REST API directly (a unix socket by
// default; no Docker SDK).
//
// As upstream's docker provider it publishes the agent port (3000) on a
// host port chosen at create time, reaches the server at
// http://127.0.0.1:<host port>, and destroys with stop (5 s) then a forced
// remove. Better than upstream: the container is not auto-removed, so
// EnsureServer can start it again when the server died or the container
// stopped (the host port stays the same, so clients reconnect), Reconnect
// resumes a paused container and reports a removed one as
// *sandboxagent.SandboxDestroyedError, Pause and Kill are real, and a
// missing image is pulled.
package docker

import (
	"context"
	"errors"
	"fmt"
	"github.com/sandbox-agent-go/sandbox-agent/internal/serverprobe"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"

	sandboxagent "github.com/sandbox-agent-go/sandbox-agent"
)

// Defaults.
const (
	DefaultAgentPort  = 3000
	DefaultHost       = "127.0.0.1"
	DefaultCwd        = "/home/sandbox"
	DefaultDockerHost = "unix:///var/run/docker.sock"
	// LabelProvider marks the containers this provider creates.
	LabelProvider = "dev.sandbox-agent.provider"
)

// Options configure the provider.
type Options struct {
	// Image runs `sandbox-agent` as its entrypoint (Cmd is the server's
	// arguments); required.
	Image string
	// Host is the host address the agent port is published on and the
	// server is reached at; default 127.0.0.1.
	Host string
	// AgentPort is the server's port inside the container; default 3000.
	AgentPort int
	// Cmd overrides the container command; default
	// ["server", "--no-token", "--host", "0.0.0.0", "--port", "<AgentPort>"].
	Cmd []string
	// Env ("KEY=value") and Binds ("host:container[:ro]") of the container.
	Env   []string
	Binds []string
	// Labels are added to LabelProvider.
	Labels map[string]string
	// Cwd is the session working directory fallback; default /home/sandbox.
	Cwd string
	// StopTimeout in seconds for Destroy's stop; default 5.
	StopTimeout int
	// DockerHost is the Engine address; default $DOCKER_HOST, then
	// unix:///var/run/docker.sock.
	DockerHost string
	// HTTPClient and EngineURL reach the Engine another way (TLS, tests);
	// EngineURL defaults to http://docker.
	HTTPClient *http.Client
	EngineURL  string
}

// Provider is the Docker provider. Safe for concurrent use.
type Provider struct {
	o   Options
	eng *engine
}

var (
	_ sandboxagent.SandboxProvider    = (*Provider)(nil)
	_ sandboxagent.URLProvider        = (*Provider)(nil)
	_ sandboxagent.ServerEnsurer      = (*Provider)(nil)
	_ sandboxagent.SandboxReconnecter = (*Provider)(nil)
	_ sandboxagent.SandboxPauser      = (*Provider)(nil)
	_ sandboxagent.SandboxKiller      = (*Provider)(nil)
	_ sandboxagent.DefaultCwdProvider = (*Provider)(nil)
)

// New returns a Docker provider.
func New(o Options) (*Provider, error) {
	if o.Image == "" {
		return nil, errors.New("docker: Options.Image is required (an image whose entrypoint is sandbox-agent)")
	}
	if o.Host == "" {
		o.Host = DefaultHost
	}
	if o.AgentPort == 0 {
		o.AgentPort = DefaultAgentPort
	}
	if o.Cwd == "" {
		o.Cwd = DefaultCwd
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = 5
	}
	if o.DockerHost == "" {
		o.DockerHost = os.Getenv("DOCKER_HOST")
	}
	if o.DockerHost == "" {
		o.DockerHost = DefaultDockerHost
	}
	eng, err := newEngine(o.DockerHost, o.HTTPClient, o.EngineURL)
	if err != nil {
		return nil, err
	}
	return &Provider{o: o, eng: eng}, nil
}

// Name is "docker".
func (p *Provider) Name() string { return "docker" }

func (p *Provider) portKey() string { return strconv.Itoa(p.o.AgentPort) + "/tcp" }

// Create creates and starts a container and returns its id. A host port
// taken between choosing and binding it is retried with another.
func (p *Provider) Create(ctx context.Context) (string, error) {
	var lastErr error
	for range 3 {
		id, err := p.create(ctx)
		if err == nil {
			return id, nil
		}
		lastErr = err
		var ae *APIError
		if !errors.As(err, &ae) || !strings.Contains(ae.Message, "port is already allocated") && !strings.Contains(ae.Message, "address already in use") {
			return "", err
		}
	}
	return "", lastErr
}

func (p *Provider) create(ctx context.Context) (string, error) {
	hostPort, err := serverprobe.FreePort(p.o.Host)
	if err != nil {
		return "", fmt.Errorf("docker: choose a host port on %s: %w", p.o.Host, err)
	}
	cmd := p.o.Cmd
	if cmd == nil {
		cmd = []string{"server", "--no-token", "--host", "0.0.0.0", "--port", strconv.Itoa(p.o.AgentPort)}
	}
	labels := map[string]string{LabelProvider: "docker"}
	for k, v := range p.o.Labels {
		labels[k] = v
	}
	type portBinding struct {
		HostIP   string `json:"HostIp"`
		HostPort string
	}
	body := map[string]any{
		"Image":        p.o.Image,
		"Cmd":          cmd,
		"Env":          p.o.Env,
		"Labels":       labels,
		"ExposedPorts": map[string]any{p.portKey(): struct{}{}},
		"HostConfig": map[string]any{
			"Binds":        p.o.Binds,
			"PortBindings": map[string][]portBinding{p.portKey(): {{HostIP: p.o.Host, HostPort: strconv.Itoa(hostPort)}}},
		},
	}
	var created struct {
		ID string `json:"Id"`
	}
	_, err = p.eng.do(ctx, "create container", http.MethodPost, "/containers/create", nil, body, &created)
	if notFound(err) {
		// The image is not here yet: pull it once and try again.
		if perr := p.eng.pull(ctx, p.o.Image); perr != nil {
			return "", perr
		}
		_, err = p.eng.do(ctx, "create container", http.MethodPost, "/containers/create", nil, body, &created)
	}
	if err != nil {
		return "", err
	}
	if err := p.start(ctx, created.ID); err != nil {
		_ = p.remove(context.WithoutCancel(ctx), created.ID)
		return "", err
	}
	return created.ID, nil
}

func (p *Provider) start(ctx context.Context, id string) error {
	// 304: already running.
	_, err := p.eng.do(ctx, "start container "+id, http.MethodPost, "/containers/"+url.PathEscape(id)+"/start", nil, nil, nil, http.StatusNotModified)
	return err
}

func (p *Provider) remove(ctx context.Context, id string) error {
	_, err := p.eng.do(ctx, "remove container "+id, http.MethodDelete, "/containers/"+url.PathEscape(id), url.Values{"force": {"true"}, "v": {"true"}}, nil, nil, http.StatusNotFound)
	return err
}

// Destroy stops the container (StopTimeout seconds, then the Engine kills
// it) and removes it. A container that is already gone is not an error.
func (p *Provider) Destroy(ctx context.Context, id string) error {
	_, err := p.eng.do(ctx, "stop container "+id, http.MethodPost, "/containers/"+url.PathEscape(id)+"/stop",
		url.Values{"t": {strconv.Itoa(p.o.StopTimeout)}}, nil, nil, http.StatusNotModified, http.StatusNotFound)
	if err != nil {
		var ae *APIError
		if !errors.As(err, &ae) {
			return err // the Engine is unreachable: nothing was removed
		}
		// A paused container cannot be stopped; the forced remove below
		// takes it anyway.
	}
	return p.remove(ctx, id)
}

// Kill kills the container at once and removes it.
func (p *Provider) Kill(ctx context.Context, id string) error {
	_, err := p.eng.do(ctx, "kill container "+id, http.MethodPost, "/containers/"+url.PathEscape(id)+"/kill", nil, nil, nil,
		http.StatusNotFound, http.StatusConflict) // 409: not running
	if err != nil {
		return err
	}
	return p.remove(ctx, id)
}

// Pause freezes the container's processes (docker pause); Reconnect or
// EnsureServer resumes it.
func (p *Provider) Pause(ctx context.Context, id string) error {
	_, err := p.eng.do(ctx, "pause container "+id, http.MethodPost, "/containers/"+url.PathEscape(id)+"/pause", nil, nil, nil)
	return err
}

// Reconnect checks that the container exists and resumes it if paused. A
// removed container is a *sandboxagent.SandboxDestroyedError.
func (p *Provider) Reconnect(ctx context.Context, id string) error {
	_, err := p.ensureRunning(ctx, id)
	return err
}

// EnsureServer starts the container again if it stopped (its main process
// is the server) and resumes it if paused. Idempotent.
func (p *Provider) EnsureServer(ctx context.Context, id string) error {
	_, err := p.ensureRunning(ctx, id)
	return err
}

func (p *Provider) ensureRunning(ctx context.Context, id string) (containerJSON, error) {
	c, err := p.eng.inspect(ctx, id)
	if notFound(err) {
		return c, &sandboxagent.SandboxDestroyedError{SandboxID: id, Provider: p.Name(), Cause: err}
	}
	if err != nil {
		return c, err
	}
	switch {
	case c.State.Paused:
		_, err = p.eng.do(ctx, "unpause container "+id, http.MethodPost, "/containers/"+url.PathEscape(id)+"/unpause", nil, nil, nil)
	case !c.State.Running:
		err = p.start(ctx, id)
	}
	return c, err
}

// URL is http://<Host>:<published host port>.
func (p *Provider) URL(ctx context.Context, id string) (string, error) {
	c, err := p.eng.inspect(ctx, id)
	if notFound(err) {
		return "", &sandboxagent.SandboxDestroyedError{SandboxID: id, Provider: p.Name(), Cause: err}
	}
	if err != nil {
		return "", err
	}
	for _, b := range c.NetworkSettings.Ports[p.portKey()] {
		if b.HostPort != "" {
			return "http://" + net.JoinHostPort(serverprobe.DialHost(p.o.Host), b.HostPort), nil
		}
	}
	return "", fmt.Errorf("docker: sandbox-agent port %d is not published by container %s (state %s)", p.o.AgentPort, id, c.State.Status)
}

// DefaultCwd is Options.Cwd (default /home/sandbox).
func (p *Provider) DefaultCwd(context.Context, string) (string, error) { return p.o.Cwd, nil }
