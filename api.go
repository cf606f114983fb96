package sandboxagent

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
)

// HealthResponse is GET /v1/health.
type HealthResponse struct {
	Status string `json:"status"`
}

// GetHealth checks the server directly (it bypasses the health gate).
func (c *Client) GetHealth(ctx context.Context) (HealthResponse, error) {
	var h HealthResponse
	err := c.doJSON(ctx, request{method: http.MethodGet, path: "/health", noGate: true}, &h)
	return h, err
}

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

// AcpServerInfo is one running ACP server.
type AcpServerInfo struct {
	ServerID    string `json:"serverId"`
	Agent       string `json:"agent"`
	CreatedAtMs int64  `json:"createdAtMs"`
}

// ListAcpServers lists the server's ACP servers.
func (c *Client) ListAcpServers(ctx context.Context) ([]AcpServerInfo, error) {
	var r struct {
		Servers []AcpServerInfo `json:"servers"`
	}
	err := c.doJSON(ctx, request{method: http.MethodGet, path: "/acp"}, &r)
	return r.Servers, err
}

// DeleteAcpServer removes an ACP server and stops its agent.
func (c *Client) DeleteAcpServer(ctx context.Context, serverID string) error {
	return c.doJSON(ctx, request{method: http.MethodDelete, path: "/acp/" + url.PathEscape(serverID)}, nil)
}

// FsEntry is one directory entry or stat result.
type FsEntry struct {
	Name      string `json:"name,omitempty"`
	Path      string `json:"path"`
	EntryType string `json:"entryType"` // "file" or "directory"
	Size      int64  `json:"size"`
	Modified  string `json:"modified,omitempty"`
}

func pathQuery(p string) url.Values {
	v := url.Values{}
	if p != "" {
		v.Set("path", p)
	}
	return v
}

// ListEntries lists a directory (relative paths resolve against $HOME).
func (c *Client) ListEntries(ctx context.Context, path string) ([]FsEntry, error) {
	var r []FsEntry
	err := c.doJSON(ctx, request{method: http.MethodGet, path: "/fs/entries", query: pathQuery(path)}, &r)
	return r, err
}

// ReadFile streams a file's bytes into w and returns the count.
func (c *Client) ReadFile(ctx context.Context, path string, w io.Writer) (int64, error) {
	resp, err := c.do(ctx, request{method: http.MethodGet, path: "/fs/file", query: pathQuery(path), accept: "application/octet-stream"})
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return io.Copy(w, resp.Body)
}

// WriteFileResponse is the answer of WriteFile.
type WriteFileResponse struct {
	Path         string `json:"path"`
	BytesWritten int64  `json:"bytesWritten"`
}

// WriteFile streams r into a file (parents are created).
func (c *Client) WriteFile(ctx context.Context, path string, r io.Reader) (WriteFileResponse, error) {
	var out WriteFileResponse
	err := c.doJSON(ctx, request{method: http.MethodPut, path: "/fs/file", query: pathQuery(path), body: r, ctype: "application/octet-stream"}, &out)
	return out, err
}

// Stat describes a path (symlinks followed).
func (c *Client) Stat(ctx context.Context, path string) (FsEntry, error) {
	var r FsEntry
	err := c.doJSON(ctx, request{method: http.MethodGet, path: "/fs/stat", query: pathQuery(path)}, &r)
	return r, err
}

// Mkdir creates a directory and its parents; it returns the absolute path.
func (c *Client) Mkdir(ctx context.Context, path string) (string, error) {
	var r struct {
		Path string `json:"path"`
	}
	err := c.doJSON(ctx, request{method: http.MethodPost, path: "/fs/mkdir", query: pathQuery(path)}, &r)
	return r.Path, err
}

// Move renames from to to; overwrite replaces an existing destination.
func (c *Client) Move(ctx context.Context, from, to string, overwrite bool) error {
	body := map[string]any{"from": from, "to": to}
	if overwrite {
		body["overwrite"] = true
	}
	return c.doJSON(ctx, request{method: http.MethodPost, path: "/fs/move", json: body}, nil)
}

// DeleteEntry removes a file or directory (recursive for non-empty ones).
func (c *Client) DeleteEntry(ctx context.Context, path string, recursive bool) error {
	q := pathQuery(path)
	if recursive {
		q.Set("recursive", "true")
	}
	return c.doJSON(ctx, request{method: http.MethodDelete, path: "/fs/entry", query: q}, nil)
}

// UploadBatchResponse is the answer of UploadBatch.
type UploadBatchResponse struct {
	Paths     []string `json:"paths"`
	Truncated bool     `json:"truncated"`
}

// UploadBatch extracts an uncompressed tar stream under dir.
func (c *Client) UploadBatch(ctx context.Context, dir string, tar io.Reader) (UploadBatchResponse, error) {
	var r UploadBatchResponse
	err := c.doJSON(ctx, request{method: http.MethodPost, path: "/fs/upload-batch", query: pathQuery(dir), body: tar, ctype: "application/x-tar"}, &r)
	return r, err
}

func configQuery(dir, key, name string) url.Values {
	return url.Values{"directory": {dir}, key: {name}}
}

// GetMcpConfig returns the MCP server entry name stored for directory.
func (c *Client) GetMcpConfig(ctx context.Context, directory, name string) (json.RawMessage, error) {
	var r json.RawMessage
	err := c.doJSON(ctx, request{method: http.MethodGet, path: "/config/mcp", query: configQuery(directory, "mcpName", name)}, &r)
	return r, err
}

// SetMcpConfig stores an MCP server entry (any JSON-encodable value).
func (c *Client) SetMcpConfig(ctx context.Context, directory, name string, cfg any) error {
	return c.doJSON(ctx, request{method: http.MethodPut, path: "/config/mcp", query: configQuery(directory, "mcpName", name), json: cfg}, nil)
}

// DeleteMcpConfig removes an MCP server entry.
func (c *Client) DeleteMcpConfig(ctx context.Context, directory, name string) error {
	return c.doJSON(ctx, request{method: http.MethodDelete, path: "/config/mcp", query: configQuery(directory, "mcpName", name)}, nil)
}

// GetSkillsConfig returns the skills entry name stored for directory.
func (c *Client) GetSkillsConfig(ctx context.Context, directory, name string) (json.RawMessage, error) {
	var r json.RawMessage
	err := c.doJSON(ctx, request{method: http.MethodGet, path: "/config/skills", query: configQuery(directory, "skillName", name)}, &r)
	return r, err
}

// SetSkillsConfig stores a skills entry.
func (c *Client) SetSkillsConfig(ctx context.Context, directory, name string, cfg any) error {
	return c.doJSON(ctx, request{method: http.MethodPut, path: "/config/skills", query: configQuery(directory, "skillName", name), json: cfg}, nil)
}

// DeleteSkillsConfig removes a skills entry.
func (c *Client) DeleteSkillsConfig(ctx context.Context, directory, name string) error {
	return c.doJSON(ctx, request{method: http.MethodDelete, path: "/config/skills", query: configQuery(directory, "skillName", name)}, nil)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
