package e2b

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"

	sandboxagent "github.com/sandbox-agent-go/sandbox-agent"
	"github.com/sandbox-agent-go/sandbox-agent/provider/internal/remote"
)

// sandboxInfo is E2B's Sandbox object, as create and connect return it:
// what reaching the sandbox takes.
type sandboxInfo struct {
	SandboxID          string `json:"sandboxID"`
	TemplateID         string `json:"templateID,omitempty"`
	ClientID           string `json:"clientID,omitempty"`
	EnvdVersion        string `json:"envdVersion,omitempty"`
	EnvdAccessToken    string `json:"envdAccessToken,omitempty"`
	TrafficAccessToken string `json:"trafficAccessToken,omitempty"`
	Domain             string `json:"domain,omitempty"`
}

// newSandbox is the create body (E2B's NewSandbox).
type newSandbox struct {
	TemplateID string `json:"templateID"`
	// Timeout in seconds.
	Timeout   int  `json:"timeout"`
	AutoPause bool `json:"autoPause"`
	// Secure makes envd require the envdAccessToken: without it anyone
	// who guesses the envd URL could run commands.
	Secure   bool              `json:"secure"`
	Network  *network          `json:"network,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
	EnvVars  map[string]string `json:"envVars,omitempty"`
}

type network struct {
	AllowPublicTraffic bool `json:"allowPublicTraffic"`
}

// apiError decodes E2B's error body {"code":int,"message":str,
// "error_code"?:str} (the API's and envd's).
func apiError(_ int, body []byte) (code, message string) {
	var e struct {
		Code      json.RawMessage `json:"code"`
		Message   string          `json:"message"`
		ErrorCode string          `json:"error_code"`
	}
	if json.Unmarshal(body, &e) != nil {
		return "", ""
	}
	return e.ErrorCode, e.Message
}

func sandboxPath(id string, rest ...string) string {
	p := "/sandboxes/" + url.PathEscape(id)
	for _, r := range rest {
		p += "/" + r
	}
	return p
}

func (p *Provider) createSandbox(ctx context.Context) (sandboxInfo, error) {
	body := newSandbox{TemplateID: p.o.Template, Timeout: p.o.timeoutSeconds(), AutoPause: !p.o.KillOnTimeout,
		Secure: true, Metadata: p.o.Metadata, EnvVars: p.o.Env}
	if p.o.Private {
		body.Network = &network{AllowPublicTraffic: false}
	}
	var sb sandboxInfo
	_, err := p.api.JSON(ctx, apiRequest("create sandbox", http.MethodPost, "/sandboxes", body), &sb)
	if err == nil && sb.SandboxID == "" {
		err = errors.New("e2b: create sandbox: the answer has no sandboxID")
	}
	return sb, err
}

// connect resumes a paused sandbox (201) or extends a running one's
// timeout (200), and returns how to reach it.
func (p *Provider) connect(ctx context.Context, id string) (sandboxInfo, error) {
	var sb sandboxInfo
	_, err := p.api.JSON(ctx, apiRequest("connect to sandbox "+id, http.MethodPost, sandboxPath(id, "connect"),
		map[string]int{"timeout": p.o.timeoutSeconds()}), &sb)
	if err != nil {
		return sb, p.destroyed(id, err)
	}
	if sb.SandboxID == "" {
		sb.SandboxID = id
	}
	return sb, nil
}

// deleteSandbox deletes the sandbox; one already gone is not an error.
func (p *Provider) deleteSandbox(ctx context.Context, id string) error {
	req := apiRequest("delete sandbox "+id, http.MethodDelete, sandboxPath(id), nil)
	req.OK = []int{http.StatusNotFound}
	_, err := p.api.JSON(ctx, req, nil)
	return err
}

// pauseSandbox pauses it with its memory; 409 is "already paused".
func (p *Provider) pauseSandbox(ctx context.Context, id string) error {
	req := apiRequest("pause sandbox "+id, http.MethodPost, sandboxPath(id, "pause"), nil)
	req.OK = []int{http.StatusConflict}
	_, err := p.api.JSON(ctx, req, nil)
	return p.destroyed(id, err)
}

// destroyed maps E2B's 404 to *sandboxagent.SandboxDestroyedError.
func (p *Provider) destroyed(id string, err error) error {
	var ae *sandboxagent.ProviderAPIError
	if errors.As(err, &ae) && ae.StatusCode == http.StatusNotFound {
		return &sandboxagent.SandboxDestroyedError{SandboxID: id, Provider: p.Name(), Cause: err}
	}
	return err
}

func apiRequest(op, method, path string, body any) remote.Request {
	return remote.Request{Op: op, Method: method, Path: path, Body: body}
}
