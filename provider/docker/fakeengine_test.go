package docker_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fakeEngine is an httptest stand-in for the Docker Engine API (v1.41).
// Its "containers" are real processes: the sandbox-agent binary run with
// the container's Cmd, with the published host port in place of the
// container port (there is no network namespace to map one to the other).
// Pause and unpause are SIGSTOP and SIGCONT. Everything the provider sent
// is recorded for assertions.
type fakeEngine struct {
	t   *testing.T
	bin string
	srv *httptest.Server

	mu         sync.Mutex
	images     map[string]bool // present locally
	pullable   map[string]bool // what a pull can fetch
	containers map[string]*fakeContainer
	calls      []string // "METHOD path?query"
	creates    []map[string]any
	nextID     int
}

type fakeContainer struct {
	id       string
	cmd      []string
	hostIP   string
	hostPort string
	home     string
	proc     *exec.Cmd
	exited   chan struct{}
	paused   bool
	starts   int
}

func newFakeEngine(t *testing.T, bin string) *fakeEngine {
	f := &fakeEngine{t: t, bin: bin, images: map[string]bool{}, pullable: map[string]bool{}, containers: map[string]*fakeContainer{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1.41/containers/create", f.create)
	mux.HandleFunc("POST /v1.41/containers/{id}/start", f.containerHandler(f.start))
	mux.HandleFunc("GET /v1.41/containers/{id}/json", f.containerHandler(f.inspect))
	mux.HandleFunc("POST /v1.41/containers/{id}/stop", f.containerHandler(f.stop))
	mux.HandleFunc("POST /v1.41/containers/{id}/kill", f.containerHandler(f.kill))
	mux.HandleFunc("POST /v1.41/containers/{id}/pause", f.containerHandler(f.pause))
	mux.HandleFunc("POST /v1.41/containers/{id}/unpause", f.containerHandler(f.unpause))
	mux.HandleFunc("DELETE /v1.41/containers/{id}", f.containerHandler(f.remove))
	mux.HandleFunc("POST /v1.41/images/create", f.pull)
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		call := r.Method + " " + strings.TrimPrefix(r.URL.Path, "/v1.41")
		if r.URL.RawQuery != "" {
			call += "?" + r.URL.RawQuery
		}
		f.calls = append(f.calls, call)
		f.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		f.srv.Close()
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, c := range f.containers {
			f.stopProc(c, 0)
		}
	})
	return f
}

func engineError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": msg})
}

// containerHandler looks the {id} container up under the lock (404 as the
// Engine answers) and runs h with it.
func (f *fakeEngine) containerHandler(h func(http.ResponseWriter, *http.Request, *fakeContainer)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		c := f.containers[r.PathValue("id")]
		if c == nil {
			engineError(w, http.StatusNotFound, "No such container: "+r.PathValue("id"))
			return
		}
		h(w, r, c)
	}
}

func (f *fakeEngine) create(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		engineError(w, http.StatusBadRequest, err.Error())
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.creates = append(f.creates, body)
	image, _ := body["Image"].(string)
	if !f.images[image] {
		engineError(w, http.StatusNotFound, "No such image: "+image)
		return
	}
	var cmd []string
	for _, a := range body["Cmd"].([]any) {
		cmd = append(cmd, a.(string))
	}
	hc, _ := body["HostConfig"].(map[string]any)
	pb, _ := hc["PortBindings"].(map[string]any)
	var hostIP, hostPort string
	for _, v := range pb {
		b := v.([]any)[0].(map[string]any)
		hostIP, _ = b["HostIp"].(string)
		hostPort, _ = b["HostPort"].(string)
	}
	f.nextID++
	id := fmt.Sprintf("c0ffee%06d", f.nextID)
	home := filepath.Join(f.t.TempDir(), id)
	if err := os.MkdirAll(home, 0o755); err != nil {
		engineError(w, 500, err.Error())
		return
	}
	f.containers[id] = &fakeContainer{id: id, cmd: cmd, hostIP: hostIP, hostPort: hostPort, home: home}
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(map[string]any{"Id": id, "Warnings": []string{}})
}

func (c *fakeContainer) running() bool {
	if c.proc == nil {
		return false
	}
	select {
	case <-c.exited:
		return false
	default:
		return true
	}
}

func (f *fakeEngine) start(w http.ResponseWriter, r *http.Request, c *fakeContainer) {
	if c.running() {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	args := append([]string(nil), c.cmd...)
	for i := range args {
		switch {
		case i > 0 && args[i-1] == "--port":
			args[i] = c.hostPort
		case i > 0 && args[i-1] == "--host":
			args[i] = c.hostIP
		}
	}
	cmd := exec.Command(f.bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + c.home, "SANDBOX_AGENT_DATA_DIR=" + filepath.Join(c.home, "data")}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		engineError(w, 500, err.Error())
		return
	}
	c.proc, c.exited, c.paused = cmd, make(chan struct{}), false
	c.starts++
	exited := c.exited
	go func() { _ = cmd.Wait(); close(exited) }()
	w.WriteHeader(http.StatusNoContent)
}

