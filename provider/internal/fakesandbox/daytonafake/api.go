//go:build unix

package daytonafake

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/provider/internal/fakesandbox"
)

func (f *Fake) apiRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/sandbox", f.auth(f.create))
	mux.HandleFunc("GET /api/sandbox/{id}", f.auth(f.withBox(f.get)))
	mux.HandleFunc("DELETE /api/sandbox/{id}", f.auth(f.withBox(f.delete)))
	mux.HandleFunc("POST /api/sandbox/{id}/start", f.auth(f.withBox(f.start)))
	mux.HandleFunc("POST /api/sandbox/{id}/stop", f.auth(f.withBox(f.stop)))
	mux.HandleFunc("GET /api/sandbox/{id}/ports/{port}/preview-url", f.auth(f.withBox(f.previewURL)))
	mux.HandleFunc("GET /api/sandbox/{id}/ports/{port}/signed-preview-url", f.auth(f.withBox(f.signedPreviewURL)))
}

func (f *Fake) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !f.authorized(r) {
			nestError(w, r, http.StatusUnauthorized, "Invalid credentials")
			return
		}
		h(w, r)
	}
}

// withBox looks the sandbox up (404 as the API: lookups exclude destroyed
// sandboxes) and calls h with f.mu held.
func (f *Fake) withBox(h func(w http.ResponseWriter, r *http.Request, b *box)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		f.mu.Lock()
		defer f.mu.Unlock()
		b := f.boxes[id]
		if b == nil {
			nestError(w, r, http.StatusNotFound, "Sandbox with ID or name "+id+" not found")
			return
		}
		h(w, r, b)
	}
}

func (f *Fake) toolboxURL() string { return f.srv.URL + "/toolbox" }

func (f *Fake) create(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		nestError(w, r, http.StatusBadRequest, "invalid body: "+err.Error())
		return
	}
	_, hasSnapshot := body["snapshot"]
	bi, hasBuild := body["buildInfo"].(map[string]any)
	if hasSnapshot && hasBuild {
		nestError(w, r, http.StatusBadRequest, "Cannot specify both snapshot and buildInfo")
		return
	}
	if hasBuild && !strings.HasPrefix(strings.TrimSpace(stringOf(bi["dockerfileContent"])), "FROM ") {
		nestError(w, r, http.StatusBadRequest, "buildInfo.dockerfileContent must start with FROM")
		return
	}
	autoStop := VendorAutoStop
	if v, ok := body["autoStopInterval"].(float64); ok {
		autoStop = int(v)
	}
	env := map[string]string{}
	if m, ok := body["env"].(map[string]any); ok {
		for k, v := range m {
			env[k] = stringOf(v)
		}
	}
	id := "sb-" + randomHex(8)
	sb, err := fakesandbox.New(f.dir, fakesandbox.Options{ID: id, Home: f.o.Home, Env: env, Creating: true})
	if err != nil {
		nestError(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	b := &box{sb: sb, id: id, state: "creating", authToken: randomHex(16), autoStop: autoStop,
		public: body["public"] == true, body: body, onStarted: sb.MarkReady}
	if hasBuild {
		b.state = "pending_build"
		b.next = append(b.next, "building_snapshot")
		if f.o.BuildFailure != "" {
			b.next = append(b.next, "build_failed")
			b.errorReason = f.o.BuildFailure
		}
	}
	if b.errorReason == "" {
		b.next = append(b.next, steps(f.o.BootSteps)...)
	}
	f.mu.Lock()
	f.boxes[id] = b
	f.creates = append(f.creates, body)
	out := b.json(f.toolboxURL())
	f.mu.Unlock()
	writeJSON(w, out)
}

// steps is a boot: n× "starting", then "started".
func steps(n int) []string {
	s := make([]string, 0, n+1)
	for range n {
		s = append(s, "starting")
	}
	return append(s, "started")
}

func stringOf(v any) string {
	s, _ := v.(string)
	return s
}

func (f *Fake) get(w http.ResponseWriter, r *http.Request, b *box) {
	b.step()
	if b.state == "destroyed" {
		delete(f.boxes, b.id)
		nestError(w, r, http.StatusNotFound, "Sandbox with ID or name "+b.id+" not found")
		return
	}
	writeJSON(w, b.json(f.toolboxURL()))
}

// busy answers 409 while a transition is pending, which the request
// advances (time passes between a client's retries).
func busy(w http.ResponseWriter, r *http.Request, b *box) bool {
	if len(b.next) == 0 {
		return false
	}
	b.step()
	nestError(w, r, http.StatusConflict, "Sandbox state change in progress")
	return true
}

func (f *Fake) delete(w http.ResponseWriter, r *http.Request, b *box) {
	if busy(w, r, b) {
		return
	}
	// The processes die at once, so Leftovers sees what the caller of a
	// successful DELETE may rely on.
	if err := b.sb.Destroy(r.Context()); err != nil {
		nestError(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	f.gone[b.id] = b.sb
	b.state, b.next = "destroying", []string{"destroying", "destroyed"}
	w.WriteHeader(http.StatusOK)
}

func (f *Fake) start(w http.ResponseWriter, r *http.Request, b *box) {
	if busy(w, r, b) {
		return
	}
	switch b.state {
	case "started":
	case "stopped", "archived":
		b.state, b.next, b.onStarted = "starting", steps(f.o.BootSteps), b.sb.Resume
	default:
		nestError(w, r, http.StatusBadRequest, "Sandbox is not in a valid state to be started")
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (f *Fake) stop(w http.ResponseWriter, r *http.Request, b *box) {
	if busy(w, r, b) {
		return
	}
	switch b.state {
	case "stopped":
	case "started":
		if err := b.sb.Pause(r.Context(), fakesandbox.Kill); err != nil {
			nestError(w, r, http.StatusInternalServerError, err.Error())
			return
		}
		b.state, b.next = "stopping", []string{"stopped"}
	default:
		nestError(w, r, http.StatusBadRequest, "Sandbox is not started")
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (f *Fake) port(w http.ResponseWriter, r *http.Request) (int, bool) {
	p, err := strconv.Atoi(r.PathValue("port"))
	if err != nil || p < 1 || p > 65535 {
		nestError(w, r, http.StatusBadRequest, "Invalid port")
		return 0, false
	}
	return p, true
}

func (f *Fake) hostURL(label string) string {
	_, port, _ := strings.Cut(strings.TrimPrefix(f.srv.URL, "http://"), ":")
	return "http://" + label + "." + f.o.PreviewDomain + ":" + port
}

func (f *Fake) previewURL(w http.ResponseWriter, r *http.Request, b *box) {
	port, ok := f.port(w, r)
	if !ok {
		return
	}
	writeJSON(w, map[string]any{"sandboxId": b.id, "url": f.hostURL(strconv.Itoa(port) + "-" + b.id), "token": b.authToken})
}

func (f *Fake) signedPreviewURL(w http.ResponseWriter, r *http.Request, b *box) {
	port, ok := f.port(w, r)
	if !ok {
		return
	}
	secs := 60
	if v := r.URL.Query().Get("expiresInSeconds"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 86400 {
			nestError(w, r, http.StatusBadRequest, "expiresInSeconds must be between 1 and 86400")
			return
		}
		secs = n
	}
	tok := randomHex(12)
	f.signed[tok] = &signedURL{id: b.id, port: port, expires: time.Now().Add(time.Duration(secs) * time.Second)}
	writeJSON(w, map[string]any{"sandboxId": b.id, "port": port, "token": tok, "url": f.hostURL(strconv.Itoa(port) + "-" + tok)})
}
