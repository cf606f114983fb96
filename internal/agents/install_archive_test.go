package agents

import (
	"archive/tar"
	"github.com/sandbox-agent-go/sandbox-agent/internal/testutil/tartest"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// entry is one member of a test archive (tartest's); files are
// executable, as release binaries are.
type entry = tartest.Entry

func tarGz(t *testing.T, entries ...entry) []byte {
	t.Helper()
	for i := range entries {
		if entries[i].Type == 0 && entries[i].Link == "" {
			entries[i].Mode = 0o755
		}
	}
	return tartest.Gzip(t, tartest.Build(t, entries...))
}

// tree lists every path under root (relative, slash-separated), so a test
// sees any write an extractor made, wherever under root it landed.
func tree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != root {
			rel, _ := filepath.Rel(root, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// hostileArchives are release archives that try to write outside the
// directory they are unpacked into. outside is an absolute directory
// next to that directory.
func hostileArchives(outside string) map[string][]entry {
	return map[string][]entry{
		"dotdot":                  {{Name: "codex-acp", Body: "#!/bin/sh\n"}, {Name: "../x", Body: "pwned"}},
		"dotdot inside a path":    {{Name: "codex-acp", Body: "#!/bin/sh\n"}, {Name: "bin/../../x", Body: "pwned"}},
		"absolute":                {{Name: "codex-acp", Body: "#!/bin/sh\n"}, {Name: filepath.Join(outside, "x"), Body: "pwned"}},
		"absolute symlink":        {{Name: "codex-acp", Body: "#!/bin/sh\n"}, {Name: "evil", Link: outside, Type: tar.TypeSymlink}, {Name: "evil/x", Body: "pwned"}},
		"relative symlink":        {{Name: "codex-acp", Body: "#!/bin/sh\n"}, {Name: "evil", Link: "../outside", Type: tar.TypeSymlink}, {Name: "evil/x", Body: "pwned"}},
		"nested relative symlink": {{Name: "codex-acp", Body: "#!/bin/sh\n"}, {Name: "a/evil", Link: "../../outside", Type: tar.TypeSymlink}, {Name: "a/evil/x", Body: "pwned"}},
		"hard link":               {{Name: "codex-acp", Body: "#!/bin/sh\n"}, {Name: "evil", Link: "../outside/x", Type: tar.TypeLink}},
	}
}

func TestUntarGzRejectsEntriesOutsideTheDir(t *testing.T) {
	for name := range hostileArchives("") {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			stage, outside := filepath.Join(root, "stage"), filepath.Join(root, "outside")
			for _, d := range []string{stage, outside} {
				if err := os.Mkdir(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			entries := hostileArchives(outside)[name]
			if err := untarGz(t.Context(), tarGz(t, entries...), stage, nil); err == nil {
				t.Fatalf("extracted %v without error", entries)
			}
			for _, p := range tree(t, root) {
				if p != "stage" && p != "outside" && !strings.HasPrefix(p, "stage/") {
					t.Errorf("wrote %s outside the staging dir", p)
				}
			}
		})
	}
}

// The checks must not refuse what real release archives hold: "./"
// prefixes, ".." that stays inside, directories, links that stay inside
// (which are created, not skipped).
func TestUntarGzExtractsOrdinaryArchives(t *testing.T) {
	stage := t.TempDir()
	data := tarGz(t,
		entry{Name: "./pkg/bin/codex-acp", Body: "#!/bin/sh\n"},
		entry{Name: "pkg/lib/../bin/tool", Body: "tool"},
		entry{Name: "pkg/current", Link: "bin", Type: tar.TypeSymlink},
		entry{Name: "pkg/bin/alias", Link: "../bin/tool", Type: tar.TypeSymlink},
		entry{Name: "pkg/bin/hard", Link: "pkg/bin/tool", Type: tar.TypeLink},
	)
	if err := untarGz(t.Context(), data, stage, nil); err != nil {
		t.Fatal(err)
	}
	got := tree(t, stage)
	want := []string{"pkg", "pkg/bin", "pkg/bin/alias", "pkg/bin/codex-acp", "pkg/bin/hard", "pkg/bin/tool", "pkg/current"}
	if !slices.Equal(got, want) {
		t.Fatalf("extracted %v, want %v", got, want)
	}
	// The links stay inside and reach what they name.
	for link, target := range map[string]string{"pkg/current": "bin", "pkg/bin/alias": "../bin/tool"} {
		if got, err := os.Readlink(filepath.Join(stage, link)); err != nil || got != target {
			t.Errorf("%s -> %q (%v), want -> %q", link, got, err, target)
		}
	}
	for _, p := range []string{"pkg/bin/alias", "pkg/bin/hard", "pkg/current/tool"} {
		if b, err := os.ReadFile(filepath.Join(stage, p)); err != nil || string(b) != "tool" {
			t.Errorf("%s reads %q (%v), want %q", p, b, err, "tool")
		}
	}
	hard, err1 := os.Lstat(filepath.Join(stage, "pkg/bin/hard"))
	tool, err2 := os.Lstat(filepath.Join(stage, "pkg/bin/tool"))
	if err1 != nil || err2 != nil || !os.SameFile(hard, tool) {
		t.Errorf("pkg/bin/hard is not a hard link of pkg/bin/tool (%v, %v)", err1, err2)
	}
}

// A hostile registry binary fails that distribution (the install falls
// back to the pinned npm package) and writes nothing outside the agent's
// staging dir.
func TestInstallOfHostileRegistryArchiveWritesNothingOutside(t *testing.T) {
	for name := range hostileArchives("") {
		t.Run(name, func(t *testing.T) {
			outside := t.TempDir()
			archive := tarGz(t, hostileArchives(outside)[name]...)
			var srv *httptest.Server
			srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/codex-acp.tar.gz" {
					_, _ = w.Write(archive)
					return
				}
				bin := `{"archive":"` + srv.URL + `/codex-acp.tar.gz","cmd":"./codex-acp"}`
				_, _ = w.Write([]byte(`{"agents":[{"id":"codex-acp","version":"1.0.0","distribution":{"binary":{"linux-x86_64":` + bin + `,"linux-aarch64":` + bin + `}}}]}`))
			}))
			defer srv.Close()
			m, _ := newTestManager(t, srv.URL)
			var detail string
			res, err := m.InstallWithProgress(t.Context(), "codex", InstallRequest{}, func(ev ProgressEvent) {
				if ev.Step == StepAgentProcess && ev.Status == "done" {
					detail = ev.Detail
				}
			})
			if err != nil || !strings.Contains(detail, "registry binary failed") {
				t.Fatalf("%+v %v %q", res, err, detail)
			}
			if got := tree(t, outside); len(got) != 0 {
				t.Errorf("wrote %v into a directory outside the data dir", got)
			}
			// The failed distribution's files are gone with its staging
			// dir; the payload must not have landed anywhere else.
			for _, p := range tree(t, m.opts.DataDir) {
				if b, err := os.ReadFile(filepath.Join(m.opts.DataDir, p)); err == nil && string(b) == "pwned" {
					t.Errorf("wrote the payload to %s in the data dir", p)
				}
			}
		})
	}
}
