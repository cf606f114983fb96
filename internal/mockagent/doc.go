// Package mockagent is the built-in deterministic ACP (Agent Client Protocol,
// version 1) agent. The server launches it as
// "sandbox-agent mock-agent-process" for the agent id "mock"; tests and demos
// use it instead of a real coding agent. [Run] serves ACP as NDJSON JSON-RPC
// on a reader/writer pair (the process's stdin/stdout), built on the agent
// side of github.com/coder/acp-go-sdk.
//
// # Protocol surface
//
//   - initialize: protocolVersion 1, agentCapabilities
//     {loadSession: true, promptCapabilities: {embeddedContext: true}},
//     agentInfo {name: "sandbox-agent-mock", version: "builtin"},
//     authMethods []. The client's fs and terminal capabilities decide how the
//     WRITE_FILE, READ_FILE and RUN keywords work.
//   - authenticate: returns {}.
//   - session/new: session ids are "mock-session-1", "mock-session-2", … per
//     process. Returns modes {currentModeId "normal", availableModes normal,
//     plan} and three select configOptions: "model" (Mock/mock,
//     Mock Fast/mock-fast; current "mock"), "mode" (Normal/normal, Plan/plan;
//     current "normal") and "thought_level" (Low/low, Medium/medium,
//     High/high; current "low").
//   - session/prompt: one turn, see below. The prompt text is the
//     concatenation of the prompt's text content blocks. The user text and
//     the agent text sent are kept in the session history.
//   - session/cancel: cancels the session's prompt in flight; it answers
//     stopReason "cancelled".
//   - session/set_mode {modeId}: sets the mode, sends current_mode_update then
//     config_option_update, returns {}.
//   - session/set_config_option {configId, value}: sets the option, sends
//     config_option_update (then current_mode_update for "mode") and returns
//     {configOptions}.
//   - session/set_model {modelId} (unstable): sets the "model" option, sends
//     config_option_update, returns {}.
//   - session/load {sessionId, cwd, mcpServers}: replays the history as
//     user_message_chunk/agent_message_chunk updates (one per message), then
//     returns {modes, configOptions}.
//   - session/resume, session/list and session/close work on the sessions of
//     this process (they are not advertised).
//
// Unknown or invalid config ids, values, mode ids and model ids answer
// -32602 (invalid params). Unknown session ids answer -32002 (resource not
// found). Unknown methods answer -32601.
//
// # Default turn
//
// A prompt without keyword streams, in this order: one agent_thought_chunk,
// one plan update (3 entries), a tool_call "Mock tool" (pending), a
// tool_call_update in_progress, a tool_call_update completed, then the reply
// "Mock reply: <prompt text>" as several agent_message_chunk updates (one per
// word, at least 3, at most 32), and answers stopReason "end_turn".
//
// # Keywords
//
// A keyword is an uppercase whitespace-separated token anywhere in the prompt
// text; only the first keyword found acts. Its arguments are the rest of the
// keyword's line. Tool call ids are "mock-call-<n>", counted per session.
//
//   - PERMISSION: sends a tool_call (pending), then
//     session/request_permission for it with the options "allow"
//     (allow_once, "Allow"), "allow_always" (allow_always, "Always Allow")
//     and "reject" (reject_once, "Reject"). If an allow option is selected
//     the tool call completes and the reply is "permission granted:
//     <optionId>"; on reject, a cancelled outcome or a failed request the tool
//     call ends "failed" and the reply is "permission denied". Ends with
//     end_turn.
//   - WRITE_FILE <path> [text...]: writes text (default "hello from mock")
//     plus "\n" to path (relative paths are taken from the session cwd). With
//     the client's fs.writeTextFile capability it calls fs/write_text_file
//     and replies "wrote <n> bytes to <path> via fs/write_text_file";
//     otherwise it writes the file itself (creating parent directories) and
//     replies "wrote <n> bytes to <path> directly (client did not advertise
//     fs.writeTextFile)".
//   - READ_FILE <path>: reads path with fs/read_text_file when the client
//     advertised fs.readTextFile, otherwise directly, and replies "read <path>
//     via fs/read_text_file:\n<content>" (or "read <path> directly (client did
//     not advertise fs.readTextFile):\n<content>").
//   - RUN <command line>: with the client's terminal capability it calls
//     terminal/create {command: "sh", args: ["-c", <command line>], cwd},
//     terminal/wait_for_exit, terminal/output and terminal/release; otherwise
//     it runs sh -c locally in the session cwd. The reply is
//     "ran <quoted command line> via terminal: exit code <n>\n<output>" (or
//     "… locally (client did not advertise terminal): …"; "signal <name>"
//     instead of "exit code <n>" when the command was killed), the command
//     line quoted as by Go's %q. The tool call fails when the exit code is not
//     0. Output is limited to 1 MiB.
//   - SLOW: streams 100 chunks "slow <i>/100\n", 100 ms apart (10 s), then
//     end_turn. session/cancel stops it at once with stopReason "cancelled".
//   - ERROR: the prompt answers the JSON-RPC error code -32603, message
//     "mock agent error", data {"keyword": "ERROR"}.
//   - EXIT: sends one agent_message_chunk "mock agent exiting", writes
//     "mock agent exiting as requested" to stderr and exits with code 3
//     ([Run] returns &ExitError{Code: 3}). The prompt is never answered.
//   - FLOOD <n>: sends n agent_message_chunk updates "flood 1" … "flood <n>"
//     as fast as possible, then end_turn. n defaults to 100 and is capped at
//     1,000,000. The history keeps "flood: <n> chunks" as the agent text.
//
// Errors of fs and terminal calls end the tool call "failed" and are told in
// the reply; the turn still ends with end_turn. WRITE_FILE, READ_FILE and RUN
// without their argument reply with their usage. File contents put in a reply
// are limited to 1 MiB.
//
// # Lifecycle
//
// When stdin reaches EOF (or the context of [Run] ends), the prompts in flight
// are cancelled and answer stopReason "cancelled", every request already read
// is answered, and [Run] returns.
package mockagent
