// Package daytona is a sandboxagent.SandboxProvider for Daytona
// (https://daytona.io), written on net/http against Daytona's REST API
// (no Daytona SDK is served for Go).
//
// Create makes a sandbox with POST /sandbox (a snapshot, or an image built
// as "FROM <image>"), waits until it is "started", installs sandbox-agent
// through the toolbox API (already on PATH, an uploaded Install.BinaryPath
// verified by sha256, or the release's install.sh) and starts it with
// `sandbox-agent daemon start` and a random per-sandbox token kept in a
// 0600 file in the sandbox. The agent is reached through the sandbox's
// preview URL with the X-Daytona-Preview-Token header added by HTTPClient,
// or through signed preview URLs (Options.SignedURLTTL) refreshed before
// they expire.
//
// Differences from upstream's TypeScript daytona provider:
//   - The server requires a token (upstream: --no-token on a public URL);
//     Options.NoToken opts out.
//   - autoStopInterval is always sent explicitly (default 0 = off, as
//     upstream; Daytona's own default is 15 idle minutes). When the sandbox
//     is stopped anyway, EnsureServer starts it and the server again.
//   - The agent URL does not expire: upstream returns a 4-hour signed URL
//     that is never refreshed.
//   - Reconnect (404 → *sandboxagent.SandboxDestroyedError), Pause (stop)
//     and Kill (delete) exist; Destroy retries Daytona's 409 "state change
//     in progress".
//   - The server is started with the health-gated, idempotent
//     `daemon start` instead of `nohup … &`, so EnsureServer never starts a
//     second one and reports a server that fails to start.
package daytona
