// Package vercel is a sandboxagent.SandboxProvider for Vercel Sandbox,
// speaking the current (v2, "named sandboxes and sessions", @vercel/sandbox
// ≥ 2) REST API on net/http: no Vercel SDK exists for Go.
//
// A sandbox is a named, persistent Vercel sandbox whose raw id is its name;
// it runs one session (a VM) at a time. Create declares the agent port, sets
// an explicit session timeout and installs and starts sandbox-agent with a
// per-sandbox token (see provider/internal/remote). When the session times
// out or is stopped, the sandbox's filesystem is kept (persistent) but its
// processes are gone; EnsureServer resumes it with
// GET /v2/sandboxes/{name}?resume=true (a new session) and runs
// `sandbox-agent daemon start` again, which is idempotent.
//
// Differences from upstream's vercel provider (sandbox-agent 0.4.2):
//   - The session timeout is set (Options.Timeout, default 45 minutes)
//     instead of the vendor's 5-minute default, and EnsureServer extends a
//     running session (Options.ExtendBy).
//   - Destroy deletes the sandbox (DELETE /v2/sandboxes/{name}); upstream's
//     stop() only ends the session and keeps a persistent sandbox. Pause is
//     that stop.
//   - The server requires a random token (Options.NoToken opts out);
//     upstream starts it with --no-token on a public URL.
//   - Sandboxes are addressed by name (SDK ≥ 2), not by the v1 sandboxId.
//   - The working directory is the session's cwd as the API reports it.
package vercel