func (f *fakeEngine) inspect(w http.ResponseWriter, r *http.Request, c *fakeContainer) {
	status := "exited"
	if c.proc == nil {
		status = "created"
	}
	ports := map[string]any{}
	if c.running() {
		status = "running"
		if c.paused {
			status = "paused"
		}
		ports["3000/tcp"] = []map[string]string{{"HostIp": c.hostIP, "HostPort": c.hostPort}}
	}
	_ = json.NewEncoder(w).Encode(map[string]any{
		"Id":              c.id,
		"State":           map[string]any{"Status": status, "Running": c.running(), "Paused": c.paused},
		"NetworkSettings": map[string]any{"Ports": ports},
	})
}

// stopProc ends a container's process: SIGTERM, SIGKILL after grace.
func (f *fakeEngine) stopProc(c *fakeContainer, grace time.Duration) {
	if !c.running() {
		return
	}
	_ = syscall.Kill(-c.proc.Process.Pid, syscall.SIGCONT)
	_ = syscall.Kill(-c.proc.Process.Pid, syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(grace):
		_ = syscall.Kill(-c.proc.Process.Pid, syscall.SIGKILL)
		<-c.exited
	}
	c.paused = false
}

func (f *fakeEngine) stop(w http.ResponseWriter, r *http.Request, c *fakeContainer) {
	if !c.running() {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if c.paused {
		engineError(w, http.StatusConflict, "cannot stop a paused container")
		return
	}
	t, _ := strconv.Atoi(r.URL.Query().Get("t"))
	f.stopProc(c, time.Duration(t)*time.Second)
	w.WriteHeader(http.StatusNoContent)
}

func (f *fakeEngine) kill(w http.ResponseWriter, r *http.Request, c *fakeContainer) {
	if !c.running() {
		engineError(w, http.StatusConflict, "container "+c.id+" is not running")
		return
	}
	_ = syscall.Kill(-c.proc.Process.Pid, syscall.SIGKILL)
	<-c.exited
	w.WriteHeader(http.StatusNoContent)
}

func (f *fakeEngine) pause(w http.ResponseWriter, r *http.Request, c *fakeContainer) {
	if !c.running() {
		engineError(w, http.StatusConflict, "container "+c.id+" is not running")
		return
	}
	_ = syscall.Kill(-c.proc.Process.Pid, syscall.SIGSTOP)
	c.paused = true
	w.WriteHeader(http.StatusNoContent)
}

func (f *fakeEngine) unpause(w http.ResponseWriter, r *http.Request, c *fakeContainer) {
	if !c.paused {
		engineError(w, http.StatusConflict, "container "+c.id+" is not paused")
		return
	}
	_ = syscall.Kill(-c.proc.Process.Pid, syscall.SIGCONT)
	c.paused = false
	w.WriteHeader(http.StatusNoContent)
}

func (f *fakeEngine) remove(w http.ResponseWriter, r *http.Request, c *fakeContainer) {
	if c.running() && r.URL.Query().Get("force") != "true" {
		engineError(w, http.StatusConflict, "container is running: stop the container before removing or force remove")
		return
	}
	if c.running() {
		_ = syscall.Kill(-c.proc.Process.Pid, syscall.SIGCONT)
		_ = syscall.Kill(-c.proc.Process.Pid, syscall.SIGKILL)
		<-c.exited
	}
	delete(f.containers, c.id)
	w.WriteHeader(http.StatusNoContent)
}

func (f *fakeEngine) pull(w http.ResponseWriter, r *http.Request) {
	ref := r.URL.Query().Get("fromImage")
	if tag := r.URL.Query().Get("tag"); tag != "" {
		ref += ":" + tag
	}
	f.mu.Lock()
	ok := f.pullable[ref]
	if ok {
		f.images[ref] = true
	}
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	_ = enc.Encode(map[string]string{"status": "Pulling from " + ref})
	if !ok {
		_ = enc.Encode(map[string]any{"errorDetail": map[string]string{"message": "manifest for " + ref + " not found: manifest unknown"}, "error": "manifest unknown"})
		return
	}
	_ = enc.Encode(map[string]string{"status": "Status: Downloaded newer image for " + ref})
}

func (f *fakeEngine) container(id string) *fakeContainer {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.containers[id]
}

func (f *fakeEngine) callLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// crash kills a container's processes as if its server died, and waits
// until the fake has seen it exit.
func (f *fakeEngine) crash(t *testing.T, id string) {
	t.Helper()
	f.mu.Lock()
	c := f.containers[id]
	pid, exited := c.proc.Process.Pid, c.exited
	f.mu.Unlock()
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exited
}

func (f *fakeEngine) starts(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.containers[id].starts
}

func (f *fakeEngine) paused(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.containers[id].paused
}

// freeze pauses a container behind the client's back (the platform put
// the sandbox to sleep): its server stops answering without closing any
// connection.
func (f *fakeEngine) freeze(t *testing.T, id string) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.containers[id]
	if err := syscall.Kill(-c.proc.Process.Pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	c.paused = true
}
