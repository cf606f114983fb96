package sandboxagent

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
)

// The MCP and skills entries the server stores per directory
// (/v1/config/mcp, /v1/config/skills); not to be confused with a session's
// config options (sessionconfig.go).

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
