package vercel

import (
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	sandboxagent "github.com/sandbox-agent-go/sandbox-agent"
	"github.com/sandbox-agent-go/sandbox-agent/provider"
)

// Defaults.
const (
	DefaultAPIURL = "https://vercel.com/api"
	DefaultPort   = 3000
	// DefaultTimeout is the session timeout set at create. The vendor's own
	// default is 5 minutes, after which the session (and the server) stops;
	// 45 minutes is the longest the Hobby plan allows (Pro: 24 h).
	DefaultTimeout = 45 * time.Minute
	// DefaultExtendBy is how much EnsureServer adds to a running session.
	DefaultExtendBy = 15 * time.Minute
	// DefaultStoppingWait bounds how long a call waits for a stopping or
	// snapshotting session to finish before it resumes the sandbox.
	DefaultStoppingWait = 2 * time.Minute
)

// Environment variables read by New.
const (
	EnvToken     = "VERCEL_TOKEN"
	EnvOIDCToken = "VERCEL_OIDC_TOKEN"
	EnvTeamID    = "VERCEL_TEAM_ID"
	EnvProjectID = "VERCEL_PROJECT_ID"
)

// Options configure the provider. Zero values take the documented
// defaults.
type Options struct {
	// Token is a Vercel access token; default $VERCEL_TOKEN, then
	// $VERCEL_OIDC_TOKEN. An OIDC token (a JWT) also gives the team and
	// project: its owner_id and project_id claims are read without
	// verifying the signature (Vercel verifies it; we only need the ids).
	// An OIDC token is not refreshed (a development token lasts 12 h).
	Token string
	// TeamID is sent as ?teamId= on every request; default the token's
	// owner_id claim, then $VERCEL_TEAM_ID.
	TeamID string
	// ProjectID owns the sandboxes; default the token's project_id claim,
	// then $VERCEL_PROJECT_ID.
	ProjectID string
	// APIURL is the control plane; default https://vercel.com/api.
	APIURL string
	// HTTPClient calls the control plane; default a client without an
	// overall timeout (every call is bounded by its context).
	HTTPClient *http.Client
	// SandboxURL maps a sandbox name and port to the agent's base URL;
	// default https://<route subdomain>.vercel.run from the sandbox's
	// routes (the port must have a route).
	SandboxURL func(sandboxID string, port int) string
	// Port the server listens on, declared at create; default 3000.
	Port int
	// NoToken starts the server without a token (as upstream does). Its
	// URL is public: anyone who learns it can drive the agents.
	NoToken bool
	// Install: how sandbox-agent and agents get into the sandbox.
	Install provider.Install

	// Runtime ("node24", "python3.13", ...) selects a runtime image
	// (POST /v2/sandboxes); otherwise Image (POST /v3/sandboxes, the
	// vendor's default image vercel/sandbox/universal when empty).
	Runtime string
	Image   string
	// Env is the sandbox's environment.
	Env map[string]string
	// VCPUs, when positive, sets resources.vcpus.
	VCPUs int
	// Timeout is the session timeout (create, and every resumed session);
	// default DefaultTimeout (45 min). The plan's maximum applies.
	Timeout time.Duration
	// ExtendBy is added to a running session's timeout by EnsureServer
	// (POST …/extend-timeout); default DefaultExtendBy, negative: never.
	// An extension the vendor refuses (plan maximum) is logged, not an
	// error.
	ExtendBy time.Duration
	// StoppingWait bounds the wait for a stopping session; default
	// DefaultStoppingWait.
	StoppingWait time.Duration
	// StartTimeout bounds the server's start; default 30 s.
	StartTimeout time.Duration
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// credentials fills Token, TeamID and ProjectID from the environment.
func (o *Options) credentials(getenv func(string) string) error {
	if o.Token == "" {
		o.Token = getenv(EnvToken)
	}
	if o.Token == "" {
		o.Token = getenv(EnvOIDCToken)
	}
	if o.Token == "" {
		return &sandboxagent.MissingCredentialsError{Provider: "vercel", Option: "Token", EnvVars: []string{EnvToken, EnvOIDCToken}}
	}
	if c, ok := oidcClaims(o.Token); ok {
		if o.TeamID == "" {
			o.TeamID = c.OwnerID
		}
		if o.ProjectID == "" {
			o.ProjectID = c.ProjectID
		}
	}
	if o.TeamID == "" {
		o.TeamID = getenv(EnvTeamID)
	}
	if o.ProjectID == "" {
		o.ProjectID = getenv(EnvProjectID)
	}
	if o.TeamID == "" {
		return &sandboxagent.MissingCredentialsError{Provider: "vercel", Option: "TeamID", EnvVars: []string{EnvTeamID}}
	}
	if o.ProjectID == "" {
		return &sandboxagent.MissingCredentialsError{Provider: "vercel", Option: "ProjectID", EnvVars: []string{EnvProjectID}}
	}
	return nil
}

type claims struct {
	OwnerID   string `json:"owner_id"`
	ProjectID string `json:"project_id"`
}

// oidcClaims decodes a JWT's payload without verifying it, as
// @vercel/sandbox does: the ids only scope our requests, and Vercel
// verifies the token on each of them.
func oidcClaims(token string) (claims, bool) {
	var c claims
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return c, false
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil || json.Unmarshal(b, &c) != nil {
		return c, false
	}
	return c, true
}

func (o *Options) defaults() {
	if o.APIURL == "" {
		o.APIURL = DefaultAPIURL
	}
	if o.Port == 0 {
		o.Port = DefaultPort
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.ExtendBy == 0 {
		o.ExtendBy = DefaultExtendBy
	}
	if o.StoppingWait <= 0 {
		o.StoppingWait = DefaultStoppingWait
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

var getenv = os.Getenv
