package vercel

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"time"

	sandboxagent "github.com/sandbox-agent-go/sandbox-agent"
	"github.com/sandbox-agent-go/sandbox-agent/provider/internal/remote"
)

// Wire shapes of the v2 API (@vercel/sandbox validators.ts); only the
// fields the provider reads.
type (
	sandboxJSON struct {
		Name             string `json:"name"`
		Persistent       bool   `json:"persistent"`
		Status           string `json:"status"`
		CurrentSessionID string `json:"currentSessionId"`
		Cwd              string `json:"cwd,omitempty"`
		Timeout          int64  `json:"timeout,omitempty"`
	}
	sessionJSON struct {
		ID        string `json:"id"`
		Status    string `json:"status"`
		Timeout   int64  `json:"timeout"` // ms
		Cwd       string `json:"cwd"`
		StartedAt int64  `json:"startedAt,omitempty"`
	}
	routeJSON struct {
		URL       string `json:"url"`
		Subdomain string `json:"subdomain"`
		Port      int    `json:"port"`
	}
	// sandboxAndSession answers create and get.
	sandboxAndSession struct {
		Sandbox sandboxJSON `json:"sandbox"`
		Session sessionJSON `json:"session"`
		Routes  []routeJSON `json:"routes"`
		Resumed bool        `json:"resumed"`
	}
)

// Vendor error codes the provider acts on (sandbox.ts error predicates).
const (
	codeNotFound       = "not_found"
	codeStopped        = "sandbox_stopped"
	codeStopping       = "sandbox_stopping"
	codeSnapshotting   = "sandbox_snapshotting"
	statusRunning      = "running"
	statusStopping     = "stopping"
	statusSnapshotting = "snapshotting"
)

// decodeError reads {"error":{"code","message"}}.
func decodeError(_ int, body []byte) (string, string) {
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil {
		return "", ""
	}
	return e.Error.Code, e.Error.Message
}

// apiCode returns the vendor's status and error code of err, if it is an
// API error.
func apiCode(err error) (int, string) {
	var ae *sandboxagent.ProviderAPIError
	if errors.As(err, &ae) {
		return ae.StatusCode, ae.Code
	}
	return 0, ""
}

func isNotFound(err error) bool {
	st, code := apiCode(err)
	return st == http.StatusNotFound && (code == codeNotFound || code == "")
}

func isStopped(err error) bool {
	st, code := apiCode(err)
	return st == http.StatusGone && code == codeStopped
}

func isStopping(err error) bool {
	st, code := apiCode(err)
	return st == http.StatusUnprocessableEntity && (code == codeStopping || code == codeSnapshotting)
}

// client is the control plane of one team and project.
type client struct {
	api       remote.API
	teamID    string
	projectID string
}

func newClient(o Options) *client {
	token := o.Token
	return &client{
		teamID: o.TeamID, projectID: o.ProjectID,
		api: remote.API{
			Provider: "vercel", BaseURL: o.APIURL, Client: o.HTTPClient, DecodeError: decodeError,
			Authorize: func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) },
		},
	}
}

// query adds ?teamId= (every request) to q.
func (c *client) query(q url.Values) url.Values {
	if q == nil {
		q = url.Values{}
	}
	q.Set("teamId", c.teamID)
	return q
}

func (c *client) sandboxPath(name string) string { return "/v2/sandboxes/" + url.PathEscape(name) }

func (c *client) sessionPath(sid, op string) string {
	return "/v2/sandboxes/sessions/" + url.PathEscape(sid) + "/" + op
}

// createBody is POST /v2/sandboxes (with a runtime) or /v3/sandboxes.
type createBody struct {
	ProjectID  string            `json:"projectId"`
	Name       string            `json:"name"`
	Ports      []int             `json:"ports"`
	Timeout    int64             `json:"timeout"` // ms
	Persistent bool              `json:"persistent"`
	Runtime    string            `json:"runtime,omitempty"`
	Image      string            `json:"image,omitempty"`
	Env        map[string]string `json:"env,omitempty"`
	Resources  *resources        `json:"resources,omitempty"`
}

type resources struct {
	VCPUs int `json:"vcpus"`
}

func (c *client) create(ctx context.Context, b createBody) (sandboxAndSession, error) {
	var out sandboxAndSession
	path := "/v3/sandboxes"
	if b.Runtime != "" {
		path = "/v2/sandboxes"
	}
	b.ProjectID = c.projectID
	_, err := c.api.JSON(ctx, remote.Request{Op: "create sandbox", Method: http.MethodPost, Path: path, Query: c.query(nil), Body: b}, &out)
	return out, err
}

// get reads a sandbox; with resume it starts a new session when the
// current one is not running.
func (c *client) get(ctx context.Context, name string, resume bool) (sandboxAndSession, error) {
	var out sandboxAndSession
	q := url.Values{"projectId": {c.projectID}}
	if resume {
		q.Set("resume", "true")
	}
	_, err := c.api.JSON(ctx, remote.Request{Op: "get sandbox " + name, Method: http.MethodGet, Path: c.sandboxPath(name), Query: c.query(q)}, &out)
	return out, err
}

// remove deletes a sandbox; one already gone is not an error.
func (c *client) remove(ctx context.Context, name string) error {
	_, err := c.api.JSON(ctx, remote.Request{Op: "delete sandbox " + name, Method: http.MethodDelete, Path: c.sandboxPath(name),
		Query: c.query(url.Values{"projectId": {c.projectID}}), OK: []int{http.StatusNotFound}}, nil)
	return err
}

func (c *client) stopSession(ctx context.Context, sid string) error {
	_, err := c.api.JSON(ctx, remote.Request{Op: "stop session " + sid, Method: http.MethodPost, Path: c.sessionPath(sid, "stop"), Query: c.query(nil)}, nil)
	return err
}

func (c *client) extendTimeout(ctx context.Context, sid string, d time.Duration) error {
	_, err := c.api.JSON(ctx, remote.Request{Op: "extend session timeout " + sid, Method: http.MethodPost, Path: c.sessionPath(sid, "extend-timeout"),
		Query: c.query(nil), Body: map[string]int64{"duration": d.Milliseconds()}}, nil)
	return err
}
