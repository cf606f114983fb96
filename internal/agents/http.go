package agents

import (
	"net/http"

	"github.com/sandbox-agent-go/sandbox-agent/internal/httpjson"
	"github.com/sandbox-agent-go/sandbox-agent/internal/problem"
	"github.com/sandbox-agent-go/sandbox-agent/internal/server"
)

// Info is one agent as reported by /v1/agents, in upstream's field order.
type Info struct {
	ID                   string         `json:"id"`
	Installed            bool           `json:"installed"`
	CredentialsAvailable bool           `json:"credentialsAvailable"`
	Version              string         `json:"version,omitempty"`
	Path                 string         `json:"path,omitempty"`
	Capabilities         Capabilities   `json:"capabilities"`
	ConfigOptions        []ConfigOption `json:"configOptions,omitempty"`
}

// Info describes agent; withConfig adds version, path and config options.
func (m *Manager) Info(agent string, withConfig bool) (Info, bool) {
	return m.info(agent, withConfig, false)
}

func (m *Manager) info(agent string, withConfig, noCache bool) (Info, bool) {
	spec, ok := Lookup(agent)
	if !ok {
		return Info{}, false
	}
	info := Info{ID: agent, Installed: m.Installed(agent), CredentialsAvailable: m.CredentialsAvailable(agent), Capabilities: spec.Capabilities}
	if withConfig {
		if info.Installed {
			info.Version, info.Path = m.agentVersion(agent, noCache)
		}
		info.ConfigOptions = spec.ConfigOptions
	}
	return info, true
}

// Routes returns the /v1/agents routes.
func (m *Manager) Routes() []server.Route {
	return []server.Route{
		{Method: http.MethodGet, Pattern: "/v1/agents", Handler: server.Handle(m.handleList)},
		{Method: http.MethodGet, Pattern: "/v1/agents/{agent}", Handler: server.Handle(m.handleGet)},
		{Method: http.MethodPost, Pattern: "/v1/agents/{agent}/install", Handler: server.Handle(m.handleInstall)},
	}
}

func configQuery(r *http.Request) (withConfig, noCache bool, err error) {
	if noCache, err = httpjson.QueryBool(r, "no_cache"); err != nil {
		return false, false, err
	}
	withConfig, err = httpjson.QueryBool(r, "config")
	return withConfig, noCache, err
}

func (m *Manager) handleList(w http.ResponseWriter, r *http.Request) error {
	withConfig, noCache, err := configQuery(r)
	if err != nil {
		return err
	}
	list := make([]Info, 0, len(IDs))
	for _, id := range IDs {
		info, _ := m.info(id, withConfig, noCache)
		list = append(list, info)
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"agents": list})
	return nil
}

func (m *Manager) handleGet(w http.ResponseWriter, r *http.Request) error {
	withConfig, noCache, err := configQuery(r)
	if err != nil {
		return err
	}
	id := r.PathValue("agent")
	info, ok := m.info(id, withConfig, noCache)
	if !ok {
		return problem.Unsupported(id)
	}
	httpjson.Write(w, http.StatusOK, info)
	return nil
}

// installResponse is upstream's HTTP install answer (snake_case key).
type installResponse struct {
	AlreadyInstalled bool       `json:"already_installed"`
	Artifacts        []Artifact `json:"artifacts"`
}

func (m *Manager) handleInstall(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("agent")
	var req InstallRequest
	if err := httpjson.Decode(r, &req); err != nil {
		return err
	}
	if !Known(id) {
		return problem.Unsupported(id)
	}
	res, err := m.Install(r.Context(), id, req)
	if err != nil {
		return err
	}
	if res.Artifacts == nil {
		res.Artifacts = []Artifact{}
	}
	httpjson.Write(w, http.StatusOK, installResponse(res))
	return nil
}
