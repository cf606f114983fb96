// Package boundaries holds no code: its test enforces which internal
// packages the Go SDK may depend on (docs/architecture.md, "Boundaries").
//
// The SDK is what an application imports — the module root, acp/...,
// persist/... and provider/... — so everything it pulls in is built into
// someone else's binary. Server packages (routes, agents, processes,
// filesystem) must never be among them; the few internal packages the SDK
// shares with the server are listed in the test, and adding one is a
// decision made there, in review, not by accident.
package boundaries
