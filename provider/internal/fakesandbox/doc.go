// Package fakesandbox is the vendor-independent core of the providers'
// test fakes (E2B, Daytona, Vercel, later Modal, Sprites, Cloudflare). It is
// test support: only providers' tests import it, never production code.
//
// A vendor fake is an httptest server that speaks the vendor's documented
// API (its JSON shapes, status codes and error bodies) and delegates the
// real work here:
//
//   - Create: New(t.TempDir(), Options{ID: id, Creating: slowBoot}). The
//     sandbox gets its own directory, which is its filesystem root, with
//     HOME at /home/user (Options.Home) and TMPDIR under it. Call MarkReady
//     when the fake's boot should finish.
//   - Commands: Run for foreground commands (pass a context with the
//     vendor's timeout, e.g. E2B's Connect-Timeout-Ms: at the deadline the
//     whole process group is killed); Start for background commands, which
//     outlive the API request that started them. Every command runs under
//     /bin/sh -c in its own process group.
//   - Files: WriteFile/ReadFile take absolute sandbox paths (relative ones
//     are from HOME) and refuse, with ErrEscape, anything that would leave
//     the sandbox directory, including through symlinks. The host path a
//     command sees as $HOME/x is accepted as the same file. PATH is the
//     system's directories and $HOME/.local/bin only.
//   - Ports: a server inside listens on 127.0.0.1 on a real free port that
//     Port(logical) allocates (e.g. Port(2468)). Commands started after the
//     allocation see it as $SANDBOX_PORT_2468; when the command comes from
//     the provider under test and names the logical port ("--port 2468"),
//     the fake rewrites it to the real one before Start. Allocate the ports
//     a sandbox exposes when creating it.
//   - Port URLs: mount a Proxy whose Route maps the vendor's host-routed
//     (2468-<id>.e2b.app) or path-routed URL to (sandbox, logical port) and
//     whose Unavailable writes the vendor's answer for a sandbox that is
//     creating, paused, stopped, deleted, or has nothing listening (E2B: a
//     502 JSON body). The proxy flushes at once, so SSE streams, and passes
//     WebSocket upgrades through.
//   - Lifecycle: Pause(ctx, Freeze) freezes every process group with
//     SIGSTOP and Resume continues them (E2B's memory snapshot: the server
//     survives); Pause(ctx, Kill) kills them and Resume comes back empty
//     (Daytona/Vercel stop, a cold boot). Destroy kills every group, waits,
//     removes the directory; afterwards calls report ErrNotFound, which the
//     fake maps to its vendor's 404. On Linux, every process of the sandbox
//     carries a marker in its environment, so daemons that left their
//     command's process group with setsid (sandbox-agent daemon start) are
//     frozen, killed and waited for too; Leftovers lists any still alive.
//   - Vendor failures: wrap the fake's API handler in Faults.Wrap; FailNext
//     queues 401/429 (with Retry-After)/5xx answers for the next requests,
//     and Log lists every request for assertions.
//
// Everything is safe for concurrent use. Tests should Destroy every sandbox
// (t.Cleanup) so no process outlives them.
//
// The package builds on Unix only (process groups, SIGSTOP/SIGCONT); on other
// systems it is empty, so the SDK's cross builds still cover provider/....
package fakesandbox
