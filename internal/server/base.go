package server

import (
	"net/http"
	"strconv"

	"github.com/sandbox-agent-go/sandbox-agent/internal/httpjson"
	"github.com/sandbox-agent-go/sandbox-agent/internal/openapi"
)

// BaseRoutes are the routes the server itself owns: the banner, health and
// the OpenAPI document.
func BaseRoutes(version string) []Route {
	return []Route{
		{Method: http.MethodGet, Pattern: "/{$}", Open: true, Handler: func(w http.ResponseWriter, r *http.Request) {
			httpjson.Write(w, http.StatusOK, map[string]string{"docs": "https://sandboxagent.dev", "name": "Sandbox Agent"})
		}},
		{Method: http.MethodGet, Pattern: "/openapi.json", Open: true, Handler: Handle(func(w http.ResponseWriter, r *http.Request) error {
			doc, err := openapi.Document(version)
			if err != nil {
				return err
			}
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", strconv.Itoa(len(doc)))
			_, _ = w.Write(doc)
			return nil
		})},
		{Method: http.MethodGet, Pattern: "/v1/health", Handler: func(w http.ResponseWriter, r *http.Request) {
			httpjson.Write(w, http.StatusOK, map[string]string{"status": "ok"})
		}},
	}
}
