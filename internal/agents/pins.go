package agents

// Pin is how an agent is installed when the ACP registry cannot be used:
// an npm adapter package (the ACP process) and, for agents that need one, a
// native CLI. Every pin here was checked with `npm install` on the
// reference machines (see reference-agents.md §3.2, §4a); upstream's own
// fallback pins for claude (claude-agent-acp@0.20.0: broken), codex
// (codex-acp@0.1.0: does not exist) and cursor (0.1.0: does not exist) do
// not install or do not run, so they are not used.
type Pin struct {
	// RegistryID is the agent's id in the ACP registry.
	RegistryID string
	// Package and Version are the npm adapter package; Hint is the
	// executable it installs into node_modules/.bin. Empty Package means
	// the ACP process is the native binary itself (opencode: `opencode acp`).
	Package, Version, Hint string
	// Args are passed to the ACP process by the launcher.
	Args []string
	// Extra are more npm packages installed next to the adapter whose
	// executables the launcher puts on PATH (pi-acp runs `pi`).
	Extra []string
	// Binary is the native CLI's file name under <data>/bin ("" = none).
	Binary string
	// NativePackage/NativeVersion/NativeHint are the npm fallback for the
	// native CLI when upstream's download sources are unreachable.
	NativePackage, NativeVersion, NativeHint string
	// Help is appended to install errors: what the user can do when this
	// agent's packages or backend are out of reach.
	Help string
}

// pins are the built-in fallbacks (registry unreachable or disabled).
var pins = map[string]Pin{
	"claude": {RegistryID: "claude-acp", Package: "@agentclientprotocol/claude-agent-acp", Version: "0.49.0", Hint: "claude-agent-acp",
		Binary: "claude", NativePackage: "@anthropic-ai/claude-code", NativeVersion: "2.1.197", NativeHint: "claude"},
	"codex": {RegistryID: "codex-acp", Package: "@zed-industries/codex-acp", Version: "0.16.0", Hint: "codex-acp",
		Binary: "codex", NativePackage: "@openai/codex", NativeVersion: "0.169.0", NativeHint: "codex"},
	"opencode": {RegistryID: "opencode", Args: []string{"acp"},
		Binary: "opencode", NativePackage: "opencode-ai", NativeVersion: "1.18.33", NativeHint: "opencode"},
	"amp": {RegistryID: "amp-acp", Package: "amp-acp", Version: "0.7.0", Hint: "amp-acp",
		Help: "Amp needs the npm package amp-acp (not found on the configured npm registry) and an Amp account: " +
			"set AMP_API_KEY (from https://ampcode.com/settings) and make sure `npm view amp-acp` works, " +
			"or set SANDBOX_AGENT_ACP_REGISTRY_URL to an ACP registry that lists amp-acp"},
	"pi": {RegistryID: "pi-acp", Package: "pi-acp", Version: "0.0.23", Hint: "pi-acp",
		Extra: []string{"@earendil-works/pi-coding-agent@0.74.2"}},
	"cursor": {RegistryID: "cursor-agent-acp", Package: "@blowmage/cursor-agent-acp", Version: "0.7.1", Hint: "cursor-agent-acp",
		Help: cursorHelp},
}

// PinFor returns the built-in pin of agent (false for mock and unknown ids).
func PinFor(agent string) (Pin, bool) {
	p, ok := pins[agent]
	return p, ok
}

const cursorHelp = "Cursor's ACP adapter runs the Cursor CLI `cursor-agent`, which is not on npm: install it with " +
	"`curl https://cursor.com/install -fsS | bash`, make sure `cursor-agent` is on the server's PATH, then log in with " +
	"`cursor-agent login` or set CURSOR_API_KEY"
