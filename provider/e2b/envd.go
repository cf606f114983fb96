package e2b

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/provider/internal/remote"
)

// envd is one sandbox's envd: commands through Connect-JSON
// process.Process/Start and uploads through its REST /files. It implements
// remote.Sandbox.
type envd struct {
	api *remote.API
	// commandTimeout becomes Connect-Timeout-Ms, envd's deadline for the
	// process, of every command except those unbounded reports true for.
	commandTimeout time.Duration
	unbounded      func(script string) bool
	// user is sent for envd older than 0.4.0, which has no default user.
	user string
}

// defaultUserSince is the envd version that runs as the template's user
// when none is named (E2B's SDKs: ENVD_DEFAULT_USER).
const defaultUserSince = "0.4.0"

// legacyUser is the user to name for an envd of the version, "" when it
// needs none (new or unknown: the SDKs assume new).
func legacyUser(envdVersion string) string {
	if envdVersion != "" && versionLess(envdVersion, defaultUserSince) {
		return "user"
	}
	return ""
}

// versionLess compares dotted numeric versions ("0.3.12" < "0.4.0").
func versionLess(a, b string) bool {
	as, bs := strings.Split(strings.TrimPrefix(a, "v"), "."), strings.Split(b, ".")
	for i := range max(len(as), len(bs)) {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}

var _ remote.Sandbox = (*envd)(nil)

// maxOutput bounds what Exec keeps of a command's output (its end: the
// bootstrap reports the tail of a failure).
const maxOutput = 1 << 20

type startRequest struct {
	Process processConfig `json:"process"`
	Stdin   bool          `json:"stdin"`
}

type processConfig struct {
	Cmd  string            `json:"cmd"`
	Args []string          `json:"args"`
	Envs map[string]string `json:"envs,omitempty"`
	Cwd  string            `json:"cwd,omitempty"`
}

// startResponse is one event of the Start stream (protojson: lowerCamel
// names, bytes in base64, zero values omitted).
type startResponse struct {
	Event struct {
		Start *struct {
			Pid uint32 `json:"pid"`
		} `json:"start"`
		Data *struct {
			Stdout []byte `json:"stdout"`
			Stderr []byte `json:"stderr"`
			Pty    []byte `json:"pty"`
		} `json:"data"`
		End *struct {
			ExitCode int    `json:"exitCode"`
			Exited   bool   `json:"exited"`
			Status   string `json:"status"`
			Error    string `json:"error"`
		} `json:"end"`
	} `json:"event"`
}

// Exec runs script with bash (as E2B's SDKs do: a login shell, so a
// template's profile sets PATH) and reads the stream to the end event.
func (e *envd) Exec(ctx context.Context, script string) (remote.ExecResult, error) {
	body, err := envelope(startRequest{Process: processConfig{Cmd: "/bin/bash", Args: []string{"-l", "-c", script}}})
	if err != nil {
		return remote.ExecResult{}, err
	}
	h := http.Header{
		"Connect-Protocol-Version": {"1"},
		// envd's keepalive keeps idle proxies from cutting a quiet command.
		"Keepalive-Ping-Interval": {"50"},
	}
	if e.user != "" {
		h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(e.user+":")))
	}
	// envd kills the process at Connect-Timeout-Ms, whatever the request
	// does; without it the process has no deadline and closing the stream
	// does not stop it. So the server's start must not carry one (it would
	// be the server's lifetime), and the other commands do, so a command
	// whose caller went away does not run on.
	if e.unbounded == nil || !e.unbounded(script) {
		d := e.commandTimeout
		if dl, ok := ctx.Deadline(); ok {
			d = min(d, time.Until(dl))
		}
		if d <= 0 {
			return remote.ExecResult{}, fmt.Errorf("e2b: exec: %w", context.DeadlineExceeded)
		}
		h.Set("Connect-Timeout-Ms", strconv.FormatInt(max(d.Milliseconds(), 1), 10))
	}
	resp, err := e.api.Open(ctx, remote.Request{Op: "exec", Method: http.MethodPost, Path: "/process.Process/Start",
		Header: h, Body: body, ContentType: "application/connect+json"})
	if err != nil {
		return remote.ExecResult{}, err
	}
	defer resp.Body.Close()
	var out bytes.Buffer
	keep := func(b []byte) {
		out.Write(b)
		if out.Len() > 2*maxOutput {
			out.Next(out.Len() - maxOutput)
		}
	}
	for {
		msg, err := readFrame(resp.Body)
		if errors.Is(err, io.EOF) {
			return remote.ExecResult{}, errors.New("e2b: exec: the stream ended without the process's end")
		}
		if err != nil {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			return remote.ExecResult{}, fmt.Errorf("e2b: exec: %w", err)
		}
		var ev startResponse
		if err := json.Unmarshal(msg, &ev); err != nil {
			return remote.ExecResult{}, fmt.Errorf("e2b: exec: decode event: %w", err)
		}
		switch {
		case ev.Event.Data != nil:
			keep(ev.Event.Data.Stdout)
			keep(ev.Event.Data.Stderr)
			keep(ev.Event.Data.Pty)
		case ev.Event.End != nil:
			end := ev.Event.End
			code := end.ExitCode
			if !end.Exited && code == 0 {
				code = -1 // killed by a signal: not a success
			}
			if end.Error != "" {
				keep([]byte("\n" + end.Error))
			}
			o := out.Bytes()
			if len(o) > maxOutput {
				o = o[len(o)-maxOutput:]
			}
			return remote.ExecResult{ExitCode: code, Output: string(o)}, nil
		}
	}
}

// WriteFile uploads data to the absolute path with envd's
// POST /files?path= (multipart field "file"), which creates the parent
// directories and replaces an existing file.
func (e *envd) WriteFile(ctx context.Context, p string, data []byte) error {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, err := mw.CreateFormFile("file", path.Base(p))
	if err != nil {
		return err
	}
	if _, err := fw.Write(data); err != nil {
		return err
	}
	if err := mw.Close(); err != nil {
		return err
	}
	var written []struct {
		Path string `json:"path"`
	}
	q := url.Values{"path": {p}}
	if e.user != "" {
		q.Set("username", e.user)
	}
	_, err = e.api.JSON(ctx, remote.Request{Op: "upload " + p, Method: http.MethodPost, Path: "/files",
		Query: q, Body: body.Bytes(), ContentType: mw.FormDataContentType()}, &written)
	return err
}
