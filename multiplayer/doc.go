// Package multiplayer is an actor runtime for collaborative sessions: one
// actor per workspace owns its sandbox-agent session and state, many
// clients connect to it and receive its broadcasts. It speaks RivetKit's
// client protocol (Runtime.Handler), so the official rivetkit client —
// createClient(endpoint).workspace.getOrCreate([id]).connect() — works
// against it unchanged, in JSON and in BARE.
//
// An actor type is a Def: typed state S (persisted, JSON), per-wake
// variables V (never persisted), lifecycle hooks and actions. Actions are
// turns (Action: serialised, exclusive state access) or long actions
// (Long: their own goroutine; state only through AsyncCtx.Do). Broadcast
// sends an ephemeral event to subscribed connections; Publish stores it
// durably with a sequence number first, so clients can resume it.
//
// Where actors live is a backend.Backend (OpenBackend chooses by
// configuration): SQLite in one process, or NATS JetStream across
// machines, with at most one live instance per actor key and fenced
// writes. See docs/multiplayer.md.
package multiplayer
