// browser.mjs: two Chromium tabs on one workspace, driven like a person.
//
//   node browser/browser.mjs ENDPOINT [PAGE_URL] [--screenshot FILE] [--timeout-ms 20000]
//
// PAGE_URL is the page served by browser/serve.mjs (or by the Go example);
// omitted, this script serves browser/ itself on a free loopback port.
// Tab A types a message and presses send; both tabs must show the
// chat.user broadcast and the session.event reply. Every request the tabs
// make is recorded; one to an origin other than the page's or ENDPOINT's
// is blocked and fails the run ("zero requests leave the origin").
// Output: one JSON line per check {name, ok, detail}; exit 1 on any failure.
//
// Chromium: Debian's /usr/bin/chromium (apt-get install -y chromium),
// headless, a fresh --user-data-dir, no sandbox/GPU/QUIC/background traffic.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";
import { startServer } from "./serve.mjs";

const { values: flags, positionals } = parseArgs({
	allowPositionals: true,
	options: {
		screenshot: { type: "string" },
		"timeout-ms": { type: "string", default: "20000" },
		chromium: { type: "string", default: "/usr/bin/chromium" },
	},
});
const [endpoint, pageArg] = positionals;
if (!endpoint) {
	console.error("usage: node browser/browser.mjs ENDPOINT [PAGE_URL] [--screenshot FILE]");
	process.exit(2);
}
const T = Number(flags["timeout-ms"]);
let failed = 0;
function report(name, ok, detail) {
	if (!ok) failed++;
	console.log(JSON.stringify({ name, ok, detail: detail ?? null }));
}
function within(p, what, ms = T) {
	let t;
	return Promise.race([
		p,
		new Promise((_, rej) => {
			t = setTimeout(() => rej(new Error(`timed out after ${ms} ms: ${what}`)), ms);
		}),
	]).finally(() => clearTimeout(t));
}
const watchdog = setTimeout(() => {
	report("watchdog", false, "whole run exceeded its budget");
	process.exit(1);
}, T * 6);
watchdog.unref();

let server;
let pageUrl = pageArg;
if (!pageUrl) {
	server = await startServer();
	pageUrl = server.url;
}
const pageOrigin = new URL(pageUrl).origin;
const endpointOrigin = new URL(endpoint).origin;
const userDataDir = mkdtempSync(join(tmpdir(), "mp-chromium-"));
const requests = {}; // origin -> count
const blocked = [];
const sockets = [];
const consoleErrors = [];
let context;

try {
	context = await within(
		chromium.launchPersistentContext(userDataDir, {
			executablePath: flags.chromium,
			headless: true,
			args: [
				"--no-sandbox",
				"--disable-gpu",
				"--disable-quic",
				"--no-first-run",
				"--disable-background-networking",
				"--disable-component-update",
				"--disable-sync",
			],
		}),
		"launch chromium",
	);
	await context.route("**/*", (route) => {
		const u = new URL(route.request().url());
		requests[u.origin] = (requests[u.origin] ?? 0) + 1;
		if (u.protocol === "data:" || u.origin === pageOrigin || u.origin === endpointOrigin) {
			return route.continue();
		}
		blocked.push(u.href);
		return route.abort("blockedbyclient");
	});

	const workspace = `ws-browser-${Date.now().toString(36)}`;
	const open = async (user) => {
		const page = await context.newPage();
		page.on("console", (m) => {
			if (m.type() === "error") consoleErrors.push(`${user}: ${m.text()}`);
		});
		page.on("websocket", (ws) => sockets.push(new URL(ws.url()).origin));
		const u = new URL(pageUrl);
		u.searchParams.set("endpoint", endpoint);
		u.searchParams.set("workspace", workspace);
		u.searchParams.set("user", user);
		await within(page.goto(u.href), `load page for ${user}`);
		return page;
	};

	let a, b;
	try {
		[a, b] = await Promise.all([open("alice"), open("bob")]);
		await within(
			Promise.all([a, b].map((p) => p.waitForFunction(() => window.mp?.ready === true, null, { timeout: T }))),
			"both tabs connected (barrier returned)",
		);
		report("two-tabs-connected", true, { workspace });
	} catch (e) {
		const state = await Promise.all(
			[a, b].filter(Boolean).map((p) => p.evaluate(() => window.mp).catch((x) => String(x))),
		);
		report("two-tabs-connected", false, { error: e.message, state, consoleErrors });
		throw e;
	}

	const text = `hello from alice ${Date.now()}`;
	await a.fill("#text", text);
	await a.click("button");
	for (const [who, p] of [["alice", a], ["bob", b]]) {
		try {
			await p.waitForFunction(
				(t) => window.mp.chat.some((e) => e.text === t && e.userId === "alice" && typeof e.createdAt === "number"),
				text,
				{ timeout: T },
			);
			await p.waitForFunction((t) => window.mp.events.some((e) => JSON.stringify(e).includes(t)), text, {
				timeout: T,
			});
			await p.getByText(`alice: ${text}`).waitFor({ timeout: T });
			report(`chat-and-reply-${who}`, true, await p.evaluate(() => ({ chat: window.mp.chat.length, events: window.mp.events.length })));
		} catch (e) {
			report(`chat-and-reply-${who}`, false, {
				error: e.message.split("\n")[0],
				state: await p.evaluate(() => window.mp).catch((x) => String(x)),
				consoleErrors,
			});
		}
	}
	if (flags.screenshot) await within(b.screenshot({ path: flags.screenshot }), "screenshot");
} catch (e) {
	report("run", false, e.message.split("\n")[0]);
} finally {
	report("no-foreign-requests", blocked.length === 0, { requests, websockets: [...new Set(sockets)], blocked });
	await within(context?.close() ?? Promise.resolve(), "close chromium").catch(() => {});
	await server?.close();
	rmSync(userDataDir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
