//go:build unix

package daytonafake

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/provider/internal/fakesandbox"
)

func (f *Fake) toolboxRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /toolbox/{id}/process/execute", f.toolbox(f.execute))
	mux.HandleFunc("POST /toolbox/{id}/files/upload", f.toolbox(f.upload))
}

// toolbox checks the bearer and that the sandbox runs, as the toolbox
// proxy does, and calls h without f.mu held (commands take time).
func (f *Fake) toolbox(h func(w http.ResponseWriter, r *http.Request, b *box)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !f.authorized(r) {
			goError(w, r, http.StatusUnauthorized, "unauthorized")
			return
		}
		id := r.PathValue("id")
		f.mu.Lock()
		b := f.boxes[id]
		state := ""
		if b != nil {
			state = b.state
		}
		f.mu.Unlock()
		switch {
		case b == nil:
			goError(w, r, http.StatusNotFound, "sandbox not found")
		case state != "started":
			goError(w, r, http.StatusBadRequest, "bad request: sandbox is not running (state "+state+")")
		default:
			h(w, r, b)
		}
	}
}

var portFlag = regexp.MustCompile(`--port (\d+)\b`)

// rewritePorts replaces each logical port the command listens on with the
// real loopback port behind it: there is no network namespace in the fake.
func rewritePorts(sb *fakesandbox.Sandbox, cmd string) (string, error) {
	var err error
	out := portFlag.ReplaceAllStringFunc(cmd, func(m string) string {
		logical, _ := strconv.Atoi(portFlag.FindStringSubmatch(m)[1])
		real, perr := sb.Port(logical)
		if perr != nil {
			err = perr
			return m
		}
		return "--port " + strconv.Itoa(real)
	})
	return out, err
}

func (f *Fake) execute(w http.ResponseWriter, r *http.Request, b *box) {
	var req struct {
		Command string            `json:"command"`
		Cwd     string            `json:"cwd"`
		Envs    map[string]string `json:"envs"`
		Timeout int               `json:"timeout"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Command == "" {
		goError(w, r, http.StatusBadRequest, "command is required")
		return
	}
	cmd, err := rewritePorts(b.sb, req.Command)
	if err != nil {
		goError(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	ctx := r.Context()
	if req.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(req.Timeout)*time.Second)
		defer cancel()
	}
	// The daemon pipes the command into the shell's standard input.
	res, err := b.sb.Run(ctx, fakesandbox.Cmd{Command: "exec /bin/sh", Dir: req.Cwd, Env: req.Envs, Stdin: strings.NewReader(cmd)})
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		goError(w, r, http.StatusRequestTimeout, "command execution timeout")
		return
	case err != nil:
		writeJSON(w, map[string]any{"exitCode": -1, "result": err.Error()})
		return
	}
	out := string(res.Stdout) + string(res.Stderr)
	if strings.Contains(out, "daemon started (PID") {
		f.mu.Lock()
		f.starts[b.id]++
		f.mu.Unlock()
	}
	writeJSON(w, map[string]any{"exitCode": res.ExitCode, "result": out})
}

func (f *Fake) upload(w http.ResponseWriter, r *http.Request, b *box) {
	path := r.URL.Query().Get("path")
	if path == "" {
		goError(w, r, http.StatusBadRequest, "path is required")
		return
	}
	file, _, err := r.FormFile("file")
	if err != nil {
		goError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	defer file.Close()
	if r.MultipartForm != nil {
		defer r.MultipartForm.RemoveAll()
	}
	data, err := io.ReadAll(file)
	if err != nil {
		goError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	if err := b.sb.WriteFile(path, data, 0o644); err != nil {
		goError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	w.WriteHeader(http.StatusOK)
}
