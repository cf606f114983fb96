package process

import (
	"context"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/sandbox-agent-go/sandbox-agent/internal/openapi"
)

// The merged OpenAPI document is valid and describes exactly our routes,
// each with a success response and schema-backed JSON bodies.
func TestOpenAPIDescribesRoutes(t *testing.T) {
	raw, err := openapi.Document("test")
	if err != nil {
		t.Fatal(err)
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("invalid OpenAPI document: %v", err)
	}
	routes := NewManager(Options{}).Routes()
	for _, rt := range routes {
		item := doc.Paths.Find(rt.Pattern)
		if item == nil || item.GetOperation(rt.Method) == nil {
			t.Errorf("OpenAPI lacks %s %s", rt.Method, rt.Pattern)
			continue
		}
		op := item.GetOperation(rt.Method)
		if op.Responses.Value("200") == nil && op.Responses.Value("204") == nil && op.Responses.Value("101") == nil {
			t.Errorf("%s %s: no success response", rt.Method, rt.Pattern)
		}
		if rt.Method == "POST" && op.RequestBody != nil {
			if mt := op.RequestBody.Value.Content.Get("application/json"); mt == nil || mt.Schema == nil {
				t.Errorf("%s %s: request body without JSON schema", rt.Method, rt.Pattern)
			}
		}
	}
	for p, item := range doc.Paths.Map() {
		if !strings.HasPrefix(p, "/v1/processes") {
			continue
		}
		for m := range item.Operations() {
			found := false
			for _, rt := range routes {
				found = found || (rt.Pattern == p && rt.Method == m)
			}
			if !found {
				t.Errorf("OpenAPI describes %s %s, which is not routed", m, p)
			}
		}
	}
}
