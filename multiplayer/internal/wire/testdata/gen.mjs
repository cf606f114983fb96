// Golden vectors for package wire, made and checked by rivetkit's own code.
//
//   node gen.mjs generate            → rewrites golden.json next to this file
//   node gen.mjs check <frames.json> → decodes Go-encoded frames with the real
//                                      client decoders; prints a JSON report
//
// It bundles (esbuild, already installed) the protocol modules straight from
// each pinned package's shipped src/ (rivetkit 2.3.19 = protocol v4, 2.2.1 =
// v3, 2.0.33 = v2), so the encoders and decoders under test are rivetkit's,
// not copies. The only glue re-stated here is each client's tiny toBare /
// fromBare step (which CBOR function wraps a data field), as in its
// client/actor-conn.ts and client/actor-handle.ts.
//
// Finding node_modules: $WIRE_COMPAT_DIR, else ../../../compat (the repo's
// multiplayer/compat).

import { createRequire } from "node:module";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const compatDir = path.resolve(
	process.env.WIRE_COMPAT_DIR ?? path.join(here, "../../../compat"),
);
const nm = path.join(compatDir, "node_modules");
const require = createRequire(path.join(compatDir, "package.json"));
const esbuild = require("esbuild");

const variants = {
	v4: {
		pkg: "rivetkit",
		entry: `
export { CLIENT_PROTOCOL_TO_SERVER as TO_SERVER, CLIENT_PROTOCOL_TO_CLIENT as TO_CLIENT,
  HTTP_ACTION_REQUEST_VERSIONED, HTTP_ACTION_RESPONSE_VERSIONED,
  CURRENT_VERSION } from "./common/client-protocol-versioned";
export { serializeWithEncoding, deserializeWithEncoding, encodeCborCompat as encodeData,
  decodeCborCompat as decodeData } from "./serde";
export { ToServerSchema, ToClientSchema, HttpActionRequestSchema, HttpActionResponseSchema,
  HttpResponseErrorSchema } from "./common/client-protocol-zod";
export { jsonParseCompat } from "./common/encoding";
`,
	},
	v3: {
		pkg: "rivetkit-2.2",
		entry: `
export { TO_SERVER_VERSIONED as TO_SERVER, TO_CLIENT_VERSIONED as TO_CLIENT,
  HTTP_ACTION_REQUEST_VERSIONED, HTTP_ACTION_RESPONSE_VERSIONED,
  CURRENT_VERSION } from "./schemas/client-protocol/versioned";
export { serializeWithEncoding, deserializeWithEncoding } from "./serde";
export { ToServerSchema, ToClientSchema, HttpActionRequestSchema, HttpActionResponseSchema,
  HttpResponseErrorSchema } from "./schemas/client-protocol-zod/mod";
export { jsonParseCompat } from "./actor/protocol/serde";
import * as cbor from "cbor-x";
export const encodeData = (v) => cbor.encode(v);
export const decodeData = (b) => cbor.decode(b);
`,
	},
	v2: {
		pkg: "rivetkit-2.0",
		entry: `
export { TO_SERVER_VERSIONED as TO_SERVER, TO_CLIENT_VERSIONED as TO_CLIENT,
  HTTP_ACTION_REQUEST_VERSIONED, HTTP_ACTION_RESPONSE_VERSIONED,
  CURRENT_VERSION } from "./schemas/client-protocol/versioned";
export { serializeWithEncoding, deserializeWithEncoding } from "./serde";
export { ToServerSchema, ToClientSchema, HttpActionRequestSchema, HttpActionResponseSchema,
  HttpResponseErrorSchema } from "./schemas/client-protocol-zod/mod";
export { jsonParseCompat } from "./actor/protocol/serde";
import * as cbor from "cbor-x";
export const encodeData = (v) => cbor.encode(v);
export const decodeData = (b) => cbor.decode(b);
`,
	},
};

