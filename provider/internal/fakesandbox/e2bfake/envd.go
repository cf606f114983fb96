//go:build unix

package e2bfake

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/provider/internal/fakesandbox"
)

func isGone(err error) bool {
	return errors.Is(err, fakesandbox.ErrNotFound) || errors.Is(err, fakesandbox.ErrNotRunning)
}

// envd serves one sandbox's envd: process.Process/Start and /files.
func (f *Fake) envd(w http.ResponseWriter, r *http.Request, id string, b *box) {
	if b == nil || b.sb.State() != fakesandbox.Running {
		// envd is a port like any other: a paused or deleted sandbox's is
		// the proxy's 502.
		notFound(w, id, EnvdPort, nil)
		return
	}
	if b.envdToken != "" && r.Header.Get("X-Access-Token") != b.envdToken {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"code": 401, "message": "unauthorized access, please provide a valid access token"})
		return
	}
	if f.o.OldEnvd && !namesUser(r) {
		writeJSON(w, http.StatusBadRequest, map[string]any{"code": 400, "message": "envd " + f.envdVersion() + " has no default user: name one"})
		return
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/process.Process/Start":
		f.start(w, r, b)
	case r.Method == http.MethodPost && r.URL.Path == "/files":
		f.upload(w, r, b)
	case r.Method == http.MethodGet && r.URL.Path == "/health":
		w.WriteHeader(http.StatusNoContent)
	default:
		writeJSON(w, http.StatusNotFound, map[string]any{"code": 404, "message": "not found: " + r.URL.Path})
	}
}

// namesUser: the request names a user, as old envd requires (the query's
// username for /files, Basic auth for RPCs).
func namesUser(r *http.Request) bool {
	if u := r.URL.Query().Get("username"); u == "user" || u == "root" {
		return true
	}
	u, _, ok := r.BasicAuth()
	return ok && (u == "user" || u == "root")
}

type startRequest struct {
	Process struct {
		Cmd  string            `json:"cmd"`
		Args []string          `json:"args"`
		Envs map[string]string `json:"envs"`
		Cwd  string            `json:"cwd"`
	} `json:"process"`
}

var portFlag = regexp.MustCompile(`--port ([0-9]+)\b`)

// start is process.Process/Start over Connect with JSON messages. As envd
// does, the process's life is bound only by Connect-Timeout-Ms (none: no
// deadline), never by the request: a client that closes the stream leaves
// it running.
func (f *Fake) start(w http.ResponseWriter, r *http.Request, b *box) {
	if ct := r.Header.Get("Content-Type"); ct != "application/connect+json" {
		writeJSON(w, http.StatusUnsupportedMediaType, map[string]any{"code": 415, "message": "content type " + ct})
		return
	}
	var req startRequest
	if err := readRequest(r.Body, &req); err != nil {
		endStream(w, "invalid_argument", err.Error())
		return
	}
	script, err := f.script(b, req.Process.Cmd, req.Process.Args)
	if err != nil {
		endStream(w, "invalid_argument", err.Error())
		return
	}
	var timeout time.Duration
	if v := r.Header.Get("Connect-Timeout-Ms"); v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms < 0 {
			endStream(w, "invalid_argument", "bad Connect-Timeout-Ms "+v)
			return
		}
		timeout = time.Duration(ms) * time.Millisecond
	}
	p, err := b.sb.Start(fakesandbox.Cmd{Command: script, Dir: req.Process.Cwd, Env: req.Process.Envs})
	if err != nil {
		notFound(w, b.sb.ID, EnvdPort, err)
		return
	}
	f.mu.Lock()
	b.execs = append(b.execs, Exec{Command: script, Header: r.Header.Clone(), Done: p.Done()})
	f.mu.Unlock()
	if timeout > 0 {
		go func() {
			t := time.NewTimer(timeout)
			defer t.Stop()
			select {
			case <-p.Done():
			case <-t.C:
				_ = p.Kill(r.Context()) // envd's procCtx deadline
			}
		}()
	}
	w.Header().Set("Content-Type", "application/connect+json")
	w.WriteHeader(http.StatusOK)
	writeFrame(w, 0, map[string]any{"event": map[string]any{"start": map[string]any{"pid": p.Pgid()}}})
	select {
	case <-p.Done():
	case <-r.Context().Done():
		return
	}
	res := p.Result()
	if bytes.Contains(res.Stdout, []byte("daemon started")) {
		f.mu.Lock()
		b.starts++
		f.mu.Unlock()
	}
	for _, d := range []struct {
		name string
		b    []byte
	}{{"stdout", res.Stdout}, {"stderr", res.Stderr}} {
		if len(d.b) > 0 {
			writeFrame(w, 0, map[string]any{"event": map[string]any{"data": map[string]any{d.name: d.b}}})
		}
	}
	end := map[string]any{"exited": res.ExitCode >= 0, "status": "exit status " + strconv.Itoa(res.ExitCode)}
	if res.ExitCode > 0 {
		end["exitCode"] = res.ExitCode // protojson omits the zero value
	}
	if res.ExitCode < 0 {
		end["status"] = "signal: killed"
		end["exitCode"] = -1
	}
	writeFrame(w, 0, map[string]any{"event": map[string]any{"end": end}})
	writeFrame(w, 2, map[string]any{})
}

