package sandboxagent

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
)

// AgentInfo describes one agent.
type AgentInfo struct {
	ID                   string          `json:"id"`
	Installed            bool            `json:"installed"`
	CredentialsAvailable bool            `json:"credentialsAvailable"`
	Version              string          `json:"version,omitempty"`
	Path                 string          `json:"path,omitempty"`
	Capabilities         map[string]bool `json:"capabilities,omitempty"`
	ConfigOptions        json.RawMessage `json:"configOptions,omitempty"`
	ConfigError          string          `json:"configError,omitempty"`
	ServerStatus         json.RawMessage `json:"serverStatus,omitempty"`
}

// AgentQuery is the query of the agent endpoints.
type AgentQuery struct {
	Config  bool // include version, path and configOptions
	NoCache bool
}

func (q AgentQuery) values() url.Values {
	v := url.Values{}
	if q.Config {
		v.Set("config", "true")
	}
	if q.NoCache {
		v.Set("no_cache", "true")
	}
	return v
}

// ListAgents lists every agent.
func (c *Client) ListAgents(ctx context.Context, q AgentQuery) ([]AgentInfo, error) {
	var r struct {
		Agents []AgentInfo `json:"agents"`
	}
	err := c.doJSON(ctx, request{method: http.MethodGet, path: "/agents", query: q.values()}, &r)
	return r.Agents, err
}

// GetAgent returns one agent; on 404 it falls back to the list, as upstream.
func (c *Client) GetAgent(ctx context.Context, id string, q AgentQuery) (AgentInfo, error) {
	var a AgentInfo
	err := c.doJSON(ctx, request{method: http.MethodGet, path: "/agents/" + url.PathEscape(id), query: q.values()}, &a)
	var e *Error
	if errors.As(err, &e) && e.Status == http.StatusNotFound {
		list, lerr := c.ListAgents(ctx, q)
		if lerr == nil {
			for _, x := range list {
				if x.ID == id {
					return x, nil
				}
			}
		}
	}
	return a, err
}

// InstallAgentRequest is the body of POST /v1/agents/{id}/install.
type InstallAgentRequest struct {
	Reinstall           bool   `json:"reinstall,omitempty"`
	AgentVersion        string `json:"agentVersion,omitempty"`
	AgentProcessVersion string `json:"agentProcessVersion,omitempty"`
}

// InstallAgentResponse is the answer of an install.
type InstallAgentResponse struct {
	AlreadyInstalled bool `json:"already_installed"`
	Artifacts        []struct {
		Kind    string `json:"kind"`
		Path    string `json:"path"`
		Source  string `json:"source"`
		Version string `json:"version,omitempty"`
	} `json:"artifacts"`
}

// InstallAgent installs an agent.
func (c *Client) InstallAgent(ctx context.Context, id string, req InstallAgentRequest) (InstallAgentResponse, error) {
	var r InstallAgentResponse
	err := c.doJSON(ctx, request{method: http.MethodPost, path: "/agents/" + url.PathEscape(id) + "/install", json: req}, &r)
	return r, err
}
