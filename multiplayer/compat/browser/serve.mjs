// serve.mjs: serves the workspace page from one loopback origin.
//
//   node browser/serve.mjs [--port 0] [--host 127.0.0.1]   # prints PAGE http://…/index.html
//   node browser/serve.mjs --out DIR                       # writes the page's files to DIR
//
// The page needs the pinned rivetkit browser build, rivetkit/dist/browser/client.js,
// which imports bare specifiers (zod/v4, cbor-x, @rivetkit/bare-ts, vbare, p-retry,
// invariant, pino, @opentelemetry/api). A browser cannot resolve those, so the
// build is bundled once with esbuild (a transitive dependency pinned by
// package-lock.json) into rivetkit-client.js, served here with index.html and
// app.js. Nothing the page loads comes from another origin.

import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, "..", "package.json"));

/** bundleClient returns the ESM bundle of rivetkit's browser client build. */
export async function bundleClient() {
	const entry = join(here, "..", "node_modules", "rivetkit", "dist", "browser", "client.js");
	const esbuild = await import(require.resolve("esbuild"));
	const out = await esbuild.build({
		entryPoints: [entry],
		bundle: true,
		format: "esm",
		platform: "browser",
		conditions: ["browser"],
		target: "es2022",
		write: false,
		logLevel: "warning",
		minify: true,
		// The build's Node-only fallback (import("ws") when there is no global
		// WebSocket) is a computed specifier esbuild leaves alone.
	});
	return out.outputFiles[0].text;
}

// The page is the example's (examples/multiplayer/web): one copy, driven
// here against rivetkit's server and the Go runtime, and served by the Go
// example itself.
const page = join(here, "..", "..", "..", "examples", "multiplayer", "web");

export async function pageFiles() {
	return {
		"/index.html": { type: "text/html; charset=utf-8", body: readFileSync(join(page, "index.html")) },
		"/app.js": { type: "text/javascript; charset=utf-8", body: readFileSync(join(page, "app.js")) },
		"/rivetkit-client.js": { type: "text/javascript; charset=utf-8", body: await bundleClient() },
	};
}

/** startServer serves the page; resolves to {url, close}. */
export async function startServer({ port = 0, host = "127.0.0.1" } = {}) {
	const files = await pageFiles();
	const server = createServer((req, res) => {
		const path = new URL(req.url, "http://x").pathname;
		const f = files[path === "/" ? "/index.html" : path];
		if (!f || req.method !== "GET") {
			res.writeHead(404).end("not found");
			return;
		}
		res.writeHead(200, { "content-type": f.type, "cache-control": "no-store" }).end(f.body);
	});
	await new Promise((resolve, reject) => {
		server.once("error", reject);
		server.listen(port, host, resolve);
	});
	const addr = server.address();
	return {
		url: `http://${host}:${addr.port}/index.html`,
		close: () => new Promise((r) => server.close(r)),
	};
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
	const { values } = parseArgs({
		options: {
			port: { type: "string", default: "0" },
			host: { type: "string", default: "127.0.0.1" },
			out: { type: "string" },
		},
	});
	if (values.out) {
		mkdirSync(values.out, { recursive: true });
		for (const [name, f] of Object.entries(await pageFiles())) writeFileSync(join(values.out, name), f.body);
		console.log(`wrote ${values.out}`);
	} else {
		const s = await startServer({ port: Number(values.port), host: values.host });
		console.log(`PAGE ${s.url}`);
	}
}
