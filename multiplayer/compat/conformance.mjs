// conformance.mjs: drives the official rivetkit client against ENDPOINT and
// checks the behaviours the multiplayer gateway promises.
//
//   node conformance.mjs ENDPOINT [--encoding json|bare] [--client rivetkit|rivetkit-2.2|rivetkit-2.0]
//                                 [--step-timeout-ms 10000] [--key-prefix ws]
//
// Output: one JSON line per check {name, ok, detail}; exit status 1 if any
// check failed. Every await is raced against a timer so that a server that
// drops a message fails the named step instead of hanging the run (the client
// itself has no action timeout: see reference-rivetkit-client.md §4).
//
// The server must provide the `workspace` actor of rivet-server.mjs:
// getSessionInfo, prompt, barrier, fail, tricky, echo, kick.

import { parseArgs } from "node:util";
import { isDeepStrictEqual, inspect } from "node:util";

const { values: flags, positionals } = parseArgs({
	allowPositionals: true,
	options: {
		encoding: { type: "string", default: "json" },
		client: { type: "string", default: "rivetkit" },
		"step-timeout-ms": { type: "string", default: "10000" },
		"key-prefix": { type: "string", default: "ws" },
		// --server go: the Go runtime's values are plain JSON, so a
		// Uint8Array reaches a Go action (and comes back) as its base64
		// string (docs/multiplayer.md, "Differences from Rivet").
		server: { type: "string", default: "rivetkit" },
	},
});
const endpoint = positionals[0];
if (!endpoint || !["json", "bare"].includes(flags.encoding)) {
	console.error(
		"usage: node conformance.mjs ENDPOINT [--encoding json|bare] [--client rivetkit|rivetkit-2.2|rivetkit-2.0]",
	);
	process.exit(2);
}
if (!["rivetkit", "rivetkit-2.2", "rivetkit-2.0"].includes(flags.client)) {
	console.error(`unknown --client ${flags.client}`);
	process.exit(2);
}
const STEP_MS = Number(flags["step-timeout-ms"]);
// Keys are unique per run so a persisted actor from an earlier run (or a
// concurrent run with another client version) cannot leak events in.
const runId = `${Date.now().toString(36)}-${process.pid}`;
const wsKey = `${flags["key-prefix"]}-1-${runId}`;

const { createClient } = await import(`${flags.client}/client`);

const results = [];
function report(name, ok, detail) {
	const line = { name, ok, detail: detail ?? null };
	results.push(line);
	console.log(JSON.stringify(line, (_k, v) => (typeof v === "bigint" ? `${v}n` : v)));
}

class StepTimeout extends Error {}

// within races p against a timer; what names the await that hung.
function within(p, what, ms = STEP_MS) {
	let t;
	return Promise.race([
		Promise.resolve(p),
		new Promise((_, rej) => {
			t = setTimeout(() => rej(new StepTimeout(`timed out after ${ms} ms: ${what}`)), ms);
		}),
	]).finally(() => clearTimeout(t));
}

// expectReject awaits p and returns the error it rejects with, failing if it
// resolves.
async function expectReject(p, what) {
	try {
		const v = await within(p, what);
		throw new Error(`${what}: resolved with ${inspect(v)} instead of rejecting`);
	} catch (e) {
		if (e instanceof StepTimeout || String(e?.message).includes("instead of rejecting")) throw e;
		return e;
	}
}

// step runs one named check. fn returns the detail on success and throws on
// failure; later steps still run (each sets up what it needs).
async function step(name, fn) {
	try {
		const detail = await within(fn(), `step ${name}`, STEP_MS * 3);
		report(name, true, detail);
		return true;
	} catch (e) {
		report(name, false, e?.stack?.split("\n").slice(0, 3).join(" | ") ?? String(e));
		return false;
	}
}

function assertEq(got, want, what) {
	if (!isDeepStrictEqual(got, want)) {
		throw new Error(`${what}: got ${inspect(got, { depth: 6 })}, want ${inspect(want, { depth: 6 })}`);
	}
}

// waitOpen resolves on the connection's next open (Init received).
function waitOpen(conn, what) {
	if (conn.connStatus === "connected") return Promise.resolve();
	return within(
		new Promise((resolve) => {
			const off = conn.onOpen(() => {
				off();
				resolve();
			});
		}),
		what,
	);
}

// eventQueue subscribes and buffers events, so a test can await the next one
// with a timeout instead of racing a callback.
function eventQueue(conn, name) {
	const buf = [];
	const waiters = [];
	conn.on(name, (...args) => {
		const w = waiters.shift();
		if (w) w(args);
		else buf.push(args);
	});
	return {
		next(what) {
			if (buf.length) return Promise.resolve(buf.shift());
			return within(new Promise((r) => waiters.push(r)), what ?? `event ${name}`);
		},
		get pending() {
			return buf.length;
		},
	};
}