async function load(name) {
	const v = variants[name];
	const src = path.join(nm, v.pkg, "src");
	const alias = {
		name: "rivetkit-src-alias",
		setup(build) {
			build.onResolve({ filter: /^@\// }, (args) =>
				build.resolve(`./${args.path.slice(2)}`, {
					resolveDir: src,
					kind: args.kind,
				}),
			);
		},
	};
	const out = await esbuild.build({
		stdin: { contents: v.entry, resolveDir: src, loader: "ts" },
		bundle: true,
		write: false,
		format: "esm",
		platform: "node",
		target: "node20",
		logLevel: "silent",
		plugins: [alias],
		banner: {
			js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
		},
	});
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wire-gen-"));
	const file = path.join(dir, `${name}.mjs`);
	fs.writeFileSync(file, out.outputFiles[0].text);
	try {
		return await import(pathToFileURL(file).href);
	} finally {
		fs.rmSync(dir, { recursive: true, force: true });
	}
}

const toArrayBuffer = (u8) =>
	u8.buffer.slice(u8.byteOffset, u8.byteOffset + u8.byteLength);
const hex = (b) =>
	typeof b === "string" ? Buffer.from(b, "utf8").toString("hex") : Buffer.from(b).toString("hex");

// --- value cases -----------------------------------------------------------
//
// input: what a client passes as the single action argument.
// canonical: the canonical JSON the Go decoder must produce for it (per
//   variant where the clients differ; "ERROR" means decoding must fail with
//   ErrBadValue).
// back: what the client must see when the server sends canonical back.

const buf = new Uint8Array([1, 2, 3, 255]);
const cases = [
	{ id: "object", input: { userId: "user-123", text: "hello" }, canonical: '{"userId":"user-123","text":"hello"}', back: { userId: "user-123", text: "hello" } },
	{ id: "bigint-small", input: 123n, canonical: "123", back: 123 },
	{ id: "bigint-2^53+1", input: 2n ** 53n + 1n, canonical: "9007199254740993", back: 2n ** 53n + 1n },
	{ id: "bigint-neg-2^70", input: -(2n ** 70n), canonical: "-1180591620717411303424", back: -(2n ** 70n) },
	{ id: "bigint-u64max", input: 2n ** 64n - 1n, canonical: "18446744073709551615", back: 2n ** 64n - 1n },
	{ id: "uint8array", input: buf, canonical: '"AQID/w=="', back: "AQID/w==" },
	{ id: "arraybuffer", input: toArrayBuffer(buf), canonical: '"AQID/w=="', back: "AQID/w==" },
	{ id: "undefined-member", input: { a: 1, b: undefined }, canonical: '{"a":1}', back: { a: 1 } },
	{ id: "undefined-element", input: [1, undefined], canonical: "[1,null]", back: [1, null] },
	{ id: "set", input: new Set([1, "a"]), canonical: '[1,"a"]', canonicalBy: { json: "{}" }, back: [1, "a"] },
	{ id: "dollar-pair", input: ["$foo", 1], canonical: '["$foo",1]', back: ["$foo", 1] },
	{ id: "double-dollar-pair", input: ["$$foo", 2n], canonical: '["$$foo",2]', back: ["$$foo", 2] },
	{ id: "dollar-triple", input: ["$foo", 1, 2], canonical: '["$foo",1,2]', back: ["$foo", 1, 2] },
	{
		id: "nested",
		input: { a: { b: [1, { c: "$d" }], e: ["$x", [2n, ["$y", null]]] }, z: [] },
		canonical: '{"a":{"b":[1,{"c":"$d"}],"e":["$x",[2,["$y",null]]]},"z":[]}',
		back: { a: { b: [1, { c: "$d" }], e: ["$x", [2, ["$y", null]]] }, z: [] },
	},
	{ id: "date-now", input: 1796000000123, canonical: "1796000000123", back: 1796000000123 },
	{
		id: "int-boundaries",
		input: [4294967295, 4294967296, -4294967296, -4294967297, 9007199254740991, -9007199254740991],
		canonical: "[4294967295,4294967296,-4294967296,-4294967297,9007199254740991,-9007199254740991]",
		back: [4294967295, 4294967296, -4294967296, -4294967297, 9007199254740991, -9007199254740991],
	},
	{ id: "floats", input: [1.5, -0.25, 1e21, 5e-7, 0.1], canonical: "[1.5,-0.25,1e+21,5e-7,0.1]", back: [1.5, -0.25, 1e21, 5e-7, 0.1] },
	{
		id: "unicode",
		input: 'héllo 🌍 \u2028 "q" \\ \n\t\u0001 日本',
		canonical: JSON.stringify('héllo 🌍 \u2028 "q" \\ \n\t\u0001 日本'),
		back: 'héllo 🌍 \u2028 "q" \\ \n\t\u0001 日本',
	},
	{ id: "unicode-key", input: { "ключ $": "значение" }, canonical: '{"ключ $":"значение"}', back: { "ключ $": "значение" } },
	{ id: "literals", input: [null, true, false, 0, -1, ""], canonical: '[null,true,false,0,-1,""]', back: [null, true, false, 0, -1, ""] },
	{ id: "empty-object", input: {}, canonical: "{}", back: {} },
	{ id: "date", input: new Date(1796000000123), canonical: '"2026-11-30T00:53:20.123Z"', back: "2026-11-30T00:53:20.123Z" },
];

function canonicalFor(c, variant) {
	return c.canonicalBy?.[variant.startsWith("json") ? "json" : variant] ?? c.canonical;
}

// --- generate --------------------------------------------------------------

async function generate() {
	const libs = { v4: await load("v4"), v3: await load("v3"), v2: await load("v2") };
	const toServer = [];
	const http = [];
	// The JSON encoding, as each client version writes it.
	const jsonVariants = { json: libs.v4, "json-v3": libs.v3, "json-v2": libs.v2 };
	for (const c of cases) {
		for (const [variant, lib] of [...Object.entries(jsonVariants), ...Object.entries(libs)]) {
			const encoding = variant.startsWith("json") ? "json" : "bare";
			const id = BigInt(toServer.length);
			const msg = { body: { tag: "ActionRequest", val: { id, name: `act.${c.id}`, args: [c.input] } } };
			const frame = lib.serializeWithEncoding(
				encoding, msg, lib.TO_SERVER, lib.CURRENT_VERSION, lib.ToServerSchema,
				(m) => m,
				(m) => ({ body: { tag: "ActionRequest", val: { id: m.body.val.id, name: m.body.val.name, args: toArrayBuffer(lib.encodeData(m.body.val.args)) } } }),
			);
			const canon = canonicalFor(c, variant);
			toServer.push({
				case: c.id, variant, kind: "action", id: id.toString(), name: `act.${c.id}`,
				frame: hex(frame), text: typeof frame === "string",
				args: canon === "ERROR" ? "ERROR" : `[${canon}]`,
			});
			const body = lib.serializeWithEncoding(
				encoding, [c.input], lib.HTTP_ACTION_REQUEST_VERSIONED, lib.CURRENT_VERSION, lib.HttpActionRequestSchema,
				(args) => ({ args }),
				(args) => ({ args: toArrayBuffer(lib.encodeData(args)) }),
			);
			http.push({ case: c.id, variant, body: hex(body), args: canon === "ERROR" ? "ERROR" : `[${canon}]` });
		}
	}
	for (const [variant, lib] of [...Object.entries(jsonVariants), ...Object.entries(libs)]) {
		const encoding = variant.startsWith("json") ? "json" : "bare";
		for (const subscribe of [true, false]) {
			const msg = { body: { tag: "SubscriptionRequest", val: { eventName: "chat.user ✓", subscribe } } };
			const frame = lib.serializeWithEncoding(encoding, msg, lib.TO_SERVER, lib.CURRENT_VERSION, lib.ToServerSchema, (m) => m, (m) => m);
			toServer.push({ case: `subscribe-${subscribe}`, variant, kind: "subscription", eventName: "chat.user ✓", subscribe, frame: hex(frame), text: typeof frame === "string" });
		}
		// A large id, to exercise multi-byte varints and the bigint spelling.
		const msg = { body: { tag: "ActionRequest", val: { id: 2n ** 40n + 5n, name: "big.id", args: [] } } };
		const frame = lib.serializeWithEncoding(
			encoding, msg, lib.TO_SERVER, lib.CURRENT_VERSION, lib.ToServerSchema, (m) => m,
			(m) => ({ body: { tag: "ActionRequest", val: { id: m.body.val.id, name: m.body.val.name, args: toArrayBuffer(lib.encodeData(m.body.val.args)) } } }),
		);
		toServer.push({ case: "big-id", variant, kind: "action", id: (2n ** 40n + 5n).toString(), name: "big.id", frame: hex(frame), text: typeof frame === "string", args: "[]" });
	}
	const out = {
		comment: "Generated by gen.mjs from rivetkit 2.3.19 (v4, json), 2.2.1 (v3, json-v3), 2.0.33 (v2, json-v2). Do not edit.",
		cases: cases.map((c) => ({ id: c.id, canonical: c.canonical })),
		toServer,
		http,
	};
	fs.writeFileSync(path.join(here, "golden.json"), `${JSON.stringify(out, null, "\t")}\n`);
	console.log(`wrote ${toServer.length} ToServer and ${http.length} HTTP vectors`);
}

// --- check -----------------------------------------------------------------

function same(a, b, where = "") {
	if (typeof a !== typeof b) return `${where}: type ${typeof a} != ${typeof b} (${String(a)} vs ${String(b)})`;
	if (typeof a === "bigint" || typeof a === "string" || typeof a === "boolean") {
		return a === b ? null : `${where}: ${String(a)} != ${String(b)}`;
	}
	if (typeof a === "number") return a === b || (Number.isNaN(a) && Number.isNaN(b)) ? null : `${where}: ${a} != ${b}`;
	if (a === undefined || a === null || b === null) return a === b ? null : `${where}: ${a} != ${b}`;
	if (Array.isArray(a) !== Array.isArray(b)) return `${where}: array vs non-array`;
	if (Array.isArray(a)) {
		if (a.length !== b.length) return `${where}: length ${a.length} != ${b.length}`;
		for (let i = 0; i < a.length; i++) {
			const d = same(a[i], b[i], `${where}[${i}]`);
			if (d) return d;
		}
		return null;
	}
	if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return `${where}: prototype differs`;
	const ka = Object.keys(a);
	const kb = Object.keys(b);
	if (ka.join("\u0000") !== kb.join("\u0000")) return `${where}: keys ${ka} != ${kb}`;
	for (const k of ka) {
		const d = same(a[k], b[k], `${where}.${k}`);
		if (d) return d;
	}
	return null;
}

// Each client's fromBare, as in its actor-conn.ts / actor-handle.ts.
function decodeToClient(lib, encoding, bytes) {
	return lib.deserializeWithEncoding(
		encoding, encoding === "json" ? Buffer.from(bytes).toString("utf8") : bytes,
		lib.TO_CLIENT, lib.ToClientSchema,
		(m) => m,
		(m) => {
			const v = m.body.val;
			switch (m.body.tag) {
				case "Error":
					return { body: { tag: "Error", val: { ...v, metadata: v.metadata ? lib.decodeData(new Uint8Array(v.metadata)) : null } } };
				case "ActionResponse":
					return { body: { tag: "ActionResponse", val: { id: v.id, output: lib.decodeData(new Uint8Array(v.output)) } } };
				case "Event":
					return { body: { tag: "Event", val: { name: v.name, args: lib.decodeData(new Uint8Array(v.args)) } } };
				default:
					return m;
			}
		},
	);
}

function decodeHTTPOutput(lib, encoding, bytes) {
	return lib.deserializeWithEncoding(
		encoding, encoding === "json" ? Buffer.from(bytes).toString("utf8") : bytes,
		lib.HTTP_ACTION_RESPONSE_VERSIONED, lib.HttpActionResponseSchema,
		(j) => j.output,
		(b) => lib.decodeData(new Uint8Array(b.output)),
	);
}

async function check(file) {
	const libs = { json: await load("v4"), v4: null, v3: await load("v3"), v2: await load("v2") };
	libs.v4 = libs.json;
	const jsonLibs = { json: libs.json, "json-v3": libs.v3, "json-v2": libs.v2 };
	const byId = new Map(cases.map((c) => [c.id, c]));
	const input = JSON.parse(fs.readFileSync(file, "utf8"));
	const failures = [];
	let checked = 0;
	for (const f of input.frames) {
		const lib = jsonLibs[f.variant] ?? libs[f.variant];
		const encoding = f.variant.startsWith("json") ? "json" : "bare";
		const bytes = new Uint8Array(Buffer.from(f.frame, "hex"));
		const where = `${f.variant} ${f.kind} ${f.case ?? ""}`;
		try {
			let expect;
			let got;
			const c = f.case ? byId.get(f.case) : null;
			switch (f.kind) {
				case "init":
					got = decodeToClient(lib, encoding, bytes).body;
					expect = { tag: "Init", val: { actorId: "actor-1", connectionId: "conn-1" } };
					break;
				case "event":
					got = decodeToClient(lib, encoding, bytes).body;
					expect = { tag: "Event", val: { name: "ev", args: [c.back] } };
					break;
				case "response":
					got = decodeToClient(lib, encoding, bytes).body;
					// A nil output is undefined in BARE and null in JSON (the schema requires the key).
					expect = { tag: "ActionResponse", val: { id: BigInt(f.id), output: c ? c.back : encoding === "json" ? null : undefined } };
					if (!c) got.val = { id: got.val.id, output: got.val.output };
					break;
				case "error": {
					const m = decodeToClient(lib, encoding, bytes).body;
					got = { tag: m.tag, val: { group: m.val.group, code: m.val.code, message: m.val.message, metadata: m.val.metadata ?? null, actionId: m.val.actionId } };
					if (f.actor) got.val.actor = m.val.actor ? { actorId: m.val.actor.actorId, generation: BigInt(m.val.actor.generation), key: m.val.actor.key ?? null } : null;
					expect = { tag: "Error", val: { group: "user", code: "boom", message: "it broke ✗", metadata: c ? c.back : null, actionId: f.actionId == null ? null : BigInt(f.actionId) } };
					if (f.actor) expect.val.actor = f.actorExpected ? { actorId: "actor-1", generation: BigInt(f.actorExpected.generation), key: f.actorExpected.key } : null;
					break;
				}
				case "http-output":
					got = decodeHTTPOutput(lib, encoding, bytes);
					expect = c ? c.back : encoding === "json" ? null : undefined;
					break;
				case "http-error": {
					// Error bodies are JSON whatever the encoding; every client parses them with its JSON path.
					const e = lib.deserializeWithEncoding("json", Buffer.from(bytes).toString("utf8"), undefined, lib.HttpResponseErrorSchema, (j) => j, (b) => b);
					got = { group: e.group, code: e.code, message: e.message, metadata: e.metadata };
					expect = { group: "user", code: "boom", message: "it broke ✗", metadata: c ? c.back : undefined };
					break;
				}
				default:
					throw new Error(`unknown kind ${f.kind}`);
			}
			const d = same(got, expect, where);
			if (d) failures.push(d);
			checked++;
		} catch (err) {
			failures.push(`${where}: ${err && err.message ? err.message.replace(/\s+/g, " ").slice(0, 300) : String(err)}`);
		}
	}
	console.log(JSON.stringify({ checked, failures, cases: cases.map((c) => ({ id: c.id, canonical: c.canonical })) }));
}

const [cmd, arg] = process.argv.slice(2);
if (cmd === "generate") await generate();
else if (cmd === "check") await check(arg);
else if (cmd === "cases") console.log(JSON.stringify(cases.map((c) => ({ id: c.id, canonical: c.canonical }))));
else {
	console.error("usage: node gen.mjs generate | check <frames.json> | cases");
	process.exit(2);
}
