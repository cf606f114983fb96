package daytona

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	sandboxagent "github.com/sandbox-agent-go/sandbox-agent"
	"github.com/sandbox-agent-go/sandbox-agent/provider/internal/remote"
)

// Sandbox states of the Daytona API (SandboxState) that the provider acts on.
const (
	stateStarted     = "started"
	stateStopped     = "stopped"
	stateArchived    = "archived"
	statePaused      = "paused"
	stateError       = "error"
	stateBuildFailed = "build_failed"
	stateDestroyed   = "destroyed"
	stateDestroying  = "destroying"
)

// sandbox is the part of the API's Sandbox object the provider reads.
type sandbox struct {
	ID               string `json:"id"`
	State            string `json:"state"`
	DesiredState     string `json:"desiredState"`
	ErrorReason      string `json:"errorReason"`
	ToolboxProxyURL  string `json:"toolboxProxyUrl"`
	AutoStopInterval *int   `json:"autoStopInterval"`
}

// createRequest is CreateSandbox. AutoStopInterval is always sent: left
// out, the vendor stops the sandbox after 15 idle minutes (and newer API
// versions default pausable classes to a 60-minute auto-pause).
type createRequest struct {
	Snapshot         string            `json:"snapshot,omitempty"`
	BuildInfo        *buildInfo        `json:"buildInfo,omitempty"`
	Env              map[string]string `json:"env,omitempty"`
	Labels           map[string]string `json:"labels,omitempty"`
	Public           bool              `json:"public"`
	Target           string            `json:"target,omitempty"`
	AutoStopInterval *int              `json:"autoStopInterval,omitempty"`
}

type buildInfo struct {
	DockerfileContent string `json:"dockerfileContent"`
}

// previewURL is both preview-url and signed-preview-url.
type previewURL struct {
	URL   string `json:"url"`
	Token string `json:"token"`
}

// controlPlane is the Daytona REST API.
type controlPlane struct {
	api *remote.API
}

func sandboxPath(id string, rest ...string) string {
	return "/sandbox/" + url.PathEscape(id) + strings.Join(rest, "")
}

// destroyed maps the API's 404 (lookups exclude destroyed sandboxes) to
// the SDK's error.
func destroyed(id string, err error) error {
	var ae *sandboxagent.ProviderAPIError
	if errors.As(err, &ae) && ae.StatusCode == http.StatusNotFound {
		return &sandboxagent.SandboxDestroyedError{SandboxID: id, Provider: Name, Cause: err}
	}
	return err
}

func isStatus(err error, status int) bool {
	var ae *sandboxagent.ProviderAPIError
	return errors.As(err, &ae) && ae.StatusCode == status
}

func (c *controlPlane) create(ctx context.Context, req createRequest) (sandbox, error) {
	var sb sandbox
	_, err := c.api.JSON(ctx, remote.Request{Op: "create sandbox", Method: http.MethodPost, Path: "/sandbox", Body: req}, &sb)
	if err == nil && sb.ID == "" {
		err = errors.New("daytona: create sandbox: the answer has no id")
	}
	return sb, err
}

func (c *controlPlane) get(ctx context.Context, id string) (sandbox, error) {
	var sb sandbox
	_, err := c.api.JSON(ctx, remote.Request{Op: "get sandbox", Method: http.MethodGet, Path: sandboxPath(id)}, &sb)
	if err == nil && (sb.State == stateDestroyed || sb.State == stateDestroying) {
		err = &sandboxagent.SandboxDestroyedError{SandboxID: id, Provider: Name}
	}
	return sb, destroyed(id, err)
}

func (c *controlPlane) lifecycle(ctx context.Context, id, op, verb string) error {
	_, err := c.api.JSON(ctx, remote.Request{Op: op, Method: http.MethodPost, Path: sandboxPath(id, "/"+verb)}, nil)
	return destroyed(id, err)
}

func (c *controlPlane) delete(ctx context.Context, id string) error {
	_, err := c.api.JSON(ctx, remote.Request{Op: "delete sandbox", Method: http.MethodDelete, Path: sandboxPath(id)}, nil)
	return destroyed(id, err)
}

func (c *controlPlane) preview(ctx context.Context, id string, port int, signedTTL time.Duration) (previewURL, error) {
	var p previewURL
	req := remote.Request{Op: "get preview URL", Method: http.MethodGet,
		Path: sandboxPath(id, "/ports/", strconv.Itoa(port), "/preview-url")}
	if signedTTL > 0 {
		req.Op = "get signed preview URL"
		req.Path = sandboxPath(id, "/ports/", strconv.Itoa(port), "/signed-preview-url")
		req.Query = url.Values{"expiresInSeconds": {strconv.Itoa(int(signedTTL / time.Second))}}
	}
	_, err := c.api.JSON(ctx, req, &p)
	if err == nil && p.URL == "" {
		err = fmt.Errorf("daytona: %s: the answer has no url", req.Op)
	}
	return p, destroyed(id, err)
}

// errorBody covers both error shapes: the API's NestJS filter
// ({statusCode, error, message}, message sometimes a list of validation
// errors) and the toolbox/proxy's Go one ({statusCode, code, message}).
type errorBody struct {
	Error   string          `json:"error"`
	Code    string          `json:"code"`
	Message json.RawMessage `json:"message"`
}

func decodeError(_ int, body []byte) (code, message string) {
	var e errorBody
	if json.Unmarshal(body, &e) != nil {
		return "", ""
	}
	code = e.Code
	if code == "" {
		code = e.Error
	}
	var s string
	var list []string
	switch {
	case json.Unmarshal(e.Message, &s) == nil:
		message = s
	case json.Unmarshal(e.Message, &list) == nil:
		message = strings.Join(list, "; ")
	}
	return code, message
}
