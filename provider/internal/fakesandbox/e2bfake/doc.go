// Package e2bfake is an httptest fake of E2B for the e2b provider's tests:
// its control API (POST /sandboxes, GET/DELETE /sandboxes/{id},
// POST …/pause, POST …/connect, with X-API-Key and E2B's error bodies),
// envd in each sandbox (Connect-JSON process.Process/Start honouring
// Connect-Timeout-Ms and X-Access-Token, REST POST /files), and the
// host-routed proxy of sandbox ports (https://<port>-<id>.<domain>, or the
// shared host sandbox.<domain> with E2b-Sandbox-Id/E2b-Sandbox-Port
// headers), backed by fakesandbox: commands really run here, each sandbox
// in its own directory and process groups.
//
// Everything is one listener that routes by Host, as E2B's edge does;
// Fake.Client dials it for any host under the fake's domain, so the
// provider under test uses its real URL scheme (with http). Lifecycle hooks
// (Expire, Pause, Delete, HoldBoot) act behind the provider's back, and
// counters and logs (Creates, Execs, ServerStarts, Faults) feed assertions.
//
// Test support only; Unix only, as fakesandbox.
package e2bfake
