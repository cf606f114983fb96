package sandboxagent

import (
	"context"
	"net/http"
	"net/url"
)

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
