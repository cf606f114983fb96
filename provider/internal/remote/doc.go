// Package remote holds what every remote sandbox provider (E2B, Daytona,
// Vercel, and part 2's) shares, written once:
//
//   - API: JSON calls to a vendor's control plane with bounded retries of
//     429/502/503/504 (honouring Retry-After), never of 401/403, and errors
//     as *sandboxagent.ProviderAPIError.
//   - Bootstrap and StartServer: getting sandbox-agent into a sandbox (already
//     on PATH → an uploaded BinaryPath verified by sha256 → the release's
//     install.sh), installing agents, writing the per-sandbox token file and
//     starting the server with `sandbox-agent daemon start`, which is
//     health-gated and idempotent, so EnsureServer is one command.
//   - NewToken and ReadToken: the random per-sandbox token, kept in a 0600
//     file inside the sandbox so a later process can recover it by id.
//
// A vendor adapts its exec and file APIs to the Sandbox interface; the rest
// is here.
package remote
