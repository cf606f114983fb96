package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func runEnv(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(append(os.Environ(), "HOME="+t.TempDir()), env...)
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

func TestInstallAgentCLI(t *testing.T) {
	data := t.TempDir()
	out, errOut, code := runEnv(t, nil, "install-agent", "mock", "--data-dir", data)
	if code != 0 {
		t.Fatal(code, errOut)
	}
	var res struct {
		AlreadyInstalled bool `json:"alreadyInstalled"`
		Artifacts        []struct{ Kind, Path, Source, Version string }
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(out, err)
	}
	if res.AlreadyInstalled || len(res.Artifacts) != 1 || res.Artifacts[0].Kind != "AgentProcess" || res.Artifacts[0].Source != "Builtin" ||
		res.Artifacts[0].Path != filepath.Join(data, "bin", "agent_processes", "mock-acp") {
		t.Fatalf("%s", out)
	}
	// Not a terminal: one quiet line per finished step.
	if errOut != "install-agent: mock: launcher: done (0s): "+res.Artifacts[0].Path+"\n" {
		t.Fatalf("progress %q", errOut)
	}
	// SANDBOX_AGENT_DATA_DIR works as the flag does; the second run is a no-op.
	out, _, code = runEnv(t, []string{"SANDBOX_AGENT_DATA_DIR=" + data}, "install-agent", "mock")
	if code != 0 || strings.TrimSpace(out) != `{"alreadyInstalled":true,"artifacts":[]}` {
		t.Fatal(code, out)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"install-agent", "bogus"}, 1, "unsupported agent: bogus"},
		{[]string{"install-agent"}, 2, "<AGENT>"},
		{[]string{"install-agent", "--all", "--agent-version", "1"}, 2, "need a single agent"},
	} {
		_, errOut, code := runEnv(t, nil, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: %d %q", tc.args, code, errOut)
		}
	}
}

func TestInstallAgentCLIFailureNamesTheStep(t *testing.T) {
	npmDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(npmDir, "npm"), []byte("#!/bin/sh\necho 'npm error code EAI_AGAIN' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	env := []string{"PATH=" + npmDir + ":" + os.Getenv("PATH"), "SANDBOX_AGENT_ACP_REGISTRY_URL=off"}
	_, errOut, code := runEnv(t, env, "install-agent", "cursor", "--data-dir", data)
	if code != 1 || !strings.Contains(errOut, "install-agent: cursor: agent_process: fail") ||
		!strings.Contains(errOut, "step agent_process failed") || !strings.Contains(errOut, "npm registry is unreachable") {
		t.Fatalf("%d %s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(data, "bin", "agent_processes", "cursor-acp")); !os.IsNotExist(err) {
		t.Fatal("launcher written by a failed install")
	}
}

func TestCredentialsCLI(t *testing.T) {
	secret := "sk-ant-api03-SECRETSECRET-9876"
	env := []string{"ANTHROPIC_API_KEY=" + secret, "OPENAI_API_KEY=", "CODEX_API_KEY=", "CLAUDE_API_KEY=", "CLAUDE_CODE_OAUTH_TOKEN=", "ANTHROPIC_AUTH_TOKEN="}
	out, _, code := runEnv(t, env, "credentials", "extract-env")
	if code != 0 || out != "ANTHROPIC_API_KEY="+secret+"\nCLAUDE_API_KEY="+secret+"\n" {
		t.Fatalf("%d %q", code, out)
	}
	out, _, _ = runEnv(t, env, "credentials", "extract-env", "--export")
	if !strings.HasPrefix(out, "export ANTHROPIC_API_KEY='"+secret+"'\n") {
		t.Fatalf("%q", out)
	}
	out, _, code = runEnv(t, env, "credentials", "extract")
	if code != 0 || strings.Contains(out, secret) || !strings.Contains(out, `"api_key": "sk-a...9876"`) || !strings.Contains(out, `"openai": null`) {
		t.Fatalf("secret shown or bad output: %s", out)
	}
	out, _, _ = runEnv(t, env, "credentials", "extract", "-a", "claude", "--reveal")
	if !strings.Contains(out, secret) {
		t.Fatal(out)
	}
	_, errOut, code := runEnv(t, env, "credentials", "extract", "-a", "codex")
	if code != 1 || !strings.Contains(errOut, "no credentials found for provider openai") {
		t.Fatal(code, errOut)
	}
}
