// Package e2b is a sandboxagent.SandboxProvider for E2B
// (https://e2b.dev) sandboxes, written on net/http: E2B's REST control
// plane (X-API-Key) for the sandbox's lifecycle, and the envd daemon inside
// the sandbox (Connect-JSON process.Process/Start for commands, its REST
// /files for uploads) to install and start sandbox-agent.
//
// Create makes a sandbox from Options.Template (default "base") with an
// explicit lifetime (Options.Timeout, default 1 h; on expiry E2B pauses it
// unless Options.KillOnTimeout), installs sandbox-agent (already on PATH →
// Install.BinaryPath uploaded and verified → the release's install.sh) and
// starts it with `sandbox-agent daemon start` behind a random per-sandbox
// token. The agent is reached at https://3000-<id>.<domain>.
//
// Differences from upstream's TypeScript e2b provider:
//
//   - Destroy deletes the sandbox (upstream's destroy only pauses it, so a
//     "destroyed" sandbox kept its disk and its billing until it expired).
//     Pause pauses it (with its memory), Kill deletes it too.
//   - The server is started with a token (upstream: --no-token on a public
//     URL); Token returns it, read back from the sandbox by a new process.
//     Options.NoToken opts out.
//   - The server's start command carries no Connect-Timeout-Ms, which envd
//     turns into the process's lifetime (upstream issue 152: the server
//     died after 60 s). The command is bounded by its context instead, and
//     `daemon start` returns once the server is healthy.
//   - EnsureServer is idempotent: connect (which resumes a paused sandbox)
//     then `daemon start`, which does nothing when the server is running.
//   - Reconnect to a deleted sandbox is *sandboxagent.SandboxDestroyedError.
//   - A non-public sandbox (Options.Private) gets the traffic access token
//     on every request to its URL through HTTPClient.
package e2b
