// Package app assembles the sandbox-agent server from its capabilities:
// it builds each package, collects their routes into one handler and closes
// them in order on shutdown. Both the CLI and end-to-end tests start the
// server through it.
package app

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/sandbox-agent-go/sandbox-agent/internal/acpproxy"
	"github.com/sandbox-agent-go/sandbox-agent/internal/agents"
	"github.com/sandbox-agent-go/sandbox-agent/internal/fsapi"
	"github.com/sandbox-agent-go/sandbox-agent/internal/mcpconfig"
	"github.com/sandbox-agent-go/sandbox-agent/internal/process"
	"github.com/sandbox-agent-go/sandbox-agent/internal/server"
)

// Config is everything the server needs.
type Config struct {
	Version string
	HTTP    server.Config
	ACP     acpproxy.Options
	Agents  agents.Options
	// Home is the directory relative filesystem paths resolve against
	// (default $HOME).
	Home string
	// MaxFileBytes caps file uploads (0: unlimited; they stream to disk).
	MaxFileBytes int64
	// Upload bounds each POST /v1/fs/upload-batch (zero fields: unlimited).
	Upload fsapi.UploadLimits
	// Cwd is the directory relative config directories resolve against
	// (default the process working directory).
	Cwd    string
	Logger *slog.Logger
	// Processes configures /v1/processes (its Logger and Env are set here).
	Processes process.Options
	// Environ is the server's environment children are derived from
	// (default os.Environ()); see ChildEnv.
	Environ []string
	// Timeouts are the HTTP connection bounds (header read, keep-alive idle).
	Timeouts server.Timeouts
}

// serverSecretVars are the variables that carry the server's own secrets.
// No child (agent, user process, installer) needs them: the token guards
// the API against what runs in the sandbox, so handing it to every child
// (an agent's `env` tool call prints it into the transcript) defeats it.
var serverSecretVars = []string{"SANDBOX_AGENT_TOKEN", "SANDBOX_AGENT_TOKEN_FILE"}

// ChildEnv is environ without the server's own secrets: serverSecretVars
// and any variable whose value holds token (the server may have been given
// it through another name, e.g. --token "$MY_TOKEN"). Everything else, LLM
// keys included, stays: agents need them.
func ChildEnv(environ []string, token string) []string {
	out := make([]string, 0, len(environ))
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		if slices.Contains(serverSecretVars, k) || (token != "" && strings.Contains(v, token)) {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// App is an assembled server.
type App struct {
	cfg       Config
	handler   *server.Handler
	closers   []server.Closer
	Agents    *agents.Manager
	ACP       *acpproxy.Registry
	Processes *process.Manager
}

// New builds the server.
func New(cfg Config) (*App, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	if cfg.Home == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return nil, errors.New("cannot determine the home directory; set HOME")
		}
		cfg.Home = h
	}
	if cfg.Cwd == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, err
		}
		cfg.Cwd = wd
	}
	cfg.HTTP.Logger = cfg.Logger
	cfg.Agents.Logger = cfg.Logger
	// One scrubbed base environment for every child the server starts:
	// agents (and their installers) and user processes.
	if cfg.Environ == nil {
		cfg.Environ = os.Environ()
	}
	childEnv := ChildEnv(cfg.Environ, cfg.HTTP.Token)
	if cfg.Agents.Env == nil {
		cfg.Agents.Env = childEnv
	}
	if cfg.Processes.Env == nil {
		cfg.Processes.Env = childEnv
	}
	cfg.Processes.Logger = cfg.Logger
	cfg.ACP.Logger = cfg.Logger
	a := &App{cfg: cfg}
	a.Agents = agents.NewManager(cfg.Agents)
	cfg.ACP.Launcher = a.Agents
	a.ACP = acpproxy.New(cfg.ACP)

	routes := server.BaseRoutes(cfg.Version)
	routes = append(routes, a.Agents.Routes()...)
	routes = append(routes, a.ACP.Routes()...)
	a.Processes = process.NewManager(cfg.Processes)
	routes = append(routes, fsapi.New(fsapi.Options{Home: cfg.Home, MaxFileBytes: cfg.MaxFileBytes, Upload: cfg.Upload, BodyIdleTimeout: cfg.HTTP.BodyIdleTimeout, Logger: cfg.Logger}).Routes()...)
	routes = append(routes, mcpconfig.New(mcpconfig.Options{Cwd: cfg.Cwd}).Routes()...)
	routes = append(routes, a.Processes.Routes()...)
	a.closers = []server.Closer{a.ACP, a.Processes}
	h, err := server.NewHandler(cfg.HTTP, routes)
	if err != nil {
		return nil, err
	}
	a.handler = h
	return a, nil
}

// Handler is the HTTP handler.
func (a *App) Handler() http.Handler { return a.handler }

// Routes is the route table.
func (a *App) Routes() []server.Route { return a.handler.Routes() }

// Close releases every capability (agent and user processes).
func (a *App) Close(ctx context.Context) error {
	var errs []error
	for _, c := range a.closers {
		if err := c.Close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Serve serves on ln until ctx ends, then shuts down gracefully.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	return server.Serve(ctx, ln, a.handler, a.cfg.Logger, a.cfg.Timeouts, a.closers...)
}
