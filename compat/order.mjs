// The POST answer never overtakes the SSE stream: the server answers a
// prompt's POST only once every live SSE reader has flushed everything the
// agent wrote before the response. 50 turns, no polling: every
// agent_message_chunk of a turn has reached onEvent by the end of the event
// loop turn in which prompt() resolves. (The SDK resolves prompt() from the
// response's copy on the SSE stream, which arrives in the same read as the
// chunks, or from the POST body, which the server sends only after the
// chunks; it calls onEvent only after its asynchronous per-event
// persistence queue, which is microtasks only with the in-memory driver, so
// one setImmediate — no timer, no polling — drains it.)
//
// Not asserted here: that a second, plain SSE reader has read the chunks
// when the POST body is read. The server does write them first, but the
// two responses travel on different TCP connections and Node may read the
// POST's socket first (undici pauses a body socket under backpressure), so
// such a check fails a turn in a few hundred for reasons that are not the
// server's. The wire order is asserted in Go (internal/acpproxy).
import { agentText, check, connect } from "./lib.mjs";

const sdk = await connect();
const session = await sdk.createSession({ agent: "mock" });
const events = [];
session.onEvent((e) => events.push(e));

const runs = Number(process.env.COMPAT_ORDER_RUNS ?? 50);
const late = [];
let atOnce = 0;
for (let i = 1; i <= runs; i++) {
  const text = `order ${i}`;
  const before = events.length;
  const res = await session.prompt([{ type: "text", text }]);
  if (agentText(events.slice(before)) === `Mock reply: ${text}`) atOnce++;
  await new Promise((r) => setImmediate(r));
  const got = agentText(events.slice(before));
  if (res.stopReason !== "end_turn" || got !== `Mock reply: ${text}`) late.push({ run: i, stopReason: res.stopReason, got });
}
check(late.length === 0, `in ${runs} of ${runs} turns every chunk reached onEvent in the turn prompt() resolved (${atOnce} already when it resolved)`, late);
await sdk.destroySession(session.id);
await sdk.dispose();
