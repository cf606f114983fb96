package agents

// Native CLI downloads from upstream release sources, and the HTTP fetches behind them.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// nativeDownload fetches the native CLI from upstream's release sources.
func (in *installer) nativeDownload(ctx context.Context, pin Pin, dst string) (string, error) {
	m := in.m
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	musl := false
	if g, _ := filepath.Glob("/lib/ld-musl-*.so.1"); len(g) > 0 {
		musl = true
	}
	arch := map[string]string{"amd64": "x64", "arm64": "arm64"}[runtime.GOARCH]
	var url, member string
	v := in.req.AgentVersion
	switch in.agent {
	case "claude":
		base := "https://storage.googleapis.com/claude-code-dist-86c565f3-f756-42ad-8dfa-d59b1c096819/claude-code-releases"
		if v == "" {
			b, err := m.download(probeCtx(ctx), base+"/latest")
			if err != nil {
				return "", err
			}
			v = strings.TrimSpace(string(b))
		}
		plat := runtime.GOOS + "-" + arch
		if musl {
			plat += "-musl"
		}
		url = base + "/" + v + "/" + plat + "/claude"
	case "codex":
		target := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[runtime.GOARCH] + "-unknown-linux-musl"
		rel := "latest/download"
		if v != "" {
			rel = "download/rust-v" + v
		}
		url = "https://github.com/openai/codex/releases/" + rel + "/codex-" + target + ".tar.gz"
		member = "codex-" + target
	case "opencode":
		plat := runtime.GOOS + "-" + arch
		if musl {
			plat += "-musl"
		}
		rel := "latest/download"
		if v != "" {
			rel = "download/v" + v
		}
		url = "https://github.com/anomalyco/opencode/releases/" + rel + "/opencode-" + plat + ".tar.gz"
		member = "opencode"
	default:
		return "", errors.New("no download source")
	}
	if runtime.GOOS != "linux" && in.agent != "claude" {
		return "", errors.New("download only supported on linux here")
	}
	// A quick reachability probe keeps offline installs fast.
	if _, err := m.head(probeCtx(ctx), url); err != nil {
		return "", err
	}
	data, err := m.download(ctx, url)
	if err != nil {
		return "", err
	}
	if member != "" {
		data, err = tarMember(data, member)
		if err != nil {
			return "", fmt.Errorf("%s: %w", url, err)
		}
	}
	tmp := fmt.Sprintf("%s.tmp-%d", dst, time.Now().UnixNano())
	if err := os.WriteFile(tmp, data, 0o755); err != nil {
		return "", err
	}
	if m.probeVersion(tmp) == "" {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("%s: the downloaded binary does not run", url)
	}
	if err := os.Rename(tmp, dst); err != nil {
		_ = os.Remove(tmp)
		return "", err
	}
	return "downloaded " + url, nil
}

func probeCtx(ctx context.Context) context.Context {
	c, cancel := context.WithTimeout(ctx, 15*time.Second)
	context.AfterFunc(c, cancel)
	return c
}

func (m *Manager) head(ctx context.Context, url string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := m.httpClient().Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	if resp.StatusCode >= 400 {
		return resp.StatusCode, fmt.Errorf("HEAD %s: %s", url, resp.Status)
	}
	return resp.StatusCode, nil
}

func (m *Manager) download(ctx context.Context, url string) ([]byte, error) {
	return m.get(ctx, url, 1<<30)
}

// get reads the body of a 200 answer to GET url, at most limit bytes.
func (m *Manager) get(ctx context.Context, url string, limit int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := m.httpClient().Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, limit))
}