function errShape(e) {
	return {
		type: e?.constructor?.name,
		group: e?.group,
		code: e?.code,
		message: e?.message,
		metadata: e?.metadata,
	};
}

const expectedTricky = {
	big: 2n ** 53n + 1n,
	bytes: new Uint8Array([0, 1, 2, 250, 255]),
	dollar: ["$notATag", 1],
	nested: { list: [1, "two", null, { deep: [true, false] }], empty: {}, arr: [] },
	unicode: "héllo ☃ 🚀",
	float: 1.5,
	neg: -42,
};
if (flags.server === "go") expectedTricky.bytes = Buffer.from(expectedTricky.bytes).toString("base64");

// Normalise a decoded value so Buffer vs Uint8Array and ArrayBuffer views do
// not count as differences, while everything else must match exactly.
function norm(v) {
	if (v instanceof Uint8Array) return { $bytes: Array.from(v) };
	if (v instanceof ArrayBuffer) return { $bytes: Array.from(new Uint8Array(v)) };
	if (Array.isArray(v)) return v.map(norm);
	if (v && typeof v === "object") {
		return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, norm(x)]));
	}
	return v;
}

const client = createClient({ endpoint, encoding: flags.encoding, devtools: false });
const opened = [];
// Watchdog: whatever happens, the process ends.
const watchdog = setTimeout(() => {
	report("watchdog", false, "whole run exceeded its budget");
	process.exit(1);
}, STEP_MS * 40);
watchdog.unref();

await step("metadata", async () => {
	const res = await within(fetch(new URL("/metadata?namespace=default", endpoint)), "GET /metadata");
	if (!res.ok) throw new Error(`GET /metadata: HTTP ${res.status}`);
	const body = await within(res.json(), "metadata body");
	return { status: res.status, body };
});

let connA;
await step("connect", async () => {
	connA = client.workspace.getOrCreate([wsKey]).connect();
	opened.push(connA);
	await waitOpen(connA, "connA open (Init)");
	if (connA.connStatus !== "connected") throw new Error(`status ${connA.connStatus}`);
	return { status: connA.connStatus };
});

let qA, connB, qB;
await step("subscribe", async () => {
	qA = eventQueue(connA, "chat.user");
	connB = client.workspace.getOrCreate([wsKey]).connect();
	opened.push(connB);
	qB = eventQueue(connB, "chat.user");
	await waitOpen(connB, "connB open (Init)");
	// The barrier makes each SubscriptionRequest reach the server before the
	// prompt below: the client sends subscriptions first on Init, then queued
	// actions, and the server handles one connection's messages in order.
	assertEq(await within(connA.barrier(), "connA.barrier()"), true, "barrier A");
	assertEq(await within(connB.barrier(), "connB.barrier()"), true, "barrier B");
	return "two connections subscribed to chat.user";
});

await step("prompt-broadcast", async () => {
	const text = `hello ${runId}`;
	const ret = await within(connA.prompt({ userId: "user-1", text }), "connA.prompt()");
	assertEq(ret, { accepted: true }, "prompt return value");
	const [evA] = await qA.next("chat.user on connA");
	const [evB] = await qB.next("chat.user on connB");
	for (const [who, ev] of [["A", evA], ["B", evB]]) {
		assertEq({ userId: ev?.userId, text: ev?.text }, { userId: "user-1", text }, `chat.user on ${who}`);
		if (typeof ev.createdAt !== "number") {
			throw new Error(`createdAt on ${who} is ${typeof ev.createdAt} (${inspect(ev.createdAt)}), want number`);
		}
	}
	return { returned: ret, event: evA };
});

await step("stateless-action", async () => {
	const info = await within(client.workspace.getOrCreate([wsKey]).getSessionInfo(), "handle.getSessionInfo()");
	assertEq(info, { workspaceId: wsKey, sandboxId: null }, "getSessionInfo");
	return info;
});

const wantBoom = { group: "user", code: "boom", metadata: { why: "asked", n: 1 } };
await step("user-error-conn", async () => {
	const e = await expectReject(connA.fail(), "connA.fail()");
	const s = errShape(e);
	assertEq({ group: s.group, code: s.code, metadata: s.metadata }, wantBoom, "ActorError over connection");
	if (!String(s.message).includes("boom")) throw new Error(`message ${s.message}`);
	return s;
});

await step("user-error-stateless", async () => {
	const e = await expectReject(client.workspace.getOrCreate([wsKey]).fail(), "handle.fail()");
	const s = errShape(e);
	assertEq({ group: s.group, code: s.code, metadata: s.metadata }, wantBoom, "ActorError over HTTP");
	return s;
});

