// Filesystem, config and processes through the official SDK: a file round
// trip, a tar upload, MCP config, runProcess, createProcess with followed
// logs, and an interactive PTY terminal over WebSocket.
import { execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { check, connect, waitFor } from "./lib.mjs";

const sdk = await connect();
const dir = mkdtempSync(join(tmpdir(), "compat-fs-"));

const w = await sdk.writeFsFile({ path: join(dir, "a/b.txt") }, new TextEncoder().encode("hello fs"));
check(w.bytesWritten === 8 && w.path === join(dir, "a/b.txt"), "writeFsFile creates parents and reports bytes", w);
const back = new TextDecoder().decode(await sdk.readFsFile({ path: join(dir, "a/b.txt") }));
check(back === "hello fs", "readFsFile returns the bytes", back);
const st = await sdk.statFs({ path: join(dir, "a/b.txt") });
check(st.entryType === "file" && st.size === 8, "statFs", st);
const entries = await sdk.listFsEntries({ path: join(dir, "a") });
check(entries.length === 1 && entries[0].name === "b.txt", "listFsEntries", entries);
const mv = await sdk.moveFs({ from: join(dir, "a/b.txt"), to: join(dir, "c.txt") });
check(mv.to === join(dir, "c.txt"), "moveFs", mv);

const src = mkdtempSync(join(tmpdir(), "compat-tar-"));
mkdirSync(join(src, "skills/one"), { recursive: true });
writeFileSync(join(src, "skills/one/SKILL.md"), "# one\n");
writeFileSync(join(src, "top.txt"), "top\n");
const tar = execFileSync("tar", ["-cf", "-", "-C", src, "."]);
const up = await sdk.uploadFsBatch(tar, { path: join(dir, "up") });
check(up.paths.includes(join(dir, "up/skills/one/SKILL.md")) && up.truncated === false, "uploadFsBatch extracts a tar", up);

await sdk.setMcpConfig({ directory: dir, mcpName: "fs" }, { type: "stdio", command: "npx" });
const mcp = await sdk.getMcpConfig({ directory: dir, mcpName: "fs" });
check(mcp.type === "local" && Array.isArray(mcp.args), "MCP config normalises stdio to local", mcp);

const run = await sdk.runProcess({ command: "sh", args: ["-c", "echo out; echo err >&2; exit 3"] });
check(run.exitCode === 3 && run.stdout === "out\n" && run.stderr === "err\n", "runProcess", run);

const proc = await sdk.createProcess({ command: "sh", args: ["-c", "echo line1; echo line2"] });
const seen = [];
const sub = await sdk.followProcessLogs(proc.id, (e) => seen.push(Buffer.from(e.data, "base64").toString()));
await waitFor(() => seen.join("").includes("line2"), "followProcessLogs streams the output");
sub.close();
await sub.closed.catch(() => {});

if (typeof WebSocket === "undefined") {
  check(false, "this Node.js has no global WebSocket; run node with --experimental-websocket");
}
const tty = await sdk.createProcess({ command: "sh", tty: true, interactive: true });
const term = sdk.connectProcessTerminal(tty.id);
let out = "";
let exitStatus;
term.onData((d) => (out += new TextDecoder().decode(d)));
term.onExit((s) => (exitStatus = s));
await new Promise((resolve) => term.onReady(resolve));
term.resize({ cols: 100, rows: 40 });
term.sendInput("stty size; echo compat-$((6*7))\n");
await waitFor(() => out.includes("compat-42") && out.includes("40 100"), "terminal runs a command and sees the resize");
term.sendInput("exit 5\n");
await waitFor(() => exitStatus !== undefined, "terminal reports the exit");
check(exitStatus.exitCode === 5, "exit code travels in the exit frame", exitStatus);
term.close();
await term.closed;
await sdk.dispose();
rmSync(dir, { recursive: true, force: true });
rmSync(src, { recursive: true, force: true });
