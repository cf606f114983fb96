package fsapi

import (
	"context"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/sandbox-agent-go/sandbox-agent/internal/openapi"
	"github.com/sandbox-agent-go/sandbox-agent/internal/server"
)

// checkOpenAPI validates the merged document and checks it describes
// every route.
func checkOpenAPI(t *testing.T, routes []server.Route) {
	t.Helper()
	raw, err := openapi.Document("test")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("invalid OpenAPI document: %v", err)
	}
	for _, rt := range routes {
		item := doc.Paths.Find(rt.Pattern)
		if item == nil || item.GetOperation(rt.Method) == nil {
			t.Errorf("OpenAPI lacks %s %s", rt.Method, rt.Pattern)
			continue
		}
		if op := item.GetOperation(rt.Method); op.Responses.Value("200") == nil && op.Responses.Value("204") == nil {
			t.Errorf("%s %s: no success response", rt.Method, rt.Pattern)
		}
	}
	for p, item := range doc.Paths.Map() {
		if !strings.HasPrefix(p, "/v1/fs/") {
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