// script is the shell command for cmd and args: the -c script of a shell
// (the SDK's /bin/bash -l -c), run with /bin/sh without a login profile,
// since this host's /etc/profile is not the sandbox's; anything else
// quoted. A logical --port (the provider's server) becomes the real one.
func (f *Fake) script(b *box, cmd string, args []string) (string, error) {
	if cmd == "" {
		return "", errors.New("process.cmd is required")
	}
	script := ""
	if strings.HasSuffix(cmd, "sh") {
		for i, a := range args {
			if a == "-c" && i+1 < len(args) {
				script = args[i+1]
			}
		}
	}
	if script == "" {
		q := []string{quote(cmd)}
		for _, a := range args {
			q = append(q, quote(a))
		}
		script = strings.Join(q, " ")
	}
	var err error
	script = portFlag.ReplaceAllStringFunc(script, func(m string) string {
		logical, _ := strconv.Atoi(portFlag.FindStringSubmatch(m)[1])
		real, perr := b.sb.Port(logical)
		if perr != nil {
			err = perr
			return m
		}
		return "--port " + strconv.Itoa(real)
	})
	return script, err
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// upload is envd's POST /files?path=: the multipart "file" part's content
// becomes the file, parents created, an existing file replaced.
func (f *Fake) upload(w http.ResponseWriter, r *http.Request, b *box) {
	p := r.URL.Query().Get("path")
	file, _, err := r.FormFile("file")
	if err != nil || p == "" {
		writeJSON(w, http.StatusBadRequest, map[string]any{"code": 400, "message": fmt.Sprintf("path and a multipart file are required: %v", err)})
		return
	}
	defer file.Close()
	data, err := io.ReadAll(file)
	if err == nil {
		err = b.sb.WriteFile(p, data, 0o644)
	}
	switch {
	case errors.Is(err, fakesandbox.ErrEscape):
		writeJSON(w, http.StatusBadRequest, map[string]any{"code": 400, "message": err.Error()})
	case err != nil:
		writeJSON(w, http.StatusInternalServerError, map[string]any{"code": 500, "message": err.Error()})
	default:
		name := p[strings.LastIndexByte(p, '/')+1:]
		writeJSON(w, http.StatusOK, []map[string]any{{"path": p, "name": name, "type": "file"}})
	}
}

// readRequest reads the one envelope of a server-streaming request.
func readRequest(r io.Reader, v any) error {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return fmt.Errorf("read envelope: %w", err)
	}
	n := binary.BigEndian.Uint32(h[1:])
	if h[0] != 0 || n > 1<<20 {
		return fmt.Errorf("bad envelope flags %#x length %d", h[0], n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return fmt.Errorf("read message: %w", err)
	}
	return json.Unmarshal(b, v)
}

func writeFrame(w http.ResponseWriter, flags byte, v any) {
	b, _ := json.Marshal(v)
	h := []byte{flags, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(h[1:], uint32(len(b)))
	_, _ = w.Write(append(h, b...))
	if fl, ok := w.(http.Flusher); ok {
		fl.Flush()
	}
}

// endStream answers a Connect error: HTTP 200 with an error end-frame.
func endStream(w http.ResponseWriter, code, msg string) {
	w.Header().Set("Content-Type", "application/connect+json")
	w.WriteHeader(http.StatusOK)
	writeFrame(w, 2, map[string]any{"error": map[string]any{"code": code, "message": msg}})
}
