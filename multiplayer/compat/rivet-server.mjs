// rivet-server.mjs: the reference server for conformance and benchmarks.
//
// A rivetkit 2.3.19 registry with the same actor shapes as the Go runtime
// (workspace, bench, sleepy), served by rivetkit's own local stack so that
// every compat script and the benchmark driver can run against "the real
// thing" and then, unchanged, against the Go gateway.
//
// How rivetkit 2.3 serves locally (observed, not documented in one place):
// registry.start() makes the Rust core (NAPI) spawn the bundled engine binary
// (@rivetkit/engine-cli-linux-x64-musl `rivet-engine start`) as a child
// process. The engine is the public endpoint: guard/gateway on ENGINE_PORT
// (default 6420, what clients talk to), the peer API on ENGINE_PORT+1 and
// metrics on ENGINE_PORT+10 (6430). Actors run in THIS node process, which
// keeps an envoy WebSocket to the engine. Engine data (file-system driver,
// RocksDB) lives under $RIVETKIT_STORAGE_PATH/.rivetkit/var/engine/db and a
// runtime.json there records the engine pid. The engine outlives its parent
// on purpose (a dev engine is reused by the next start), so this script kills
// it on exit. No network beyond loopback is needed.
//
// Usage:
//   node rivet-server.mjs [--port 6420] [--data-dir DIR] [--sleepy-timeout-ms 1000]
//                         [--bench-sleep-timeout-ms 600000] [--keep-data]
// When ready it prints one line:
//   READY {"endpoint":"http://127.0.0.1:6420","pid":<node>,"enginePid":<engine>,"dataDir":"…"}
// pid and enginePid are what the benchmark sums for RSS (actors live in the
// node process, connections and routing in the engine).

import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { createServer } from "node:net";
import { join } from "node:path";
import { parseArgs } from "node:util";

const { values: flags } = parseArgs({
	options: {
		port: { type: "string", default: "6420" },
		"data-dir": { type: "string" },
		"sleepy-timeout-ms": { type: "string", default: "1000" },
		"bench-sleep-timeout-ms": { type: "string", default: "600000" },
		"keep-data": { type: "boolean", default: false },
		"ready-timeout-ms": { type: "string", default: "60000" },
	},
});

const port = Number(flags.port);
const dataDir = flags["data-dir"] ?? mkdtempSync(join(tmpdir(), "rivet-server-"));
const ownsDataDir = flags["data-dir"] === undefined && !flags["keep-data"];

// The core reads these at registry start; set them before importing rivetkit
// so that nothing lands in ~/.rivetkit and the optional "services" actor host
// (a second binary, unrelated to the client protocol) is not started.
process.env.RIVETKIT_STORAGE_PATH = dataDir;
process.env.RIVET_RUN_SERVICES ??= "0";
process.env.RIVET_LOG_LEVEL ??= "error";
process.env.LOG_LEVEL ??= "warn";

// rivetkit attaches to any engine already answering on the port instead of
// spawning one, which would silently measure someone else's engine: refuse.
await new Promise((resolve, reject) => {
	const probe = createServer();
	probe.once("error", (e) =>
		reject(new Error(`port ${port} is busy (${e.code}); is another engine running?`)),
	);
	probe.listen(port, "127.0.0.1", () => probe.close(resolve));
}).catch((e) => {
	console.error("rivet-server:", e.message);
	process.exit(2);
});

const { actor, setup, UserError } = await import("rivetkit");

// workspace: the docs' Multiplayer actor without a sandbox. prompt broadcasts
// the user's message, then stands in for the agent's stream with one
// session.event, and returns.
const workspace = actor({
	createState: () => ({ sandboxId: null, baseUrl: null }),
	actions: {
		getSessionInfo: (c) => ({
			workspaceId: c.key[0],
			sandboxId: c.state.sandboxId,
		}),
		prompt: (c, { userId, text }) => {
			c.broadcast("chat.user", { userId, text, createdAt: Date.now() });
			c.broadcast("session.event", {
				type: "agent.message",
				sender: "agent",
				text: `echo: ${text}`,
				createdAt: Date.now(),
			});
			return { accepted: true };
		},
		// barrier: a no-op round trip. A connection's SubscriptionRequest is
		// sent before its queued actions, so once barrier returns the
		// subscription is known to the server.
		barrier: () => true,
		// Conformance helpers.
		fail: () => {
			throw new UserError("it went boom", {
				code: "boom",
				metadata: { why: "asked", n: 1 },
			});
		},
		tricky: () => trickyValue(),
		echo: (_c, x) => x,
		kick: async (c) => {
			// The reason follows the client's "group.code" convention so it
			// surfaces as an ActorError; the client then reconnects.
			await c.conn.disconnect("bench.kicked");
			return "kicked";
		},
	},
});

