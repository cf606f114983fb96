// Package local is a sandboxagent.SandboxProvider that runs the
// sandbox-agent binary on this machine: each sandbox is one server process
// on a free port with a random token. EnsureServer restarts a server that
// died (same port, same token), so a client's health gate brings it back.
package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/sandbox-agent-go/sandbox-agent/internal/serverprobe"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	sandboxagent "github.com/sandbox-agent-go/sandbox-agent"
)

// Defaults.
const (
	DefaultHost          = "127.0.0.1"
	DefaultHealthTimeout = 15 * time.Second
	HealthPollInterval   = 200 * time.Millisecond
	StopGrace            = 5 * time.Second
)

// ErrBinaryNotFound is returned when no sandbox-agent binary can be found.
var ErrBinaryNotFound = errors.New("local: sandbox-agent binary not found; set Options.BinaryPath or SANDBOX_AGENT_BIN, or put sandbox-agent on PATH")

// Options configure the provider.
type Options struct {
	// BinaryPath of sandbox-agent; default $SANDBOX_AGENT_BIN, then PATH.
	BinaryPath string
	// Host to bind; default 127.0.0.1.
	Host string
	// Port to bind; 0 picks a free one per sandbox.
	Port int
	// Token for the server; default 24 random bytes, hex.
	Token string
	// Env is appended to this process's environment for the server.
	Env []string
	// Args are extra `server` arguments.
	Args []string
	// Stdout and Stderr of the server; default discarded.
	Stdout, Stderr io.Writer
	// HealthTimeout bounds the wait for a new server; default 15 s.
	HealthTimeout time.Duration
}

// Provider is the local provider. Safe for concurrent use.
type Provider struct {
	o     Options
	mu    sync.Mutex
	procs map[string]*server
}

type server struct {
	host  string
	port  int
	token string
	cmd   *exec.Cmd
	done  chan struct{}
}

var (
	_ sandboxagent.SandboxProvider = (*Provider)(nil)
	_ sandboxagent.URLProvider     = (*Provider)(nil)
	_ sandboxagent.TokenProvider   = (*Provider)(nil)
	_ sandboxagent.ServerEnsurer   = (*Provider)(nil)
	_ sandboxagent.SandboxKiller   = (*Provider)(nil)
)

// New returns a local provider.
func New(o Options) *Provider {
	if o.Host == "" {
		o.Host = DefaultHost
	}
	if o.HealthTimeout <= 0 {
		o.HealthTimeout = DefaultHealthTimeout
	}
	return &Provider{o: o, procs: map[string]*server{}}
}

// Name implements sandboxagent.SandboxProvider.
func (p *Provider) Name() string { return "local" }

// Binary resolves the sandbox-agent binary.
func (p *Provider) Binary() (string, error) {
	if p.o.BinaryPath != "" {
		return p.o.BinaryPath, nil
	}
	if b := os.Getenv("SANDBOX_AGENT_BIN"); b != "" {
		if _, err := os.Stat(b); err != nil {
			return "", fmt.Errorf("local: SANDBOX_AGENT_BIN: %w", err)
		}
		return b, nil
	}
	if b, err := exec.LookPath("sandbox-agent"); err == nil {
		return b, nil
	}
	return "", ErrBinaryNotFound
}

// Create starts a server and waits until it is healthy; the id is
// "host:port".
func (p *Provider) Create(ctx context.Context) (string, error) {
	port := p.o.Port
	if port == 0 {
		var err error
		if port, err = serverprobe.FreePort(p.o.Host); err != nil {
			return "", fmt.Errorf("local: %w", err)
		}
	}
	token := p.o.Token
	if token == "" {
		b := make([]byte, 24)
		_, _ = rand.Read(b)
		token = hex.EncodeToString(b)
	}
	s := &server{host: p.o.Host, port: port, token: token}
	id := net.JoinHostPort(serverprobe.DialHost(s.host), strconv.Itoa(port))
	if err := p.spawn(ctx, s); err != nil {
		return "", err
	}
	p.mu.Lock()
	p.procs[id] = s
	p.mu.Unlock()
	return id, nil
}

func (p *Provider) spawn(ctx context.Context, s *server) error {
	bin, err := p.Binary()
	if err != nil {
		return err
	}
	args := append([]string{"server", "--host", s.host, "--port", strconv.Itoa(s.port), "--token", s.token}, p.o.Args...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), p.o.Env...)
	cmd.Stdout, cmd.Stderr = p.o.Stdout, p.o.Stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("local: start %s: %w", bin, err)
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	go func(done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(s.done)
	if err := p.waitHealthy(ctx, s); err != nil {
		stop(s)
		return err
	}
	return nil
}

func (p *Provider) waitHealthy(ctx context.Context, s *server) error {
	err := serverprobe.Wait(ctx, serverprobe.WaitOptions{
		BaseURL: serverprobe.BaseURL(s.host, s.port), Token: s.token,
		Timeout: p.o.HealthTimeout, MaxInterval: HealthPollInterval,
		Alive: func() error {
			select {
			case <-s.done:
				return fmt.Errorf("sandbox-agent exited before becoming healthy (%s)", s.cmd.ProcessState)
			default:
				return nil
			}
		},
	})
	if err != nil {
		return fmt.Errorf("local: %w", err)
	}
	return nil
}

func stop(s *server) {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(StopGrace)
	defer t.Stop()
	select {
	case <-s.done:
	case <-t.C:
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

func (p *Provider) get(id string) *server {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.procs[id]
}

// Destroy stops the server (SIGTERM, SIGKILL after 5 s). Unknown ids are a
// no-op.
func (p *Provider) Destroy(ctx context.Context, id string) error {
	p.mu.Lock()
	s := p.procs[id]
	delete(p.procs, id)
	p.mu.Unlock()
	if s != nil {
		stop(s)
	}
	return nil
}

// Kill SIGKILLs the server at once but keeps the sandbox known, so
// EnsureServer can start it again (what a crash looks like).
func (p *Provider) Kill(ctx context.Context, id string) error {
	p.mu.Lock()
	s := p.procs[id]
	var cmd *exec.Cmd
	var done chan struct{}
	if s != nil {
		cmd, done = s.cmd, s.done
	}
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Kill()
	<-done
	return nil
}

// URL implements sandboxagent.URLProvider.
func (p *Provider) URL(ctx context.Context, id string) (string, error) { return "http://" + id, nil }

// Token implements sandboxagent.TokenProvider.
func (p *Provider) Token(ctx context.Context, id string) (string, error) {
	if p.o.Token != "" {
		return p.o.Token, nil
	}
	if s := p.get(id); s != nil {
		return s.token, nil
	}
	return "", nil
}

// EnsureServer restarts the server of id (same port and token) if it has
// exited; it is a no-op while it runs.
func (p *Provider) EnsureServer(ctx context.Context, id string) error {
	s := p.get(id)
	if s == nil {
		return fmt.Errorf("local: unknown sandbox %q", id)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if s.done != nil {
		select {
		case <-s.done:
		default:
			return nil // running
		}
	}
	return p.spawn(ctx, s)
}

// Close stops every server this provider started.
func (p *Provider) Close() error {
	p.mu.Lock()
	procs := p.procs
	p.procs = map[string]*server{}
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stop(s)
		}()
	}
	wg.Wait()
	return nil
}
