// Package provider holds what the Options of the remote sandbox providers
// (provider/e2b, provider/daytona, provider/vercel, ...) share: how
// sandbox-agent gets into a sandbox.
package provider

// InstallMode chooses how sandbox-agent gets into a sandbox.
type InstallMode int

const (
	// InstallAuto uses sandbox-agent if it is on the sandbox's PATH (a
	// template that has it), else uploads Install.BinaryPath if set (its
	// sha256 verified inside the sandbox), else runs the release's
	// install.sh for Install.Version (which verifies the archive against
	// checksums.txt).
	InstallAuto InstallMode = iota
	// InstallUpload always uploads Install.BinaryPath, even over one on
	// PATH: a development build replaces the template's.
	InstallUpload
	// InstallScript always runs the release's install.sh.
	InstallScript
	// InstallNone requires sandbox-agent on the sandbox's PATH.
	InstallNone
)

// Install configures the installation of sandbox-agent and agents in a new
// sandbox.
type Install struct {
	Mode InstallMode
	// BinaryPath is a local sandbox-agent binary built for the sandbox
	// (linux/amd64 or linux/arm64), uploaded through the vendor's file API.
	BinaryPath string
	// Version of the release install.sh installs; default
	// sandboxagent.Version, the SDK's own.
	Version string
	// ReleaseURL serves install.sh, checksums.txt and the release
	// archives; default the project's GitHub release of Version.
	ReleaseURL string
	// Agents are installed with `sandbox-agent install-agent` when the
	// sandbox is created (default none; upstream installs claude and
	// codex).
	Agents []string
}
