// Package daytonafake is an httptest fake of Daytona's documented API for
// the daytona provider's tests, backed by fakesandbox (real processes in a
// private directory per sandbox):
//
//   - the control plane under APIURL (POST /sandbox, GET and DELETE
//     /sandbox/{id}, POST /sandbox/{id}/start and /stop, GET
//     /sandbox/{id}/ports/{port}/preview-url and signed-preview-url) with
//     the API's NestJS error bodies, Bearer auth and the SandboxState
//     progression (creating or pending_build → starting → started, one
//     step per API request about the sandbox, so a slow boot is
//     deterministic), 409 "Sandbox state change in progress" while a
//     transition is pending, and 404 once deleted;
//   - the toolbox at {toolboxProxyUrl}/{id}: POST /process/execute (the
//     command piped into sh's stdin, stdout and stderr merged, the process
//     group killed at the timeout with 408) and POST /files/upload?path=
//     (multipart field "file"), with the Go services' error bodies;
//   - the preview proxy: http://{port}-{id}.<PreviewDomain> needs the
//     X-Daytona-Preview-Token header (401 without), http://{port}-{signed
//     token}.<PreviewDomain> needs nothing until it expires; a stopped
//     sandbox answers 502. Client() resolves every host to the fake.
//
// Hooks: Idle (compressed idle time → auto-stop per the sandbox's
// autoStopInterval, which kills its processes), Delete, RotatePreviewToken,
// ExpireSignedURLs, Faults (401/429/5xx for the next requests, and the
// request log). It is test support, Unix only.
package daytonafake
