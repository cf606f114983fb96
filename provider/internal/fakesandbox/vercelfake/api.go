//go:build unix

package vercelfake

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/provider/internal/fakesandbox"
	"github.com/sandbox-agent-go/sandbox-agent/provider/internal/remote"
)

func isErr(err, target error) bool { return errors.Is(err, target) }

func (f *Fake) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v3/sandboxes", f.create)
	mux.HandleFunc("POST /v2/sandboxes", f.create)
	mux.HandleFunc("GET /v2/sandboxes/{name}", f.get)
	mux.HandleFunc("DELETE /v2/sandboxes/{name}", f.delete)
	mux.HandleFunc("POST /v2/sandboxes/sessions/{sid}/cmd", f.session(f.running(f.cmd)))
	mux.HandleFunc("POST /v2/sandboxes/sessions/{sid}/fs/write", f.session(f.running(f.write)))
	mux.HandleFunc("POST /v2/sandboxes/sessions/{sid}/stop", f.session(f.stopSession))
	mux.HandleFunc("POST /v2/sandboxes/sessions/{sid}/extend-timeout", f.session(f.running(f.extend)))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		apiError(w, http.StatusNotFound, "not_found", "No route for "+r.Method+" "+r.URL.Path)
	})
	return mux
}

// auth checks the Bearer token and the team of every request.
func (f *Fake) auth(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+f.o.Token {
			apiError(w, http.StatusForbidden, "forbidden", "Not authorized")
			return
		}
		switch team := r.URL.Query().Get("teamId"); team {
		case "":
			apiError(w, http.StatusBadRequest, "bad_request", "teamId is required")
			return
		case f.o.TeamID:
		default:
			apiError(w, http.StatusForbidden, "forbidden", "You don't have access to team "+team)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (f *Fake) checkProject(w http.ResponseWriter, id string) bool {
	if id != f.o.ProjectID {
		apiError(w, http.StatusNotFound, "not_found", "Project not found: "+id)
		return false
	}
	return true
}

type createBody struct {
	ProjectID  string            `json:"projectId"`
	Name       string            `json:"name"`
	Ports      []int             `json:"ports"`
	Timeout    *int64            `json:"timeout"`
	Persistent *bool             `json:"persistent"`
	Runtime    string            `json:"runtime"`
	Image      string            `json:"image"`
	Env        map[string]string `json:"env"`
}

var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_-]{0,99}$`)

func (f *Fake) create(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		apiError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	var b createBody
	var m map[string]any
	if json.Unmarshal(raw, &b) != nil || json.Unmarshal(raw, &m) != nil {
		apiError(w, http.StatusBadRequest, "bad_request", "invalid JSON body")
		return
	}
	if !f.checkProject(w, b.ProjectID) {
		return
	}
	if r.URL.Path == "/v2/sandboxes" && b.Runtime == "" {
		apiError(w, http.StatusBadRequest, "bad_request", "runtime is required on /v2/sandboxes")
		return
	}
	timeout := defaultTimeout.Milliseconds()
	if b.Timeout != nil {
		timeout = *b.Timeout
	}
	if f.o.MaxTimeout > 0 && timeout > f.o.MaxTimeout.Milliseconds() {
		apiError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("timeout %d ms exceeds the plan's maximum", timeout))
		return
	}
	f.mu.Lock()
	f.seq++
	if b.Name == "" {
		b.Name = fmt.Sprintf("sandbox-%06d", f.seq)
	}
	_, exists := f.sandboxes[b.Name]
	f.mu.Unlock()
	if !validName.MatchString(b.Name) {
		apiError(w, http.StatusBadRequest, "bad_request", "invalid sandbox name")
		return
	}
	if exists {
		apiError(w, http.StatusConflict, "conflict", "A sandbox named "+b.Name+" already exists")
		return
	}
	box, err := fakesandbox.New(f.dir, fakesandbox.Options{ID: b.Name, Home: Home, Env: b.Env})
	if err == nil {
		err = mkdirAll(box, Cwd)
	}
	for _, p := range b.Ports {
		if err == nil {
			_, err = box.Port(p)
		}
	}
	if err != nil {
		apiError(w, http.StatusInternalServerError, "internal_error", err.Error())
		return
	}
	sb := &sandbox{name: b.Name, box: box, ports: b.Ports, timeout: timeout, persistent: b.Persistent == nil || *b.Persistent,
		runtime: b.Runtime, image: b.Image, createdAt: nowMS()}
	f.mu.Lock()
	f.creates = append(f.creates, m)
	f.sandboxes[b.Name], f.all[b.Name] = sb, sb
	s := f.startSessionLocked(sb)
	payload := f.payloadLocked(sb, s, false)
	f.mu.Unlock()
	writeJSON(w, http.StatusOK, payload)
}

// startSessionLocked starts a new session of sb with its timer.
func (f *Fake) startSessionLocked(sb *sandbox) *session {
	f.seq++
	s := &session{id: fmt.Sprintf("sbx_sess_%06d", f.seq), sb: sb, status: "running", timeout: sb.timeout, startedAt: nowMS()}
	s.timer = time.AfterFunc(time.Duration(s.timeout)*time.Millisecond, func() { _ = f.stop(s, "stopped") })
	sb.cur = s
	sb.sessions++
	f.sessions[s.id] = s
	return s
}

// stop ends a running session: status (stopped, or stopping for a held
// stop), its timer off, its processes killed and waited for.
func (f *Fake) stop(s *session, status string) error {
	f.mu.Lock()
	if s.status != "running" {
		f.mu.Unlock()
		return nil
	}
	s.status = status
	if status == "stopped" {
		s.stoppedAt = nowMS()
	}
	s.timer.Stop()
	box := s.sb.box
	f.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := box.Pause(ctx, fakesandbox.Kill)
	if errors.Is(err, fakesandbox.ErrNotRunning) || errors.Is(err, fakesandbox.ErrNotFound) {
		err = nil
	}
	return err
}

func (f *Fake) get(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !f.checkProject(w, r.URL.Query().Get("projectId")) {
		return
	}
	f.mu.Lock()
	sb, ok := f.sandboxes[name]
	if !ok {
		f.mu.Unlock()
		apiError(w, http.StatusNotFound, "not_found", "Sandbox not found: "+name)
		return
	}
	resumed := false
	if r.URL.Query().Get("resume") == "true" {
		switch sb.cur.status {
		case "stopped", "failed", "aborted":
			// The filesystem is kept (persistent) and nothing runs.
			if err := sb.box.Resume(); err != nil {
				f.mu.Unlock()
				apiError(w, http.StatusInternalServerError, "internal_error", err.Error())
				return
			}
			f.startSessionLocked(sb)
			resumed = true
		}
	}
	payload := f.payloadLocked(sb, sb.cur, resumed)
	f.mu.Unlock()
	writeJSON(w, http.StatusOK, payload)
}

func (f *Fake) delete(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !f.checkProject(w, r.URL.Query().Get("projectId")) {
		return
	}
	f.mu.Lock()
	sb, ok := f.sandboxes[name]
	var payload map[string]any
	if ok {
		payload = map[string]any{"sandbox": f.sandboxPayloadLocked(sb, sb.cur)}
	}
	f.mu.Unlock()
	if !ok {
		apiError(w, http.StatusNotFound, "not_found", "Sandbox not found: "+name)
		return
	}
	if err := f.remove(name); err != nil {
		apiError(w, http.StatusInternalServerError, "internal_error", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, payload)
}

// remove deletes a sandbox: its sessions stop, its processes and files
// go, and it is unknown afterwards.
func (f *Fake) remove(name string) error {
	f.mu.Lock()
	sb, ok := f.sandboxes[name]
	if !ok {
		f.mu.Unlock()
		return fmt.Errorf("no sandbox %q", name)
	}
	delete(f.sandboxes, name)
	for id, s := range f.sessions {
		if s.sb == sb {
			s.timer.Stop()
			if s.status == "running" || s.status == "stopping" {
				s.status, s.stoppedAt = "stopped", nowMS()
			}
			delete(f.sessions, id)
		}
	}
	f.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return sb.box.Destroy(ctx)
}

type sessionHandler func(w http.ResponseWriter, r *http.Request, s *session)

// session finds the {sid} session (404 not_found if unknown).
func (f *Fake) session(h sessionHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sid := r.PathValue("sid")
		f.mu.Lock()
		s, ok := f.sessions[sid]
		f.mu.Unlock()
		if !ok {
			apiError(w, http.StatusNotFound, "not_found", "Session not found: "+sid)
			return
		}
		h(w, r, s)
	}
}

// running refuses a session that is not running: 422 while it stops, 410
// once stopped (the SDK resumes on both).
func (f *Fake) running(h sessionHandler) sessionHandler {
	return func(w http.ResponseWriter, r *http.Request, s *session) {
		f.mu.Lock()
		st := s.status
		f.mu.Unlock()
		switch st {
		case "running":
			h(w, r, s)
		case "stopping":
			apiError(w, http.StatusUnprocessableEntity, "sandbox_stopping", "Sandbox is stopping")
		case "snapshotting":
			apiError(w, http.StatusUnprocessableEntity, "sandbox_snapshotting", "Sandbox is snapshotting")
		default:
			apiError(w, http.StatusGone, "sandbox_stopped", "Sandbox is stopped")
		}
	}
}

func (f *Fake) stopSession(w http.ResponseWriter, _ *http.Request, s *session) {
	if err := f.stop(s, "stopped"); err != nil {
		apiError(w, http.StatusInternalServerError, "internal_error", err.Error())
		return
	}
	f.mu.Lock()
	payload := map[string]any{"session": sessionPayload(s), "sandbox": f.sandboxPayloadLocked(s.sb, s)}
	f.mu.Unlock()
	writeJSON(w, http.StatusOK, payload)
}

func (f *Fake) extend(w http.ResponseWriter, r *http.Request, s *session) {
	var b struct {
		Duration int64 `json:"duration"`
	}
	if err := json.NewDecoder(r.Body).Decode(&b); err != nil || b.Duration <= 0 {
		apiError(w, http.StatusBadRequest, "bad_request", "duration must be a positive number of milliseconds")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.o.MaxTimeout > 0 && s.timeout+b.Duration > f.o.MaxTimeout.Milliseconds() {
		apiError(w, http.StatusBadRequest, "sandbox_timeout_invalid", "the session timeout would exceed the plan's maximum")
		return
	}
	s.timeout += b.Duration
	left := time.Until(time.UnixMilli(s.startedAt + s.timeout))
	s.timer.Reset(max(left, 0))
	writeJSON(w, http.StatusOK, map[string]any{"session": sessionPayload(s)})
}

type cmdBody struct {
	Command string            `json:"command"`
	Args    []string          `json:"args"`
	Cwd     string            `json:"cwd"`
	Env     map[string]string `json:"env"`
	Sudo    bool              `json:"sudo"`
	Wait    bool              `json:"wait"`
	Logs    bool              `json:"logs"`
}

// shellCommand is the /bin/sh -c text that runs command with args.
func shellCommand(b cmdBody) string {
	if (b.Command == "sh" || b.Command == "bash" || b.Command == "/bin/sh") && len(b.Args) >= 2 && b.Args[0] == "-c" {
		return b.Args[1]
	}
	parts := []string{remote.Quote(b.Command)}
	for _, a := range b.Args {
		parts = append(parts, remote.Quote(a))
	}
	return strings.Join(parts, " ")
}

func (f *Fake) cmd(w http.ResponseWriter, r *http.Request, s *session) {
	var b cmdBody
	if err := json.NewDecoder(r.Body).Decode(&b); err != nil || b.Command == "" {
		apiError(w, http.StatusBadRequest, "bad_request", "command is required")
		return
	}
	script := shellCommand(b)
	// The server inside listens on the real port behind the declared one.
	for _, p := range s.sb.ports {
		real, err := s.sb.box.Port(p)
		if err == nil {
			script = strings.ReplaceAll(script, "--port "+strconv.Itoa(p), "--port "+strconv.Itoa(real))
		}
	}
	startsServer := strings.Contains(script, "daemon start") && len(s.sb.ports) > 0
	before := startsServer && listening(s.sb.box, s.sb.ports[0])
	cwd := b.Cwd
	if cwd == "" {
		cwd = Cwd
	}
	f.mu.Lock()
	f.seq++
	cmd := map[string]any{"id": fmt.Sprintf("cmd_%06d", f.seq), "name": b.Command, "args": b.Args, "cwd": cwd,
		"sessionId": s.id, "exitCode": nil, "startedAt": nowMS()}
	f.mu.Unlock()
	c := fakesandbox.Cmd{Command: script, Dir: cwd, Env: b.Env}
	if !b.Wait {
		if _, err := s.sb.box.Start(c); err != nil {
			apiError(w, http.StatusGone, "sandbox_stopped", err.Error())
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"command": cmd})
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	flush := func() {
		if fl, ok := w.(http.Flusher); ok {
			fl.Flush()
		}
	}
	_ = enc.Encode(map[string]any{"command": cmd})
	flush()
	res, err := s.sb.box.Run(r.Context(), c)
	if err != nil && r.Context().Err() != nil {
		return // the client went away
	}
	f.mu.Lock()
	stopped := s.status != "running"
	f.mu.Unlock()
	if err != nil || stopped && res.ExitCode == -1 {
		_ = enc.Encode(map[string]any{"stream": "error", "data": map[string]string{"code": "sandbox_stopped", "message": "the session stopped while the command ran"}})
		return
	}
	if b.Logs {
		if len(res.Stdout) > 0 {
			_ = enc.Encode(map[string]any{"stream": "stdout", "data": string(res.Stdout)})
		}
		if len(res.Stderr) > 0 {
			_ = enc.Encode(map[string]any{"stream": "stderr", "data": string(res.Stderr)})
		}
	}
	if startsServer && res.ExitCode == 0 && !before && listening(s.sb.box, s.sb.ports[0]) {
		f.mu.Lock()
		s.sb.starts++
		f.mu.Unlock()
	}
	cmd["exitCode"] = res.ExitCode
	_ = enc.Encode(map[string]any{"command": cmd})
}

// write extracts a gzipped tar into the session's filesystem, entry names
// relative to the x-cwd header (default "/"), as the real fs/write does.
func (f *Fake) write(w http.ResponseWriter, r *http.Request, s *session) {
	if ct := r.Header.Get("Content-Type"); ct != "application/gzip" {
		apiError(w, http.StatusBadRequest, "bad_request", "expected application/gzip, got "+ct)
		return
	}
	dir := r.Header.Get("X-Cwd")
	if dir == "" {
		dir = "/"
	}
	gz, err := gzip.NewReader(r.Body)
	if err != nil {
		apiError(w, http.StatusBadRequest, "bad_request", "not gzip: "+err.Error())
		return
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			apiError(w, http.StatusBadRequest, "bad_request", "bad tar: "+err.Error())
			return
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			apiError(w, http.StatusBadRequest, "bad_request", "bad tar: "+err.Error())
			return
		}
		mode := fs.FileMode(h.Mode) & fs.ModePerm
		if mode == 0 {
			mode = 0o644
		}
		if err := s.sb.box.WriteFile(path.Join(dir, h.Name), data, mode); err != nil {
			apiError(w, http.StatusBadRequest, "bad_request", "write "+h.Name+": "+err.Error())
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{})
}

// Payloads in the shapes of @vercel/sandbox-mock's payloads.ts.

func (f *Fake) payloadLocked(sb *sandbox, s *session, resumed bool) map[string]any {
	return map[string]any{"sandbox": f.sandboxPayloadLocked(sb, s), "session": sessionPayload(s), "routes": routesPayload(sb), "resumed": resumed}
}

func (f *Fake) sandboxPayloadLocked(sb *sandbox, s *session) map[string]any {
	m := map[string]any{"name": sb.name, "persistent": sb.persistent, "region": "iad1", "vcpus": 2, "memory": 4096,
		"timeout": sb.timeout, "createdAt": sb.createdAt, "updatedAt": nowMS(), "currentSessionId": s.id, "status": s.status, "cwd": Cwd}
	if sb.runtime != "" {
		m["runtime"] = sb.runtime
	}
	if sb.image != "" {
		m["image"] = sb.image
	}
	return m
}

func sessionPayload(s *session) map[string]any {
	m := map[string]any{"id": s.id, "memory": 4096, "vcpus": 2, "region": "iad1", "timeout": s.timeout, "status": s.status,
		"requestedAt": s.startedAt, "startedAt": s.startedAt, "createdAt": s.startedAt, "updatedAt": nowMS(), "cwd": Cwd}
	if s.stoppedAt != 0 {
		m["stoppedAt"] = s.stoppedAt
	}
	return m
}

func routesPayload(sb *sandbox) []map[string]any {
	out := []map[string]any{}
	for _, p := range sb.ports {
		sub := Subdomain(sb.name, p)
		out = append(out, map[string]any{"url": "https://" + sub + ".vercel.run", "subdomain": sub, "port": p})
	}
	return out
}
