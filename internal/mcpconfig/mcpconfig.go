// Package mcpconfig serves the per-directory MCP server and skills
// configuration (/v1/config/mcp, /v1/config/skills).
//
// Entries live where upstream sandbox-agent v0.4.2 keeps them, in
// <directory>/.sandbox-agent/config/{mcp,skills}.json: one JSON object per
// file mapping names to entries, pretty-printed with 2-space indentation
// and sorted keys. Entries are normalised on write (MCP type aliases,
// defaulted args, unknown fields dropped). Unlike upstream, concurrent
// writers cannot lose updates or corrupt a file: writes are serialised by
// an in-process mutex and a flock on the config directory, and each file
// is replaced atomically.
package mcpconfig

import (
	"errors"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"syscall"

	"github.com/sandbox-agent-go/sandbox-agent/internal/httpjson"
	"github.com/sandbox-agent-go/sandbox-agent/internal/problem"
	"github.com/sandbox-agent-go/sandbox-agent/internal/server"
)

// Options configures the config API.
type Options struct {
	// Cwd is where relative ?directory= values resolve (the process working
	// directory when empty, as upstream).
	Cwd string
}

// Handler serves /v1/config/*.
type Handler struct {
	cwd   string
	locks keyedMutex
}

// New builds the handler.
func New(opts Options) *Handler {
	cwd := opts.Cwd
	if cwd == "" {
		if wd, err := os.Getwd(); err == nil {
			cwd = wd
		} else {
			cwd = "/"
		}
	}
	return &Handler{cwd: cwd}
}

// kind describes one of the two config files.
type kind struct {
	name  string // "mcp" or "skills": file name and session id prefix
	param string // the name query parameter
}

var (
	mcpKind    = kind{name: "mcp", param: "mcpName"}
	skillsKind = kind{name: "skills", param: "skillName"}
)

// Routes returns the /v1/config routes.
func (h *Handler) Routes() []server.Route {
	return []server.Route{
		{Method: http.MethodGet, Pattern: "/v1/config/mcp", Handler: server.Handle(getHandler[McpServer](h, mcpKind))},
		{Method: http.MethodPut, Pattern: "/v1/config/mcp", Handler: server.Handle(putHandler[McpServer](h, mcpKind))},
		{Method: http.MethodDelete, Pattern: "/v1/config/mcp", Handler: server.Handle(deleteHandler[McpServer](h, mcpKind))},
		{Method: http.MethodGet, Pattern: "/v1/config/skills", Handler: server.Handle(getHandler[SkillsConfig](h, skillsKind))},
		{Method: http.MethodPut, Pattern: "/v1/config/skills", Handler: server.Handle(putHandler[SkillsConfig](h, skillsKind))},
		{Method: http.MethodDelete, Pattern: "/v1/config/skills", Handler: server.Handle(deleteHandler[SkillsConfig](h, skillsKind))},
	}
}

// target is a parsed request: the config directory, file and entry name.
type target struct {
	dir  string // <directory>/.sandbox-agent/config
	file string
	name string
}

// parse reads ?directory= and the name parameter: a missing one is the
// framework's 400 text, a blank one upstream's 400 problem.
func (h *Handler) parse(r *http.Request, k kind) (target, error) {
	q := r.URL.Query()
	dir, okDir := q["directory"]
	name, okName := q[k.param]
	switch {
	case !okDir || len(dir) == 0:
		return target{}, httpjson.QueryError("missing field `directory`")
	case !okName || len(name) == 0:
		return target{}, httpjson.QueryError("missing field `" + k.param + "`")
	case strings.TrimSpace(dir[0]) == "":
		return target{}, problem.Invalid("missing required 'directory' query parameter")
	case strings.TrimSpace(name[0]) == "":
		return target{}, problem.Invalid("missing required '" + k.param + "' query parameter")
	}
	base := dir[0]
	if !strings.HasPrefix(base, "/") {
		base = strings.TrimSuffix(h.cwd, "/") + "/" + base
	}
	cfgDir := strings.TrimSuffix(base, "/") + "/.sandbox-agent/config"
	return target{dir: cfgDir, file: cfgDir + "/" + k.name + ".json", name: name[0]}, nil
}

func osProblem(err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		msg := errno.Error()
		if msg != "" && msg[0] >= 'a' && msg[0] <= 'z' {
			msg = strings.ToUpper(msg[:1]) + msg[1:]
		}
		return problem.Stream(msg + " (os error " + itoa(int(errno)) + ")")
	}
	return problem.Stream(err.Error())
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for ; n > 0; n /= 10 {
		i--
		b[i] = byte('0' + n%10)
	}
	return string(b[i:])
}

func getHandler[T any](h *Handler, k kind) server.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		t, err := h.parse(r, k)
		if err != nil {
			return err
		}
		// No lock: files are only ever replaced by rename, so a reader sees
		// one complete version.
		entries, _, err := load[T](t.file)
		if err != nil {
			return err
		}
		e, ok := entries[t.name]
		if !ok {
			return problem.Session(k.name + ":" + t.name)
		}
		httpjson.Write(w, http.StatusOK, e)
		return nil
	}
}

func putHandler[T any](h *Handler, k kind) server.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		t, err := h.parse(r, k)
		if err != nil {
			return err
		}
		var entry T
		if err := httpjson.Decode(r, &entry); err != nil {
			return err
		}
		err = update(h, t, true, func(entries map[string]T) bool {
			entries[t.name] = entry
			return true
		})
		if err != nil {
			return err
		}
		httpjson.NoContent(w)
		return nil
	}
}

func deleteHandler[T any](h *Handler, k kind) server.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		t, err := h.parse(r, k)
		if err != nil {
			return err
		}
		err = update(h, t, false, func(entries map[string]T) bool {
			if _, ok := entries[t.name]; !ok {
				return false
			}
			delete(entries, t.name)
			return true
		})
		if err != nil {
			return err
		}
		httpjson.NoContent(w)
		return nil
	}
}

// update runs a read-modify-write of t.file under both locks, creating the
// directory first when create is set. change reports whether it modified
// the entries (and the file must be written).
func update[T any](h *Handler, t target, create bool, change func(map[string]T) bool) error {
	unlock := h.locks.lock(t.file)
	defer unlock()
	if create {
		// The directory need not exist: PUT creates it with its parents.
		if err := os.MkdirAll(t.dir, 0o777); err != nil {
			return osProblem(err)
		}
	}
	unlockDir, err := lockDir(t.dir)
	if errors.Is(err, fs.ErrNotExist) && !create {
		return nil // no directory, nothing to delete
	}
	if err != nil {
		return osProblem(err)
	}
	defer unlockDir()
	entries, _, err := load[T](t.file)
	if err != nil {
		return err
	}
	if !change(entries) {
		return nil
	}
	data, err := encode(entries)
	if err != nil {
		return problem.Stream(err.Error())
	}
	if err := writeFileAtomic(t.file, data); err != nil {
		return osProblem(err)
	}
	return nil
}
