package e2b

import (
	"cmp"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	sandboxagent "github.com/sandbox-agent-go/sandbox-agent"
	"github.com/sandbox-agent-go/sandbox-agent/provider"
)

// Defaults. Timeout is upstream's (1 h): E2B's API default is 15 s and its
// SDK's 5 min, both far too short for an agent's session.
const (
	DefaultDomain   = "e2b.app"
	DefaultTemplate = "base"
	DefaultTimeout  = time.Hour
	DefaultPort     = 3000
	DefaultCwd      = "/home/user"
	// DefaultCommandTimeout bounds each installation command inside the
	// sandbox (sent as Connect-Timeout-Ms, so envd kills a command whose
	// caller went away); the server's start command is never bounded so.
	DefaultCommandTimeout = 10 * time.Minute
	// EnvdPort is the port of envd, E2B's daemon in every sandbox.
	EnvdPort = 49983
)

// Environment variables read by New, as E2B's SDKs do.
const (
	EnvAPIKey = "E2B_API_KEY"
	EnvDomain = "E2B_DOMAIN"
	EnvAPIURL = "E2B_API_URL"
)

// Options configure the provider. The zero value, with E2B_API_KEY set,
// creates "base" sandboxes on e2b.app.
type Options struct {
	// APIKey authenticates to E2B's API; default $E2B_API_KEY.
	APIKey string
	// Domain of E2B's API and sandbox hosts; default $E2B_DOMAIN, else
	// e2b.app.
	Domain string
	// APIURL is the control plane's base URL; default $E2B_API_URL, else
	// https://api.<Domain>.
	APIURL string
	// HTTPClient makes every request: the API, envd and the agent (a
	// Private sandbox's traffic token is added by the client HTTPClient
	// returns). Default http.DefaultClient; each call is bounded by its
	// context.
	HTTPClient *http.Client
	// SandboxURL is the base URL of a sandbox's port (the agent's, and
	// envd's on EnvdPort); default https://<port>-<sandboxID>.<domain>,
	// where domain is the one E2B returned for the sandbox, else Domain.
	SandboxURL func(sandboxID string, port int) string

	// Template the sandbox is created from; default "base". A template
	// that has sandbox-agent on PATH skips the installation.
	Template string
	// Timeout is the sandbox's lifetime from creation, and again from each
	// Reconnect/EnsureServer (E2B's connect only extends it); default 1 h.
	Timeout time.Duration
	// KillOnTimeout deletes the sandbox when Timeout expires. By default
	// (autoPause) E2B pauses it with its memory instead, and Reconnect or
	// EnsureServer resumes it with the server still running.
	KillOnTimeout bool
	// Private creates the sandbox with allowPublicTraffic false: its URLs
	// then need the e2b-traffic-access-token header, which the client
	// HTTPClient returns adds. Default public (as upstream); the server's
	// own token still guards it.
	Private bool
	// Metadata and Env are the sandbox's metadata and environment
	// variables (envVars: every process in the sandbox sees them, agents
	// included, e.g. ANTHROPIC_API_KEY).
	Metadata map[string]string
	Env      map[string]string

	// Port the server listens on in the sandbox; default 3000.
	Port int
	// NoToken starts the server without a token (upstream's behaviour):
	// anyone who knows the URL of a public sandbox can use it.
	NoToken bool
	// Install: how sandbox-agent and agents get into the sandbox.
	Install provider.Install
	// Cwd is the working directory of new sessions; default /home/user.
	Cwd string
	// StartTimeout bounds the server's start (its health wait); default
	// 30 s.
	StartTimeout time.Duration
	// CommandTimeout bounds each installation command; default
	// DefaultCommandTimeout.
	CommandTimeout time.Duration
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// withDefaults fills the defaults, reading the environment.
func (o Options) withDefaults() (Options, error) {
	o.APIKey = cmp.Or(o.APIKey, os.Getenv(EnvAPIKey))
	if o.APIKey == "" {
		return o, &sandboxagent.MissingCredentialsError{Provider: "e2b", Option: "APIKey", EnvVars: []string{EnvAPIKey}}
	}
	o.Domain = cmp.Or(o.Domain, os.Getenv(EnvDomain), DefaultDomain)
	o.APIURL = strings.TrimRight(cmp.Or(o.APIURL, os.Getenv(EnvAPIURL), "https://api."+o.Domain), "/")
	o.Template = cmp.Or(o.Template, DefaultTemplate)
	o.Timeout = cmp.Or(o.Timeout, DefaultTimeout)
	if o.Timeout < time.Second {
		return o, fmt.Errorf("e2b: Options.Timeout %s is under E2B's granularity of one second", o.Timeout)
	}
	o.Port = cmp.Or(o.Port, DefaultPort)
	o.Cwd = cmp.Or(o.Cwd, DefaultCwd)
	o.CommandTimeout = cmp.Or(o.CommandTimeout, DefaultCommandTimeout)
	if o.HTTPClient == nil {
		o.HTTPClient = http.DefaultClient
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o, nil
}

// timeoutSeconds is Timeout as E2B's API takes it.
func (o Options) timeoutSeconds() int { return int((o.Timeout + time.Second - 1) / time.Second) }
