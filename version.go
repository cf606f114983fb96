package sandboxagent

// Version is this SDK's release. Remote providers that have to install
// sandbox-agent in a sandbox install the release of the same version, so
// the server speaks what the SDK expects.
const Version = "0.1.0"
