// Error mapping through the official SDK: problem+json reaches callers as
// SandboxAgentError with status and problem document.
import { SandboxAgentError } from "sandbox-agent";
import { check, connect } from "./lib.mjs";

const sdk = await connect();
try {
  await sdk.getAgent("nope");
  check(false, "getAgent of an unknown agent must fail");
} catch (err) {
  check(err instanceof SandboxAgentError && err.status === 400, "unknown agent is a 400 SandboxAgentError", String(err));
  check(err.problem?.type === "urn:sandbox-agent:error:unsupported_agent", "problem type is unsupported_agent", err.problem);
}
const agent = await sdk.getAgent("mock", { config: true });
check(Array.isArray(agent.configOptions) && agent.configOptions.length === 3, "getAgent with config lists config options", agent);
await sdk.dispose();
