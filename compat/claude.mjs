// The official SDK drives a real Claude Code agent (claude-agent-acp, from
// the agents cache filled by scripts/install-test-agents.sh) through the Go
// server, offline against the fake LLM the compat harness starts:
// createSession, a streamed prompt, and a permission round trip (a write
// allowed once, then one rejected: nothing written).
//
// Needs the server to see the cached claude agent and ANTHROPIC_BASE_URL
// pointing at the fake LLM. Without an installed claude it skips (exit 0),
// unless CI=true, where it fails.
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { agentText, check, connect, waitFor } from "./lib.mjs";

const sdk = await connect();
const claude = (await sdk.listAgents()).agents.find((a) => a.id === "claude");
if (!claude?.installed) {
  const msg =
    "claude is not installed on the server under test: run scripts/install-test-agents.sh " +
    "(and let the compat harness point the server at the agents cache and the fake LLM)";
  if (process.env.CI === "true") {
    console.error(`FAIL: ${msg}`);
    process.exit(1);
  }
  console.log(`SKIP: ${msg}`);
  await sdk.dispose();
  process.exit(0);
}
check(claude.credentialsAvailable === true, "claude reports credentials (the fake key)", claude);

const cwd = mkdtempSync(join(tmpdir(), "compat-claude-"));
const session = await sdk.createSession({ agent: "claude", cwd });
check(typeof session.agentSessionId === "string" && session.agentSessionId.length > 0, "createSession starts Claude", session.agentSessionId);

const events = [];
session.onEvent((e) => events.push(e));
const res = await session.prompt([{ type: "text", text: "Say hello" }]);
check(res.stopReason === "end_turn", "prompt ends with end_turn", res);
await waitFor(() => agentText(events).includes("Hello from the fake model!"), "Claude streams the fake model's reply", 10000);

let reply = "once";
const permissions = [];
session.onPermissionRequest((req) => {
  permissions.push(req);
  session.respondPermission(req.id, reply).catch((err) => check(false, "respondPermission", String(err)));
});
const allowed = join(cwd, "allowed.txt");
const res2 = await session.prompt([{ type: "text", text: `WRITE_FILE ${allowed} from-the-sdk` }]);
check(res2.stopReason === "end_turn", "write prompt ends with end_turn", res2);
check(permissions.length >= 1 && permissions[0].availableReplies.includes("once"), "Claude asks permission through the SDK", permissions);
check(existsSync(allowed) && readFileSync(allowed, "utf8") === "from-the-sdk", "the allowed write happened");

reply = "reject";
const before = permissions.length;
const denied = join(cwd, "denied.txt");
const res3 = await session.prompt([{ type: "text", text: `WRITE_FILE ${denied} nope` }]);
check(res3.stopReason === "end_turn" || res3.stopReason === "cancelled", "denied prompt ends", res3);
check(permissions.length > before, "Claude asks again for the second write", permissions.length);
check(!existsSync(denied), "the rejected write did not happen");

await sdk.destroySession(session.id);
await sdk.dispose();
