package daytona

import (
	"bytes"
	"context"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/provider/internal/remote"
)

// toolbox is one sandbox's toolbox API (the daemon on port 2280), reached
// through the vendor's toolbox proxy at {toolboxProxyUrl}/{sandboxId} with
// the API key. It implements remote.Sandbox.
type toolbox struct {
	api            *remote.API
	base           string
	commandTimeout time.Duration
}

var _ remote.Sandbox = (*toolbox)(nil)

func newToolbox(api *remote.API, sb sandbox, commandTimeout time.Duration) (*toolbox, error) {
	if sb.ToolboxProxyURL == "" {
		return nil, fmt.Errorf("daytona: sandbox %s has no toolboxProxyUrl", sb.ID)
	}
	return &toolbox{api: api, base: strings.TrimRight(sb.ToolboxProxyURL, "/") + "/" + url.PathEscape(sb.ID),
		commandTimeout: commandTimeout}, nil
}

type executeRequest struct {
	Command string `json:"command"`
	// Timeout in seconds. The daemon kills the command's process group at
	// the deadline; without one a command may run forever, so one is
	// always sent. The server outlives it: `daemon start` setsid's it into
	// its own session.
	Timeout int `json:"timeout"`
}

type executeResponse struct {
	ExitCode int    `json:"exitCode"`
	Result   string `json:"result"`
}

// Exec runs script with the daemon's shell, which reads the command from
// its standard input, so a multi-line script needs no quoting. The output
// is stdout and stderr merged, as the daemon returns it.
func (t *toolbox) Exec(ctx context.Context, script string) (remote.ExecResult, error) {
	timeout := t.commandTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(d))
	}
	secs := int((timeout + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	var res executeResponse
	_, err := t.api.JSON(ctx, remote.Request{Op: "execute command", Method: http.MethodPost,
		Path: t.base + "/process/execute", Body: executeRequest{Command: script, Timeout: secs}}, &res)
	if err != nil {
		return remote.ExecResult{}, err
	}
	return remote.ExecResult{ExitCode: res.ExitCode, Output: res.Result}, nil
}

// WriteFile uploads data with POST /files/upload?path= (multipart field
// "file"); the daemon creates the parent directories.
func (t *toolbox) WriteFile(ctx context.Context, path string, data []byte) error {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, err := mw.CreateFormFile("file", path[strings.LastIndexByte(path, '/')+1:])
	if err != nil {
		return err
	}
	if _, err := fw.Write(data); err != nil {
		return err
	}
	if err := mw.Close(); err != nil {
		return err
	}
	_, err = t.api.JSON(ctx, remote.Request{Op: "upload file", Method: http.MethodPost,
		Path: t.base + "/files/upload", Query: url.Values{"path": {path}},
		Body: body.Bytes(), ContentType: mw.FormDataContentType()}, nil)
	return err
}
