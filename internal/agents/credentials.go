package agents

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
)

// Credential is one discovered provider credential. APIKey is the secret:
// never log it; use Redacted.
type Credential struct {
	Provider string `json:"provider"`
	Source   string `json:"source"`
	AuthType string `json:"auth_type"` // "api_key" or "oauth"
	APIKey   string `json:"api_key"`
	Redacted string `json:"redacted"`
}

// Credentials are the credentials found for each provider.
type Credentials struct {
	Anthropic *Credential            `json:"anthropic"`
	OpenAI    *Credential            `json:"openai"`
	Other     map[string]*Credential `json:"other"`
}

// CredentialOptions tune discovery.
type CredentialOptions struct {
	// Env is the environment to read (KEY=value entries).
	Env []string
	// Home is the directory holding the agents' config files (default
	// HOME from Env).
	Home string
	// NoOAuth ignores OAuth tokens and keeps API keys only.
	NoOAuth bool
}

// Redact keeps the first and last four characters of a secret.
func Redact(secret string) string {
	if len(secret) <= 12 {
		return "****"
	}
	return secret[:4] + "..." + secret[len(secret)-4:]
}

func envMap(env []string) map[string]string {
	m := map[string]string{}
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

func readJSON(path string, v any) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	return json.Unmarshal(b, v) == nil
}

func cred(provider, source, authType, key string) *Credential {
	key = strings.TrimSpace(key)
	if key == "" {
		return nil
	}
	return &Credential{Provider: provider, Source: source, AuthType: authType, APIKey: key, Redacted: Redact(key)}
}

// DiscoverCredentials finds Anthropic and OpenAI credentials the way the
// agents do: environment variables first, then the agents' own config
// files (~/.claude.json, ~/.claude/.credentials.json, ~/.codex/auth.json,
// ~/.local/share/opencode/auth.json).
func DiscoverCredentials(o CredentialOptions) Credentials {
	env := envMap(o.Env)
	home := o.Home
	if home == "" {
		home = env["HOME"]
	}
	out := Credentials{Other: map[string]*Credential{}}
	first := func(cs ...*Credential) *Credential {
		for _, c := range cs {
			if c != nil && (!o.NoOAuth || c.AuthType != "oauth") {
				return c
			}
		}
		return nil
	}

	var anth, oai []*Credential
	for _, k := range []string{"ANTHROPIC_API_KEY", "CLAUDE_API_KEY"} {
		anth = append(anth, cred("anthropic", "environment:"+k, "api_key", env[k]))
	}
	for _, k := range []string{"CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_AUTH_TOKEN"} {
		anth = append(anth, cred("anthropic", "environment:"+k, "oauth", env[k]))
	}
	for _, k := range []string{"OPENAI_API_KEY", "CODEX_API_KEY"} {
		oai = append(oai, cred("openai", "environment:"+k, "api_key", env[k]))
	}
	if home != "" {
		var cj map[string]any
		if p := filepath.Join(home, ".claude.json"); readJSON(p, &cj) {
			for _, k := range []string{"primaryApiKey", "apiKey", "anthropicApiKey", "customApiKey"} {
				if s, ok := cj[k].(string); ok {
					anth = append(anth, cred("anthropic", "claude_code:"+p, "api_key", s))
				}
			}
		}
		var cc struct {
			ClaudeAiOauth struct {
				AccessToken string `json:"accessToken"`
			} `json:"claudeAiOauth"`
		}
		if p := filepath.Join(home, ".claude", ".credentials.json"); readJSON(p, &cc) {
			anth = append(anth, cred("anthropic", "claude_code:"+p, "oauth", cc.ClaudeAiOauth.AccessToken))
		}
		var cx struct {
			OpenAIAPIKey *string `json:"OPENAI_API_KEY"`
			Tokens       *struct {
				AccessToken string `json:"access_token"`
			} `json:"tokens"`
		}
		if p := filepath.Join(home, ".codex", "auth.json"); readJSON(p, &cx) {
			if cx.OpenAIAPIKey != nil {
				oai = append(oai, cred("openai", "codex:"+p, "api_key", *cx.OpenAIAPIKey))
			}
			if cx.Tokens != nil {
				oai = append(oai, cred("openai", "codex:"+p, "oauth", cx.Tokens.AccessToken))
			}
		}
		var oc map[string]struct {
			Type   string `json:"type"`
			Key    string `json:"key"`
			Access string `json:"access"`
		}
		if p := filepath.Join(home, ".local", "share", "opencode", "auth.json"); readJSON(p, &oc) {
			for prov, e := range oc {
				var c *Credential
				if e.Type == "oauth" {
					c = cred(prov, "opencode:"+p, "oauth", e.Access)
				} else {
					c = cred(prov, "opencode:"+p, "api_key", e.Key)
				}
				switch prov {
				case "anthropic":
					anth = append(anth, c)
				case "openai":
					oai = append(oai, c)
				default:
					if c != nil && (!o.NoOAuth || c.AuthType != "oauth") {
						out.Other[prov] = c
					}
				}
			}
		}
	}
	out.Anthropic = first(anth...)
	out.OpenAI = first(oai...)
	return out
}

// EnvLines renders credentials as KEY=value lines for a shell
// (`credentials extract-env`); export adds `export ` and shell quoting.
func (c Credentials) EnvLines(export bool) []string {
	var lines []string
	add := func(k, v string) {
		if export {
			lines = append(lines, "export "+k+"="+shellQuote(v))
		} else {
			lines = append(lines, k+"="+v)
		}
	}
	if a := c.Anthropic; a != nil {
		if a.AuthType == "oauth" {
			add("CLAUDE_CODE_OAUTH_TOKEN", a.APIKey)
		} else {
			add("ANTHROPIC_API_KEY", a.APIKey)
			add("CLAUDE_API_KEY", a.APIKey)
		}
	}
	if o := c.OpenAI; o != nil && o.AuthType == "api_key" {
		add("OPENAI_API_KEY", o.APIKey)
		add("CODEX_API_KEY", o.APIKey)
	}
	return lines
}

// Credentials discovers credentials from the agents' environment.
func (m *Manager) Credentials() Credentials {
	return DiscoverCredentials(CredentialOptions{Env: m.opts.Env})
}

// CredentialsAvailable reports whether the agent can find credentials
// (environment or its config files), as upstream's credentialsAvailable.
func (m *Manager) CredentialsAvailable(agent string) bool {
	spec, ok := Lookup(agent)
	if !ok {
		return false
	}
	if spec.CredentialsAlways {
		return true
	}
	c := m.Credentials()
	switch agent {
	case "claude", "amp":
		return c.Anthropic != nil
	case "codex":
		return c.OpenAI != nil
	case "opencode":
		return c.Anthropic != nil || c.OpenAI != nil || len(c.Other) > 0
	}
	return false
}
