package boundaries

import (
	"bytes"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/sandbox-agent-go/sandbox-agent"

// sdkRoots are the package patterns an application imports.
var sdkRoots = []string{module, module + "/acp/...", module + "/persist/...", module + "/provider/..."}

// sdkMayImport lists the module's top-level internal packages the SDK may
// depend on, directly or through each other. Each is small, has no server
// knowledge, and is shared on purpose.
var sdkMayImport = []string{
	module + "/internal/sse",         // the SSE reader of the ACP transport
	module + "/internal/ctxsync",     // context-aware locks held across I/O
	module + "/internal/serverprobe", // dial-host rule and health wait of launched servers
}

// graph maps an import path to the packages it imports.
type graph map[string][]string

// violations returns every edge from a package in g to an internal package
// of the module that is not allowed, as "importer -> imported".
func violations(g graph, allowed []string) []string {
	return edges(g, func(_, imp string) bool { return isTopInternal(imp) && !slices.Contains(allowed, imp) })
}

// edges returns every "importer -> imported" edge of g that bad reports.
func edges(g graph, bad func(pkg, imp string) bool) []string {
	var out []string
	for pkg, imports := range g {
		for _, imp := range imports {
			if bad(pkg, imp) {
				out = append(out, pkg+" -> "+imp)
			}
		}
	}
	slices.Sort(out)
	return out
}

// isTopInternal reports whether path is under the module's top-level
// internal/ (persist/internal/... is scoped to persist by the compiler).
func isTopInternal(path string) bool {
	return path == module+"/internal" || strings.HasPrefix(path, module+"/internal/")
}

// isTestSupport reports whether path is a package written for tests:
// fakes, harnesses and conformance suites.
func isTestSupport(path string) bool {
	return strings.Contains(path+"/", "/internal/testutil/") ||
		strings.Contains(path+"/", "/fakesandbox/") || strings.HasSuffix(path, "/providertest") || strings.HasSuffix(path, "/storetest")
}

// isDevTool reports whether path is a program developers run and nobody
// ships: bench/ drives fakes on purpose.
func isDevTool(path string) bool {
	return path == module+"/bench" || strings.HasPrefix(path, module+"/bench/")
}

// testSupportLeaks returns edges from production packages to test support
// (which test support and developer tools may use).
func testSupportLeaks(g graph) []string {
	return edges(g, func(pkg, imp string) bool { return isTestSupport(imp) && !isTestSupport(pkg) && !isDevTool(pkg) })
}

// sdkGraph lists the SDK's dependency graph with go list (production
// imports only: tests may use the server).
func sdkGraph(t *testing.T) graph {
	t.Helper()
	g := listGraph(t, append([]string{"-deps"}, sdkRoots...)...)
	// Test support under provider/... (fakes, providertest) is not shipped
	// SDK code; testSupportLeaks keeps production code off it.
	for pkg := range g {
		if isTestSupport(pkg) {
			delete(g, pkg)
		}
	}
	return g
}

// listGraph runs go list over args and returns the production import graph.
func listGraph(t *testing.T, args ...string) graph {
	t.Helper()
	args = append([]string{"list", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}"}, args...)
	cmd := exec.CommandContext(t.Context(), "go", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	g := graph{}
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) > 0 {
			g[f[0]] = f[1:]
		}
	}
	return g
}

func TestSDKImportsOnlyAllowedInternalPackages(t *testing.T) {
	g := sdkGraph(t)
	if _, ok := g[module]; !ok {
		t.Fatalf("go list did not report the module root; got %d packages", len(g))
	}
	if v := violations(g, sdkMayImport); len(v) > 0 {
		t.Errorf("the SDK must not depend on these internal packages (see docs/architecture.md, Boundaries):\n  %s",
			strings.Join(v, "\n  "))
	}
	// An allow-list entry nothing uses any more is stale: drop it so the
	// list keeps describing the tree.
	for _, a := range sdkMayImport {
		if _, ok := g[a]; !ok {
			t.Errorf("%s is allowed but the SDK no longer depends on it: remove it from sdkMayImport", a)
		}
	}
}

// Fakes and harnesses compile into whatever imports them: only tests may.
func TestOnlyTestsImportTestSupport(t *testing.T) {
	g := listGraph(t, module+"/...")
	if v := testSupportLeaks(g); len(v) > 0 {
		t.Errorf("production packages import test support:\n  %s", strings.Join(v, "\n  "))
	}
}

func TestTestSupportLeaks(t *testing.T) {
	fake := module + "/provider/internal/fakesandbox"
	g := graph{
		module + "/provider/e2b":           {fake},
		module + "/internal/testutil/wait": {module + "/internal/testutil/testbin"},
		module + "/persist/storetest":      {module + "/internal/testutil/sessiontest"},
		module + "/bench":                  {module + "/internal/testutil/fakellm"},
		module + "/benchmark":              {module + "/internal/testutil/fakellm"},
	}
	want := []string{module + "/benchmark -> " + module + "/internal/testutil/fakellm", module + "/provider/e2b -> " + fake}
	if got := testSupportLeaks(g); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("testSupportLeaks = %v, want %v", got, want)
	}
}

func TestViolations(t *testing.T) {
	srv := module + "/internal/server"
	sse := module + "/internal/sse"
	tests := []struct {
		name string
		g    graph
		want []string
	}{
		{"allowed", graph{module: {sse, "net/http"}}, nil},
		{"direct", graph{module + "/provider/x": {srv}}, []string{module + "/provider/x -> " + srv}},
		{"through an allowed package", graph{module: {sse}, sse: {srv}}, []string{sse + " -> " + srv}},
		{"scoped internal is not top-level", graph{module + "/persist/sqlite": {module + "/persist/internal/migrations"}}, nil},
		{"look-alike prefix", graph{module: {module + "/internalx"}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := violations(tt.g, []string{sse})
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("violations = %v, want %v", got, tt.want)
			}
		})
	}
}
