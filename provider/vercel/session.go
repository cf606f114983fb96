package vercel

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"path"
	"strings"

	"github.com/sandbox-agent-go/sandbox-agent/provider/internal/remote"
)

// uploadLevel compresses uploads. BestSpeed: most of what is uploaded is
// the sandbox-agent binary (16 MB, 9 MB at this level), where a better
// ratio costs far more CPU than it saves on the wire.
var uploadLevel = gzip.BestSpeed

// maxOutput bounds the output an Exec keeps (its end): bootstrap only
// reports the tail of a failure.
const maxOutput = 1 << 20

// cmdLine is one line of the NDJSON answer of POST …/cmd with wait:true:
// {"command":{…}} first and last (with exitCode), log lines
// {"stream":"stdout"|"stderr","data":"…"} between, or an error line
// {"stream":"error","data":{"code","message"}}.
type cmdLine struct {
	Command *struct {
		ID       string `json:"id"`
		ExitCode *int   `json:"exitCode"`
	} `json:"command"`
	Stream string          `json:"stream"`
	Data   json.RawMessage `json:"data"`
}

// StreamError is an error line of a command's output stream (the session
// stopped while the command ran, for example).
type StreamError struct {
	Code, Message string
}

func (e *StreamError) Error() string {
	return fmt.Sprintf("vercel: command stream error %s: %s", e.Code, e.Message)
}

// run runs script with sh -c in session sid and waits for it. The command
// starts from $HOME (the session's cwd is elsewhere, /vercel/sandbox),
// as remote.Sandbox promises.
func (c *client) run(ctx context.Context, sid, script string) (remote.ExecResult, error) {
	var res remote.ExecResult
	body := map[string]any{
		"command": "sh",
		"args":    []string{"-c", "cd \"$HOME\" || exit 1\n" + script},
		"env":     map[string]string{},
		"sudo":    false,
		"wait":    true,
		"logs":    true,
	}
	resp, err := c.api.Open(ctx, remote.Request{Op: "run command", Method: http.MethodPost, Path: c.sessionPath(sid, "cmd"),
		Query: c.query(nil), Body: body, Header: http.Header{"Accept": {"application/x-ndjson"}}})
	if err != nil {
		return res, err
	}
	defer resp.Body.Close()
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/x-ndjson" {
		return res, fmt.Errorf("vercel: run command: expected a stream of command data, got %q", resp.Header.Get("Content-Type"))
	}
	var out outputTail
	dec := json.NewDecoder(resp.Body)
	for first := true; ; first = false {
		var l cmdLine
		if err := dec.Decode(&l); err != nil {
			if ctx.Err() != nil {
				return res, fmt.Errorf("vercel: run command: %w", ctx.Err())
			}
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return res, fmt.Errorf("vercel: run command: the stream ended before the command finished: %w", err)
		}
		switch {
		case l.Command != nil:
			if !first && l.Command.ExitCode != nil {
				res.ExitCode, res.Output = *l.Command.ExitCode, out.String()
				return res, nil
			}
		case l.Stream == "stdout" || l.Stream == "stderr":
			var s string
			if err := json.Unmarshal(l.Data, &s); err != nil {
				return res, fmt.Errorf("vercel: run command: log line: %w", err)
			}
			out.WriteString(s)
		case l.Stream == "error":
			var e StreamError
			_ = json.Unmarshal(l.Data, &e)
			return res, &e
		}
	}
}

// outputTail keeps the last maxOutput bytes written.
type outputTail struct{ b []byte }

func (o *outputTail) WriteString(s string) {
	o.b = append(o.b, s...)
	if len(o.b) > 2*maxOutput {
		o.b = append(o.b[:0], o.b[len(o.b)-maxOutput:]...)
	}
}

func (o *outputTail) String() string {
	if len(o.b) > maxOutput {
		return string(o.b[len(o.b)-maxOutput:])
	}
	return string(o.b)
}

// writeFile uploads one file through POST …/fs/write: a gzipped tar whose
// entry names are relative to the x-cwd header (the SDK's writeFiles, with
// extractDir "/"), extracted with parent directories. The mode is 0600:
// the token file must never be readable by others, and bootstrap makes
// the binary executable itself after checking its sha256.
func (c *client) writeFile(ctx context.Context, sid, p string, data []byte) error {
	if !path.IsAbs(p) {
		return fmt.Errorf("vercel: write %q: not an absolute path", p)
	}
	var buf bytes.Buffer
	gz, _ := gzip.NewWriterLevel(&buf, uploadLevel)
	tw := tar.NewWriter(gz)
	name := strings.TrimPrefix(path.Clean(p), "/")
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
		return fmt.Errorf("vercel: write %s: %w", p, err)
	}
	if _, err := tw.Write(data); err != nil {
		return fmt.Errorf("vercel: write %s: %w", p, err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("vercel: write %s: %w", p, err)
	}
	if err := gz.Close(); err != nil {
		return fmt.Errorf("vercel: write %s: %w", p, err)
	}
	_, err := c.api.JSON(ctx, remote.Request{Op: "write file " + p, Method: http.MethodPost, Path: c.sessionPath(sid, "fs/write"),
		Query: c.query(nil), Header: http.Header{"X-Cwd": {"/"}}, Body: buf.Bytes(), ContentType: "application/gzip"}, nil)
	return err
}
