// Package openapi assembles the OpenAPI 3.0 document served at
// /openapi.json. Each capability owns one fragment file under fragments/
// (paths and component schemas); the server test checks that the merged
// document and the live route table describe exactly the same routes.
package openapi

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"sync"
)

//go:embed fragments/*.json
var fragments embed.FS

type fragment struct {
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Schemas    map[string]json.RawMessage `json:"schemas"`
		Responses  map[string]json.RawMessage `json:"responses"`
		Parameters map[string]json.RawMessage `json:"parameters"`
	} `json:"components"`
}

var (
	once sync.Once
	doc  []byte
	err  error
)

// Document returns the merged document; version fills info.version.
func Document(version string) ([]byte, error) {
	once.Do(func() { doc, err = build(version) })
	return doc, err
}

func build(version string) ([]byte, error) {
	paths := map[string]map[string]json.RawMessage{}
	schemas := map[string]json.RawMessage{}
	responses := map[string]json.RawMessage{}
	parameters := map[string]json.RawMessage{}
	names, err := fs.Glob(fragments, "fragments/*.json")
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	for _, name := range names {
		raw, err := fragments.ReadFile(name)
		if err != nil {
			return nil, err
		}
		var f fragment
		if err := json.Unmarshal(raw, &f); err != nil {
			return nil, fmt.Errorf("openapi fragment %s: %w", name, err)
		}
		for p, ops := range f.Paths {
			if paths[p] == nil {
				paths[p] = map[string]json.RawMessage{}
			}
			for m, op := range ops {
				if _, dup := paths[p][m]; dup {
					return nil, fmt.Errorf("openapi fragment %s: %s %s defined twice", name, m, p)
				}
				paths[p][m] = op
			}
		}
		maps.Copy(schemas, f.Components.Schemas)
		maps.Copy(responses, f.Components.Responses)
		maps.Copy(parameters, f.Components.Parameters)
	}
	out := map[string]any{
		"openapi": "3.0.3",
		"info": map[string]any{
			"title":       "sandbox-agent",
			"description": "HTTP API of sandbox-agent (Go), wire-compatible with sandbox-agent v0.4.2.",
			"version":     version,
			"license":     map[string]any{"name": "Apache-2.0"},
		},
		"servers": []map[string]any{{"url": "http://127.0.0.1:2468"}},
		"paths":   paths,
		"components": map[string]any{
			"schemas":         schemas,
			"responses":       responses,
			"parameters":      parameters,
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer"}},
		},
		"security": []map[string]any{{"bearer": []string{}}},
	}
	return json.MarshalIndent(out, "", "  ")
}
