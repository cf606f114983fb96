package agents

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strings"
)

// DefaultRegistryURL is upstream's ACP registry.
const DefaultRegistryURL = "https://cdn.agentclientprotocol.com/registry/v1/latest/registry.json"

// registryDoc is the ACP registry document (only the fields used here).
type registryDoc struct {
	Agents []registryAgent `json:"agents"`
}

type registryAgent struct {
	ID           string `json:"id"`
	Version      string `json:"version"`
	Distribution struct {
		Npx *struct {
			Package string            `json:"package"`
			Args    []string          `json:"args"`
			Env     map[string]string `json:"env"`
		} `json:"npx"`
		Binary map[string]struct {
			Archive string            `json:"archive"`
			Cmd     string            `json:"cmd"`
			Args    []string          `json:"args"`
			Env     map[string]string `json:"env"`
		} `json:"binary"`
	} `json:"distribution"`
}

// registryURL resolves the registry location: Options.RegistryURL, then
// SANDBOX_AGENT_ACP_REGISTRY_URL, then upstream's. "off"/"none" disable it.
func (m *Manager) registryURL() string {
	u := m.opts.RegistryURL
	if u == "" {
		u = os.Getenv("SANDBOX_AGENT_ACP_REGISTRY_URL")
	}
	if u == "" {
		u = DefaultRegistryURL
	}
	switch strings.ToLower(u) {
	case "off", "none", "disabled":
		return ""
	}
	return u
}

func (m *Manager) fetchRegistry(ctx context.Context, url string) (*registryDoc, error) {
	body, err := m.get(ctx, url, 16<<20)
	if err != nil {
		return nil, err
	}
	var doc registryDoc
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("GET %s: invalid registry JSON: %w", url, err)
	}
	return &doc, nil
}

func (d *registryDoc) find(id string) *registryAgent {
	for i := range d.Agents {
		if d.Agents[i].ID == id {
			return &d.Agents[i]
		}
	}
	return nil
}

// platformKey is the registry's platform key for this machine.
func platformKey() string {
	arch := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[runtime.GOARCH]
	if arch == "" {
		arch = runtime.GOARCH
	}
	return runtime.GOOS + "-" + arch
}

// withVersion replaces (or adds) the version of an npm package spec.
func withVersion(spec, version string) string {
	if version == "" {
		return spec
	}
	name := spec
	// A scoped name starts with '@'; the version separator is the last '@'
	// after the first character.
	if i := strings.LastIndex(spec, "@"); i > 0 {
		name = spec[:i]
	}
	return name + "@" + version
}
