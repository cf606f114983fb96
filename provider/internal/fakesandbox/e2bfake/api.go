//go:build unix

package e2bfake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/provider/internal/fakesandbox"
)

func (f *Fake) apiMux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /sandboxes", f.create)
	mux.HandleFunc("GET /sandboxes/{id}", f.withBox(f.get))
	mux.HandleFunc("DELETE /sandboxes/{id}", f.withBox(f.kill))
	mux.HandleFunc("POST /sandboxes/{id}/pause", f.withBox(f.pause))
	mux.HandleFunc("POST /sandboxes/{id}/connect", f.withBox(f.connect))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-API-Key") != f.o.APIKey {
			apiError(w, http.StatusUnauthorized, "Invalid API key, please visit https://e2b.dev/docs to get your API key")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// apiError writes E2B's error body.
func apiError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"code": status, "message": msg})
}

func notFoundMsg(id string) string {
	return fmt.Sprintf("Sandbox %q doesn't exist or you don't have access to it", id)
}

func (f *Fake) withBox(h func(http.ResponseWriter, *http.Request, *box)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		b := f.box(id)
		if b == nil || b.sb.State() == fakesandbox.Deleted {
			apiError(w, http.StatusNotFound, notFoundMsg(id))
			return
		}
		h(w, r, b)
	}
}

// sandboxJSON is E2B's Sandbox object.
func (f *Fake) sandboxJSON(b *box) map[string]any {
	return map[string]any{"sandboxID": b.sb.ID, "templateID": b.template, "clientID": "fake", "envdVersion": f.envdVersion(),
		"envdAccessToken": b.envdToken, "trafficAccessToken": b.trafficToken, "domain": f.Domain}
}

func (f *Fake) envdVersion() string {
	if f.o.OldEnvd {
		return "0.3.9"
	}
	return "0.5.7"
}

func (f *Fake) create(w http.ResponseWriter, r *http.Request) {
	var raw map[string]any
	var req struct {
		TemplateID string            `json:"templateID"`
		Timeout    *int              `json:"timeout"`
		AutoPause  bool              `json:"autoPause"`
		Secure     bool              `json:"secure"`
		EnvVars    map[string]string `json:"envVars"`
		Network    *struct {
			AllowPublicTraffic *bool `json:"allowPublicTraffic"`
		} `json:"network"`
	}
	body, err := readBody(r)
	if err == nil {
		err = json.Unmarshal(body, &raw)
	}
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	if err != nil || req.TemplateID == "" {
		apiError(w, http.StatusBadRequest, fmt.Sprintf("invalid request body: templateID is required (%v)", err))
		return
	}
	timeout := 15 // the API's default
	if req.Timeout != nil {
		timeout = *req.Timeout
	}
	if timeout < 0 || timeout > 24*3600 {
		apiError(w, http.StatusBadRequest, "timeout must be between 0 and 86400 seconds")
		return
	}
	id := randomID(10)
	sb, err := fakesandbox.New(f.dir, fakesandbox.Options{ID: id, Env: req.EnvVars, Creating: true})
	if err != nil {
		apiError(w, http.StatusInternalServerError, err.Error())
		return
	}
	now := time.Now()
	b := &box{sb: sb, template: req.TemplateID, trafficToken: randomID(16), public: true, autoPause: req.AutoPause,
		startedAt: now, endAt: now.Add(time.Duration(timeout) * time.Second)}
	if req.Secure {
		b.envdToken = randomID(16)
	}
	if req.Network != nil && req.Network.AllowPublicTraffic != nil {
		b.public = *req.Network.AllowPublicTraffic
	}
	f.mu.Lock()
	f.boxes[id] = b
	f.creates = append(f.creates, raw)
	hold := f.hold
	f.mu.Unlock()
	// E2B answers once the sandbox has booted; a held boot makes that slow.
	if hold != nil {
		select {
		case <-hold:
		case <-r.Context().Done():
			_ = sb.Destroy(context.WithoutCancel(r.Context()))
			return
		}
	}
	if err := sb.MarkReady(); err != nil {
		apiError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, f.sandboxJSON(b))
}

func (f *Fake) get(w http.ResponseWriter, _ *http.Request, b *box) {
	state := "running"
	if st := b.sb.State(); st == fakesandbox.Paused || st == fakesandbox.Stopped {
		state = "paused"
	}
	d := f.sandboxJSON(b)
	d["state"] = state
	d["startedAt"] = b.startedAt.UTC().Format(time.RFC3339)
	f.mu.Lock()
	d["endAt"] = b.endAt.UTC().Format(time.RFC3339)
	f.mu.Unlock()
	onTimeout := "kill"
	if b.autoPause {
		onTimeout = "pause"
	}
	d["lifecycle"] = map[string]any{"onTimeout": onTimeout}
	writeJSON(w, http.StatusOK, d)
}

func (f *Fake) kill(w http.ResponseWriter, r *http.Request, b *box) {
	if err := b.sb.Destroy(r.Context()); err != nil {
		apiError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (f *Fake) pause(w http.ResponseWriter, r *http.Request, b *box) {
	memory := true
	if body, err := readBody(r); err == nil && len(body) > 0 {
		var req struct {
			Memory *bool `json:"memory"`
		}
		if json.Unmarshal(body, &req) == nil && req.Memory != nil {
			memory = *req.Memory
		}
	}
	switch err := f.pauseBox(r.Context(), b, memory); {
	case errors.Is(err, fakesandbox.ErrNotRunning):
		apiError(w, http.StatusConflict, fmt.Sprintf("Sandbox %q is already paused", b.sb.ID))
	case err != nil:
		apiError(w, http.StatusInternalServerError, err.Error())
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

func (f *Fake) pauseBox(ctx context.Context, b *box, memory bool) error {
	mode := fakesandbox.Freeze
	if !memory || f.o.PauseLosesMemory {
		mode = fakesandbox.Kill
	}
	return b.sb.Pause(ctx, mode)
}

// connect resumes a paused sandbox (201) or extends a running one (200);
// the timeout only ever extends the end.
func (f *Fake) connect(w http.ResponseWriter, r *http.Request, b *box) {
	var req struct {
		Timeout *int `json:"timeout"`
	}
	body, err := readBody(r)
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	if err != nil || req.Timeout == nil {
		apiError(w, http.StatusBadRequest, "invalid request body: timeout is required")
		return
	}
	status := http.StatusOK
	if st := b.sb.State(); st == fakesandbox.Paused || st == fakesandbox.Stopped {
		if err := b.sb.Resume(); err != nil {
			apiError(w, http.StatusInternalServerError, err.Error())
			return
		}
		status = http.StatusCreated
	}
	f.mu.Lock()
	if end := time.Now().Add(time.Duration(*req.Timeout) * time.Second); end.After(b.endAt) {
		b.endAt = end
	}
	f.mu.Unlock()
	writeJSON(w, status, f.sandboxJSON(b))
}

func readBody(r *http.Request) ([]byte, error) {
	return io.ReadAll(io.LimitReader(r.Body, 1<<20))
}
