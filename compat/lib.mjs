// Shared helpers for the compat scripts: connection settings from the
// environment, assertions that exit non-zero, and a global deadline so a
// hang fails the script instead of the CI run.
import { SandboxAgent } from "sandbox-agent";

export const baseUrl = process.env.SANDBOX_AGENT_URL ?? "http://127.0.0.1:2468";
export const token = process.env.SANDBOX_AGENT_TOKEN || undefined;

const deadlineMs = Number(process.env.COMPAT_DEADLINE_MS ?? 30000);
const timer = setTimeout(() => {
  console.error(`FAIL: script did not finish within ${deadlineMs} ms`);
  process.exit(1);
}, deadlineMs);
timer.unref();

process.on("unhandledRejection", (err) => {
  console.error("FAIL: unhandled rejection:", err);
  process.exit(1);
});

export function check(cond, msg, detail) {
  if (!cond) {
    console.error(`FAIL: ${msg}`, detail === undefined ? "" : JSON.stringify(detail, null, 2));
    process.exit(1);
  }
  console.log(`ok - ${msg}`);
}

export async function connect() {
  return SandboxAgent.connect({ baseUrl, token });
}

// waitFor polls cond until it holds or the timeout passes.
export async function waitFor(cond, msg, timeoutMs = 5000) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  check(false, msg);
}

export function agentText(events, kind = "agent_message_chunk") {
  let text = "";
  for (const e of events) {
    const p = e.payload;
    if (e.sender === "agent" && p?.method === "session/update" && p.params?.update?.sessionUpdate === kind) {
      const c = p.params.update.content;
      if (c?.type === "text") text += c.text;
    }
  }
  return text;
}
