// The docs' Multiplayer browser code, unchanged in what it calls:
// createClient, workspace.getOrCreate([id]).connect(), conn.on("chat.user"),
// conn.on("session.event") and await conn.prompt({userId, text}). The
// encoding is left at the library's default (BARE), as the docs do.
//
// Page parameters: ?endpoint=URL&workspace=ID&user=ID. Everything the page
// saw is mirrored on window.mp so a driver (browser.mjs) can assert on it.
import { createClient } from "./rivetkit-client.js";

const params = new URLSearchParams(location.search);
const endpoint = params.get("endpoint") ?? "http://127.0.0.1:6420";
const workspaceId = params.get("workspace") ?? "ws-1";
const userId = params.get("user") ?? "user-" + Math.random().toString(36).slice(2, 8);

const mp = (window.mp = { ready: false, chat: [], events: [], errors: [], status: "connecting" });
const $ = (id) => document.getElementById(id);
$("ws").textContent = workspaceId;

function show(cls, text) {
	const li = document.createElement("li");
	li.className = cls;
	li.textContent = text;
	$("log").append(li);
}

const client = createClient({ endpoint });
const conn = client.workspace.getOrCreate([workspaceId]).connect();

conn.on("chat.user", (e) => {
	mp.chat.push(e);
	show("chat", `${e.userId}: ${e.text}`);
});
conn.on("session.event", (e) => {
	mp.events.push(e);
	show("event", `agent: ${e.text ?? JSON.stringify(e)}`);
});
conn.onError((e) => {
	mp.errors.push(String(e?.message ?? e));
	show("error", `error: ${e?.message ?? e}`);
});
conn.onStatusChange((s) => {
	mp.status = s;
	$("status").textContent = s;
});
conn.onOpen(() => {
	mp.status = "connected";
	$("status").textContent = "connected";
});

// A no-op round trip: once it returns, this tab's subscriptions are known to
// the server (they are sent before queued actions on connect).
mp.barrier = () => conn.barrier();
mp.send = async (text) => {
	return await conn.prompt({ userId, text });
};
mp.barrier().then(
	() => {
		mp.ready = true;
	},
	(e) => mp.errors.push("barrier: " + (e?.message ?? e)),
);

$("form").addEventListener("submit", async (ev) => {
	ev.preventDefault();
	const text = $("text").value.trim();
	if (!text) return;
	$("text").value = "";
	try {
		await mp.send(text);
	} catch (e) {
		mp.errors.push(String(e?.message ?? e));
		show("error", `prompt failed: ${e?.message ?? e}`);
	}
});
