package mcpconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// fieldError is a decoding error whose text names the offending field, in
// the spirit of serde's messages ("type: unknown variant ...").
type fieldError struct{ msg string }

func (e *fieldError) Error() string { return e.msg }

func missing(name string) error { return &fieldError{fmt.Sprintf("missing field `%s`", name)} }

// isNull reports an absent or JSON-null raw value.
func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || bytes.Equal(t, []byte("null"))
}

// McpServer is one MCP server entry, normalised: Local or Remote is set.
// It decodes upstream's internally tagged McpServerConfig (aliases "stdio"
// and "http" accepted, unknown fields dropped) and encodes with the
// canonical type name and upstream's field order.
type McpServer struct {
	Local  *LocalServer
	Remote *RemoteServer
}

// LocalServer is a "local" (stdio) MCP server.
type LocalServer struct {
	Type      string             `json:"type"`
	Command   json.RawMessage    `json:"command"` // a string or an array of strings
	Args      []string           `json:"args"`    // always present, [] when absent
	Env       *map[string]string `json:"env,omitempty"`
	Enabled   *bool              `json:"enabled,omitempty"`
	TimeoutMs *uint64            `json:"timeoutMs,omitempty"`
	Cwd       *string            `json:"cwd,omitempty"`
}

// RemoteServer is a "remote" (HTTP) MCP server.
type RemoteServer struct {
	Type              string             `json:"type"`
	URL               string             `json:"url"`
	Headers           *map[string]string `json:"headers,omitempty"`
	BearerTokenEnvVar *string            `json:"bearerTokenEnvVar,omitempty"`
	EnvHeaders        *map[string]string `json:"envHeaders,omitempty"`
	OAuth             json.RawMessage    `json:"oauth,omitempty"` // object or boolean
	Enabled           *bool              `json:"enabled,omitempty"`
	TimeoutMs         *uint64            `json:"timeoutMs,omitempty"`
	Transport         *string            `json:"transport,omitempty"`
}

type oauthConfig struct {
	ClientID     *string `json:"clientId,omitempty"`
	ClientSecret *string `json:"clientSecret,omitempty"`
	Scope        *string `json:"scope,omitempty"`
}

// UnmarshalJSON decodes and normalises one entry.
func (m *McpServer) UnmarshalJSON(data []byte) error {
	var head struct {
		Type *string `json:"type"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return err
	}
	if head.Type == nil {
		return missing("type")
	}
	switch *head.Type {
	case "local", "stdio":
		var in struct {
			Command   json.RawMessage    `json:"command"`
			Args      []string           `json:"args"`
			Env       *map[string]string `json:"env"`
			Enabled   *bool              `json:"enabled"`
			TimeoutMs *uint64            `json:"timeoutMs"`
			Cwd       *string            `json:"cwd"`
		}
		if err := json.Unmarshal(data, &in); err != nil {
			return err
		}
		cmd, err := normaliseCommand(in.Command)
		if err != nil {
			return err
		}
		if in.Args == nil {
			in.Args = []string{}
		}
		*m = McpServer{Local: &LocalServer{Type: "local", Command: cmd, Args: in.Args, Env: in.Env,
			Enabled: in.Enabled, TimeoutMs: in.TimeoutMs, Cwd: in.Cwd}}
	case "remote", "http":
		var in struct {
			URL               *string            `json:"url"`
			Headers           *map[string]string `json:"headers"`
			BearerTokenEnvVar *string            `json:"bearerTokenEnvVar"`
			EnvHeaders        *map[string]string `json:"envHeaders"`
			OAuth             json.RawMessage    `json:"oauth"`
			Enabled           *bool              `json:"enabled"`
			TimeoutMs         *uint64            `json:"timeoutMs"`
			Transport         *string            `json:"transport"`
		}
		if err := json.Unmarshal(data, &in); err != nil {
			return err
		}
		if in.URL == nil {
			return missing("url")
		}
		oauth, err := normaliseOAuth(in.OAuth)
		if err != nil {
			return err
		}
		*m = McpServer{Remote: &RemoteServer{Type: "remote", URL: *in.URL, Headers: in.Headers,
			BearerTokenEnvVar: in.BearerTokenEnvVar, EnvHeaders: in.EnvHeaders, OAuth: oauth,
			Enabled: in.Enabled, TimeoutMs: in.TimeoutMs, Transport: in.Transport}}
	default:
		return &fieldError{fmt.Sprintf("type: unknown variant `%s`, expected one of `local`, `stdio`, `http`, `remote`", *head.Type)}
	}
	return nil
}

// MarshalJSON encodes the normalised entry.
func (m McpServer) MarshalJSON() ([]byte, error) {
	switch {
	case m.Local != nil:
		return marshal(m.Local)
	case m.Remote != nil:
		return marshal(m.Remote)
	}
	return nil, errors.New("empty MCP server config")
}

// marshal encodes v without HTML escaping (the stored file keeps "<", ">"
// and "&" literal, as serde writes them).
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func normaliseCommand(raw json.RawMessage) (json.RawMessage, error) {
	if isNull(raw) {
		return nil, missing("command")
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return marshal(s)
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err == nil && list != nil {
		return marshal(list)
	}
	return nil, &fieldError{"command: data did not match any variant of untagged enum McpCommand (expected a string or an array of strings)"}
}

func normaliseOAuth(raw json.RawMessage) (json.RawMessage, error) {
	if isNull(raw) {
		return nil, nil
	}
	var b bool
	if err := json.Unmarshal(raw, &b); err == nil {
		return marshal(b)
	}
	var o oauthConfig
	if bytes.HasPrefix(bytes.TrimSpace(raw), []byte("{")) {
		if err := json.Unmarshal(raw, &o); err != nil {
			return nil, err
		}
		return marshal(o)
	}
	return nil, &fieldError{"oauth: data did not match any variant of untagged enum McpOAuthConfigOrToggle (expected an object or a boolean)"}
}

// SkillsConfig is one skills entry: its sources, in order.
type SkillsConfig struct {
	Sources []SkillSource `json:"sources"`
}

// SkillSource is one place skills come from.
type SkillSource struct {
	Type    string    `json:"type"`
	Source  string    `json:"source"`
	Skills  *[]string `json:"skills,omitempty"`
	Ref     *string   `json:"ref,omitempty"`
	Subpath *string   `json:"subpath,omitempty"`
}

// UnmarshalJSON decodes a skills entry, enforcing the required fields.
func (s *SkillsConfig) UnmarshalJSON(data []byte) error {
	var in struct {
		Sources *[]struct {
			Type    *string   `json:"type"`
			Source  *string   `json:"source"`
			Skills  *[]string `json:"skills"`
			Ref     *string   `json:"ref"`
			Subpath *string   `json:"subpath"`
		} `json:"sources"`
	}
	if err := json.Unmarshal(data, &in); err != nil {
		return err
	}
	if in.Sources == nil {
		return missing("sources")
	}
	out := SkillsConfig{Sources: make([]SkillSource, 0, len(*in.Sources))}
	for _, src := range *in.Sources {
		if src.Type == nil {
			return missing("type")
		}
		if src.Source == nil {
			return missing("source")
		}
		out.Sources = append(out.Sources, SkillSource{Type: *src.Type, Source: *src.Source,
			Skills: src.Skills, Ref: src.Ref, Subpath: src.Subpath})
	}
	*s = out
	return nil
}
