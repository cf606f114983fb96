// The official SDK end to end against the Go server with the mock agent:
// health, agents, a streamed prompt, a permission round trip, modes and
// models, persisted events, destroy and a fast dispose.
import { agentText, check, connect, waitFor } from "./lib.mjs";

const sdk = await connect();

const health = await sdk.getHealth();
check(health.status === "ok", "getHealth returns ok", health);

const agents = await sdk.listAgents();
check(agents.agents.map((a) => a.id).join(",") === "claude,codex,opencode,amp,pi,cursor,mock", "listAgents returns upstream order", agents);

const session = await sdk.createSession({ agent: "mock" });
check(typeof session.agentSessionId === "string" && session.agentSessionId.startsWith("mock-session-"), "createSession binds an agent session id", session.agentSessionId);

const events = [];
session.onEvent((e) => events.push(e));
const res = await session.prompt([{ type: "text", text: "hello compat" }]);
check(res.stopReason === "end_turn", "prompt ends with end_turn", res);
// No polling: the server answers the prompt's POST only after the SSE
// stream carried every chunk before it; the SDK hands events to onEvent
// through a microtask-only queue, which one setImmediate drains (see
// order.mjs, which repeats this 50 times).
const drain = () => new Promise((r) => setImmediate(r));
await drain();
check(agentText(events) === "Mock reply: hello compat", "every streamed chunk reached onEvent in the turn prompt() resolved", agentText(events));
const chunks = events.filter((e) => e.payload?.params?.update?.sessionUpdate === "agent_message_chunk");
check(chunks.length >= 3, "the reply arrives in several chunks", chunks.length);
check(agentText(events, "agent_thought_chunk").length > 0, "a thought chunk is streamed");
check(events.some((e) => e.payload?.params?.update?.sessionUpdate === "tool_call"), "a tool call is streamed");

const permissions = [];
session.onPermissionRequest((req) => {
  permissions.push(req);
  session.respondPermission(req.id, "once").catch((err) => check(false, "respondPermission", String(err)));
});
const before = events.length;
const res2 = await session.prompt([{ type: "text", text: "PERMISSION please" }]);
check(res2.stopReason === "end_turn", "permission prompt ends with end_turn", res2);
check(permissions.length === 1 && permissions[0].availableReplies.includes("once"), "onPermissionRequest fires once with replies", permissions);
await drain();
check(agentText(events.slice(before)).includes("permission granted: allow"), "the agent acts on the chosen option before prompt() resolves", agentText(events.slice(before)));

// The SDK applies config_option_update notifications (SSE) and method
// responses (POST) in arrival order, so state converges rather than being
// final the moment the call returns.
await session.setMode("plan");
await waitFor(async () => (await session.getModes())?.currentModeId === "plan", "setMode switches the mode");
await session.setModel("mock-fast");
await waitFor(
  async () => (await session.getConfigOptions()).find((o) => o.id === "model")?.currentValue === "mock-fast",
  "setModel switches the model",
);

const page = await sdk.getEvents({ sessionId: session.id });
check(page.items.length >= 4 && page.items[0].eventIndex === 1, "getEvents returns persisted events", page.items.length);

await sdk.destroySession(session.id);
const after = await sdk.getSession(session.id);
check(after?.destroyedAt !== undefined, "destroySession marks the session destroyed");

const t0 = Date.now();
await sdk.dispose();
const took = Date.now() - t0;
check(took < 500, `dispose returns in under 500 ms (took ${took} ms)`);