await step("tricky-values-conn", async () => {
	const out = await within(connA.tricky(), "connA.tricky()");
	assertEq(norm(out), norm(expectedTricky), "tricky output");
	if (typeof out.big !== "bigint") throw new Error(`big is ${typeof out.big}`);
	const echoed = await within(connA.echo(expectedTricky), "connA.echo(tricky)");
	assertEq(norm(echoed), norm(expectedTricky), "tricky echo");
	return "bigint 2^53+1, Uint8Array, [\"$notATag\",1], nested: exact";
});

await step("tricky-values-stateless", async () => {
	const h = client.workspace.getOrCreate([wsKey]);
	const out = await within(h.tricky(), "handle.tricky()");
	assertEq(norm(out), norm(expectedTricky), "tricky output");
	const echoed = await within(h.echo(expectedTricky), "handle.echo(tricky)");
	assertEq(norm(echoed), norm(expectedTricky), "tricky echo");
	return "exact";
});

// Unknown action: record rivetkit's own answer; both transports must agree
// on group/code with the reference (rivet-server) answer, which is
// { group: "actor", code: "action_not_found" } for rivetkit 2.3.19.
const wantUnknown = { group: "actor", code: "action_not_found" };
await step("unknown-action-conn", async () => {
	const e = await expectReject(connA.noSuchAction(1), "connA.noSuchAction()");
	const s = errShape(e);
	assertEq({ group: s.group, code: s.code }, wantUnknown, "unknown action over connection");
	return s;
});

await step("unknown-action-stateless", async () => {
	const e = await expectReject(client.workspace.getOrCreate([wsKey]).noSuchAction(1), "handle.noSuchAction()");
	const s = errShape(e);
	assertEq({ group: s.group, code: s.code }, wantUnknown, "unknown action over HTTP");
	return s;
});

await step("resolve", async () => {
	const id = await within(client.workspace.getOrCreate([wsKey]).resolve(), "handle.resolve()");
	if (typeof id !== "string" || id.length === 0) throw new Error(`actor id ${inspect(id)}`);
	// The id must name the same actor that the connection reached.
	const connId = connA.actorId;
	if (connId !== undefined && connId !== id) throw new Error(`resolve ${id} != conn actorId ${connId}`);
	return { actorId: id };
});

await step("reconnect-after-kick", async () => {
	const statuses = [];
	const offStatus = connA.onStatusChange((s) => statuses.push(s));
	const errors = [];
	const offErr = connA.onError((e) => errors.push(errShape(e)));
	// Wait for connected *after* having left it: rivetkit 2.3's onOpen fires
	// at once for an already-open connection (2.0/2.2's does not), so the
	// status stream is the portable signal.
	const reopened = new Promise((resolve) => {
		let left = false;
		const off = connA.onStatusChange((s) => {
			if (s !== "connected") left = true;
			else if (left) {
				off();
				resolve();
			}
		});
	});
	// The server closes the socket with reason "bench.kicked" while the kick
	// call is in flight, so the call must reject. 2.2+ parse the close reason
	// "group.code" into an ActorError (and report it on onError); 2.0.33 only
	// rejects with a plain Error naming the close code and reason.
	const kickErr = await expectReject(connA.kick(), "connA.kick()");
	const kickResult = { rejected: errShape(kickErr) };
	if (flags.client === "rivetkit-2.0") {
		if (!String(kickErr?.message).includes("bench.kicked")) {
			throw new Error(`kick rejection does not name the reason: ${kickErr?.message}`);
		}
	} else {
		assertEq({ group: kickErr?.group, code: kickErr?.code }, { group: "bench", code: "kicked" }, "kick rejection");
	}
	await within(reopened, "connA reopened after kick");
	if (connA.connStatus !== "connected") throw new Error(`status after reopen ${connA.connStatus}`);
	// Re-subscription happens on Init; a barrier orders it before the prompt.
	await within(connA.barrier(), "connA.barrier() after reconnect");
	const text = `after kick ${runId}`;
	await within(connB.prompt({ userId: "user-2", text }), "connB.prompt() after kick");
	// Drain anything left from before the kick, then look for this message.
	for (;;) {
		const [ev] = await qA.next("chat.user on connA after reconnect");
		if (ev?.text === text) break;
	}
	const [evB] = await qB.next("chat.user on connB after kick");
	assertEq(evB?.text, text, "connB event");
	offStatus();
	offErr();
	return { kick: kickResult, statuses, errors };
});

await step("dispose", async () => {
	for (const c of opened) await within(c.dispose(), "conn.dispose()");
	await within(client.dispose?.(), "client.dispose()");
	return "ok";
});

const failed = results.filter((r) => !r.ok);
console.log(
	JSON.stringify({
		summary: true,
		client: flags.client,
		encoding: flags.encoding,
		passed: results.length - failed.length,
		failed: failed.length,
	}),
);
process.exit(failed.length ? 1 : 0);
