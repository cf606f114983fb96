package release

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func readRepoFile(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDeployMatchesRelease keeps the Docker images (never built here) in step
// with the archive name release.sh writes and the agents the tests pin.
func TestDeployMatchesRelease(t *testing.T) {
	release := readRepoFile(t, "scripts/release.sh")
	if !strings.Contains(release, `name="sandbox-agent_${version}_${os}_${arch}"`) {
		t.Fatal("release.sh no longer names archives sandbox-agent_<version>_<os>_<arch>; update deploy/ and this test")
	}
	const archive = "dist/sandbox-agent_${VERSION}_linux_${TARGETARCH}.tar.gz"
	for _, f := range []string{"deploy/docker/Dockerfile", "deploy/docker/Dockerfile.full"} {
		if !strings.Contains(readRepoFile(t, f), archive) {
			t.Errorf("%s does not ADD %s", f, archive)
		}
	}

	m := regexp.MustCompile(`(?m)^agents=\(([^)]*)\)`).FindStringSubmatch(readRepoFile(t, "scripts/install-test-agents.sh"))
	if m == nil {
		t.Fatal("scripts/install-test-agents.sh: no agents=(...) line")
	}
	want := "for a in " + m[1] + "; do sandbox-agent install-agent"
	if full := readRepoFile(t, "deploy/docker/Dockerfile.full"); !strings.Contains(full, want) {
		t.Errorf("Dockerfile.full does not install the pinned test agents %q", m[1])
	}
	if !strings.Contains(readRepoFile(t, "deploy/e2b/e2b.toml"), `dockerfile = "e2b.Dockerfile"`) {
		t.Error("e2b.toml does not name e2b.Dockerfile")
	}
}
