package agents

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestDiscoverCredentialsFromEnvironment(t *testing.T) {
	c := DiscoverCredentials(CredentialOptions{Env: []string{"ANTHROPIC_API_KEY=sk-ant-api03-abcdefgh123456", "CODEX_API_KEY=sk-proj-zzzzzzzz9999"}})
	if c.Anthropic == nil || c.Anthropic.Source != "environment:ANTHROPIC_API_KEY" || c.Anthropic.AuthType != "api_key" || c.Anthropic.Redacted != "sk-a...3456" {
		t.Fatalf("%+v", c.Anthropic)
	}
	if c.OpenAI == nil || c.OpenAI.Source != "environment:CODEX_API_KEY" {
		t.Fatalf("%+v", c.OpenAI)
	}
	lines := c.EnvLines(false)
	if !slices.Equal(lines, []string{"ANTHROPIC_API_KEY=sk-ant-api03-abcdefgh123456", "CLAUDE_API_KEY=sk-ant-api03-abcdefgh123456",
		"OPENAI_API_KEY=sk-proj-zzzzzzzz9999", "CODEX_API_KEY=sk-proj-zzzzzzzz9999"}) {
		t.Fatal(lines)
	}
	if l := c.EnvLines(true); l[0] != "export ANTHROPIC_API_KEY='sk-ant-api03-abcdefgh123456'" {
		t.Fatal(l)
	}
	// OAuth from the environment, and --no-oauth.
	c = DiscoverCredentials(CredentialOptions{Env: []string{"CLAUDE_CODE_OAUTH_TOKEN=sk-ant-oat01-xxxxxxxxxxxx"}})
	if c.Anthropic == nil || c.Anthropic.AuthType != "oauth" || c.EnvLines(false)[0] != "CLAUDE_CODE_OAUTH_TOKEN=sk-ant-oat01-xxxxxxxxxxxx" {
		t.Fatalf("%+v", c.Anthropic)
	}
	c = DiscoverCredentials(CredentialOptions{Env: []string{"CLAUDE_CODE_OAUTH_TOKEN=sk-ant-oat01-xxxxxxxxxxxx"}, NoOAuth: true})
	if c.Anthropic != nil {
		t.Fatal("oauth kept with NoOAuth")
	}
}

func TestDiscoverCredentialsFromAgentConfigFiles(t *testing.T) {
	home := t.TempDir()
	writeFile(t, filepath.Join(home, ".claude", ".credentials.json"), `{"claudeAiOauth":{"accessToken":"sk-ant-oat01-fromfile-0001","refreshToken":"r"}}`)
	writeFile(t, filepath.Join(home, ".codex", "auth.json"), `{"OPENAI_API_KEY":"sk-codex-file-key-0002","tokens":null}`)
	writeFile(t, filepath.Join(home, ".local", "share", "opencode", "auth.json"), `{"openrouter":{"type":"api","key":"sk-or-v1-aaaaaaaaaaaa"}}`)
	c := DiscoverCredentials(CredentialOptions{Env: []string{"HOME=" + home}})
	if c.Anthropic == nil || c.Anthropic.AuthType != "oauth" || !strings.HasPrefix(c.Anthropic.Source, "claude_code:") {
		t.Fatalf("%+v", c.Anthropic)
	}
	if c.OpenAI == nil || c.OpenAI.APIKey != "sk-codex-file-key-0002" || !strings.HasPrefix(c.OpenAI.Source, "codex:") {
		t.Fatalf("%+v", c.OpenAI)
	}
	if c.Other["openrouter"] == nil {
		t.Fatalf("%+v", c.Other)
	}
	// ~/.claude.json API key wins over nothing; environment wins over files.
	writeFile(t, filepath.Join(home, ".claude.json"), `{"primaryApiKey":"sk-ant-api03-primary-0003"}`)
	c = DiscoverCredentials(CredentialOptions{Env: []string{"HOME=" + home}, NoOAuth: true})
	if c.Anthropic == nil || c.Anthropic.APIKey != "sk-ant-api03-primary-0003" {
		t.Fatalf("%+v", c.Anthropic)
	}
	c = DiscoverCredentials(CredentialOptions{Env: []string{"HOME=" + home, "ANTHROPIC_API_KEY=sk-env-000000000000"}})
	if c.Anthropic.Source != "environment:ANTHROPIC_API_KEY" {
		t.Fatalf("%+v", c.Anthropic)
	}
	// credentialsAvailable follows the files too.
	m := NewManager(Options{DataDir: t.TempDir(), Env: []string{"HOME=" + home}})
	for agent, want := range map[string]bool{"claude": true, "codex": true, "opencode": true, "amp": true, "pi": true, "cursor": true, "mock": true} {
		if got := m.CredentialsAvailable(agent); got != want {
			t.Errorf("%s: %v", agent, got)
		}
	}
	empty := NewManager(Options{DataDir: t.TempDir(), Env: []string{"HOME=" + t.TempDir()}})
	for _, agent := range []string{"claude", "codex", "opencode", "amp"} {
		if empty.CredentialsAvailable(agent) {
			t.Errorf("%s: credentials without any", agent)
		}
	}
}

func TestRedact(t *testing.T) {
	if Redact("short") != "****" || Redact("sk-ant-api03-abcdefgh123456") != "sk-a...3456" {
		t.Fatal(Redact("short"), Redact("sk-ant-api03-abcdefgh123456"))
	}
}