// bench: what the benchmark drives. echo for round trips, fanout for one
// broadcast of n bytes (receivers in one driver process
// compute delivery latency against their own send time), and a counter as the tiny state.
const bench = actor({
	createState: () => ({ count: 0 }),
	options: { sleepTimeout: Number(flags["bench-sleep-timeout-ms"]) },
	actions: {
		echo: (_c, x) => x,
		barrier: () => true,
		// fanout(n, tag?): one "fanout" event {tag, pad} whose pad is n bytes.
		fanout: (c, n, tag) => {
			c.broadcast("fanout", { tag: tag ?? null, pad: "x".repeat(Math.max(0, n | 0)) });
			return true;
		},
		increment: (c, by) => {
			c.state.count += by ?? 1;
			return c.state.count;
		},
		getCount: (c) => c.state.count,
	},
});

// sleepy: like bench's counter, but sleeps after a short idle time so the
// benchmark can measure the first action on a sleeping actor (wake).
const sleepy = actor({
	createState: () => ({ count: 0, wakes: 0 }),
	onWake: (c) => {
		c.state.wakes += 1;
	},
	options: { sleepTimeout: Number(flags["sleepy-timeout-ms"]) },
	actions: {
		increment: (c, by) => {
			c.state.count += by ?? 1;
			return c.state.count;
		},
		wakes: (c) => c.state.wakes,
	},
});

export function trickyValue() {
	return {
		big: 2n ** 53n + 1n,
		bytes: new Uint8Array([0, 1, 2, 250, 255]),
		dollar: ["$notATag", 1],
		nested: { list: [1, "two", null, { deep: [true, false] }], empty: {}, arr: [] },
		unicode: "héllo ☃ 🚀",
		float: 1.5,
		neg: -42,
	};
}

const registry = setup({
	use: { workspace, bench, sleepy },
	enginePort: port,
	engineHost: "127.0.0.1",
	noWelcome: true,
	shutdown: { disableSignalHandlers: true },
});

function enginePid() {
	try {
		const rt = JSON.parse(
			readFileSync(join(dataDir, ".rivetkit/var/engine/runtime.json"), "utf8"),
		);
		return rt.pid;
	} catch {
		return undefined;
	}
}

let stopping = false;
function stop(code) {
	if (stopping) return;
	stopping = true;
	const pid = enginePid();
	if (pid) {
		try {
			process.kill(pid, "SIGTERM");
		} catch {}
		// Bounded wait for the engine to go (it flushes RocksDB), then force.
		for (let i = 0; i < 50; i++) {
			try {
				process.kill(pid, 0);
			} catch {
				break;
			}
			spawnSync("sleep", ["0.1"]);
			if (i === 49) {
				try {
					process.kill(pid, "SIGKILL");
				} catch {}
			}
		}
	}
	if (ownsDataDir) rmSync(dataDir, { recursive: true, force: true });
	process.exit(code);
}
process.on("SIGINT", () => stop(0));
process.on("SIGTERM", () => stop(0));
process.on("uncaughtException", (e) => {
	console.error("rivet-server: uncaught", e);
	stop(1);
});

registry.start();

// Ready means a client can reach an actor end to end, not merely that the
// engine port is open: the envoy registers with the engine asynchronously.
const endpoint = `http://127.0.0.1:${port}`;
const { createClient } = await import("rivetkit/client");
const client = createClient({ endpoint, encoding: "json" });
const deadline = Date.now() + Number(flags["ready-timeout-ms"]);
for (;;) {
	try {
		const r = await Promise.race([
			client.bench.getOrCreate(["ready-probe"]).echo("ok"),
			new Promise((_, rej) => setTimeout(() => rej(new Error("probe timeout")), 5000)),
		]);
		if (r === "ok") break;
	} catch (e) {
		if (Date.now() > deadline) {
			console.error("rivet-server: not ready in time:", e?.message ?? e);
			stop(1);
		}
		await new Promise((r) => setTimeout(r, 250));
	}
}
console.log(
	"READY " +
		JSON.stringify({ endpoint, pid: process.pid, enginePid: enginePid(), dataDir }),
);
