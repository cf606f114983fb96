package remote

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	sandboxagent "github.com/sandbox-agent-go/sandbox-agent"
	"github.com/sandbox-agent-go/sandbox-agent/provider"
)

// Sandbox is what a vendor's client offers the bootstrap: a shell and a
// file API in one sandbox.
type Sandbox interface {
	// Exec runs script with a POSIX shell in the sandbox (as the sandbox's
	// default user, from its home directory), waits for it, and returns its
	// exit code and output (stdout and stderr, in any interleaving). A
	// non-zero exit is not an error; a failure to run it is.
	Exec(ctx context.Context, script string) (ExecResult, error)
	// WriteFile creates or replaces the file at the absolute path with data,
	// creating parent directories.
	WriteFile(ctx context.Context, path string, data []byte) error
}

// ExecResult is the outcome of Sandbox.Exec.
type ExecResult struct {
	ExitCode int
	Output   string
}

// ExecError is a bootstrap step whose command exited non-zero.
type ExecError struct {
	Step     string
	ExitCode int
	Output   string // the end of the output
}

func (e *ExecError) Error() string {
	return fmt.Sprintf("%s failed in the sandbox (exit %d): %s", e.Step, e.ExitCode, strings.TrimSpace(e.Output))
}

// Where things live in a sandbox, relative to its $HOME. The token file
// sits in a 0700 directory so it is never readable by another user, even
// between its upload and the chmod.
const (
	binRel       = ".local/bin/sandbox-agent"
	configDirRel = ".config/sandbox-agent"
	tokenRel     = configDirRel + "/server-token"
)

// DefaultReleaseURL is where install.sh and the release archives of
// version v are published.
func DefaultReleaseURL(v string) string {
	return "https://github.com/sandbox-agent-go/sandbox-agent/releases/download/v" + strings.TrimPrefix(v, "v")
}

// Config is what Bootstrap does in a new sandbox.
type Config struct {
	// Port the server listens on inside the sandbox (on 0.0.0.0, as the
	// vendor's port proxy reaches it).
	Port int
	// Token the server requires. Empty starts it with --no-token.
	Token string
	// Install: how sandbox-agent and agents get in.
	Install provider.Install
	// StartTimeout bounds the server's start (daemon --timeout); default
	// 30 s.
	StartTimeout time.Duration
}

// Installed describes a bootstrapped sandbox.
type Installed struct {
	Home string // the sandbox user's $HOME
	// How: "path", "upload" or "script".
	How string
	// Bin is the sandbox-agent the server runs.
	Bin string
}

// NewToken returns a random token for one sandbox's server.
func NewToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate the server token: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// Quote quotes s for a POSIX shell.
func Quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// probeScript prints what Bootstrap needs to know in one round trip, and
// creates the token directory.
const probeScript = `umask 077
mkdir -p "$HOME/` + configDirRel + `" && chmod 700 "$HOME/` + configDirRel + `" || exit 1
printf 'home=%s\n' "$HOME"
printf 'os=%s\n' "$(uname -s)"
printf 'arch=%s\n' "$(uname -m)"
printf 'path=%s\n' "$(command -v sandbox-agent 2>/dev/null)"`

type probe struct{ home, os, arch, path string }

func parseProbe(out string) (probe, error) {
	var p probe
	for line := range strings.Lines(out) {
		k, v, _ := strings.Cut(strings.TrimRight(line, "\r\n"), "=")
		switch k {
		case "home":
			p.home = v
		case "os":
			p.os = v
		case "arch":
			p.arch = v
		case "path":
			p.path = v
		}
	}
	if !strings.HasPrefix(p.home, "/") {
		return p, fmt.Errorf("the sandbox's $HOME is not an absolute path (probe output %q)", out)
	}
	return p, nil
}

// Bootstrap installs sandbox-agent (and Config.Agents) in a new sandbox,
// writes the server's token file and starts the server, returning once it
// answers /v1/health inside the sandbox.
func Bootstrap(ctx context.Context, sb Sandbox, c Config) (Installed, error) {
	var in Installed
	res, err := sb.Exec(ctx, probeScript)
	if err != nil {
		return in, fmt.Errorf("probe the sandbox: %w", err)
	}
	if res.ExitCode != 0 {
		return in, &ExecError{Step: "probe the sandbox", ExitCode: res.ExitCode, Output: tail(res.Output)}
	}
	p, err := parseProbe(res.Output)
	if err != nil {
		return in, err
	}
	in.Home = p.home
	var script strings.Builder
	script.WriteString("set -e\numask 022\n")
	switch {
	case p.path != "" && (c.Install.Mode == provider.InstallAuto || c.Install.Mode == provider.InstallNone):
		in.How, in.Bin = "path", p.path
	case c.Install.Mode == provider.InstallNone:
		return in, errors.New("sandbox-agent is not on the sandbox's PATH (install mode InstallNone: use a template that has it)")
	case c.Install.BinaryPath != "" && c.Install.Mode != provider.InstallScript:
		in.How, in.Bin = "upload", p.home+"/"+binRel
		if err := upload(ctx, sb, c.Install.BinaryPath, p, &script); err != nil {
			return in, err
		}
	case c.Install.Mode == provider.InstallUpload:
		return in, errors.New("install mode InstallUpload needs Install.BinaryPath")
	default:
		in.How, in.Bin = "script", p.home+"/"+binRel
		installScript(c, &script)
	}
	for _, a := range c.Install.Agents {
		fmt.Fprintf(&script, "%s install-agent %s\n", Quote(in.Bin), Quote(a))
	}
	res, err = sb.Exec(ctx, script.String())
	if err != nil {
		return in, fmt.Errorf("install sandbox-agent (%s): %w", in.How, err)
	}
	if res.ExitCode != 0 {
		return in, &ExecError{Step: "install sandbox-agent (" + in.How + ")", ExitCode: res.ExitCode, Output: tail(res.Output)}
	}
	if c.Token != "" {
		if err := sb.WriteFile(ctx, p.home+"/"+tokenRel, []byte(c.Token+"\n")); err != nil {
			return in, fmt.Errorf("write the server token file: %w", err)
		}
	}
	return in, StartServer(ctx, sb, c)
}

// upload writes the local binary to a temporary name and appends the
// commands that verify its sha256 and move it into place.
func upload(ctx context.Context, sb Sandbox, local string, p probe, script *strings.Builder) error {
	data, err := os.ReadFile(local)
	if err != nil {
		return fmt.Errorf("read BinaryPath: %w", err)
	}
	if err := checkBinary(data, p); err != nil {
		return fmt.Errorf("BinaryPath %s: %w", local, err)
	}
	sum := sha256.Sum256(data)
	tmp := fmt.Sprintf("%s/%s.upload-%x", p.home, binRel, sum[:6])
	if err := sb.WriteFile(ctx, tmp, data); err != nil {
		return fmt.Errorf("upload sandbox-agent: %w", err)
	}
	fmt.Fprintf(script, `f=%s
if command -v sha256sum >/dev/null 2>&1; then sum=$(sha256sum "$f" | cut -d' ' -f1); else sum=$(shasum -a 256 "$f" | cut -d' ' -f1); fi
if [ "$sum" != %s ]; then rm -f "$f"; echo "uploaded sandbox-agent has sha256 $sum, want %x" >&2; exit 3; fi
chmod 755 "$f"
mv -f "$f" %s
`, Quote(tmp), Quote(hex.EncodeToString(sum[:])), sum, Quote(p.home+"/"+binRel))
	return nil
}

// checkBinary refuses a binary that cannot run in the sandbox, which would
// otherwise fail later as an unhelpful "exec format error".
func checkBinary(data []byte, p probe) error {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return errors.New("not a Linux (ELF) executable")
	}
	var arch string
	switch f.Machine {
	case elf.EM_X86_64:
		arch = "amd64"
	case elf.EM_AARCH64:
		arch = "arm64"
	default:
		return fmt.Errorf("unsupported machine %s", f.Machine)
	}
	if p.os != "" && p.os != "Linux" {
		return fmt.Errorf("the sandbox runs %s, not Linux", p.os)
	}
	want := map[string]string{"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}[p.arch]
	if want != "" && want != arch {
		return fmt.Errorf("built for linux/%s but the sandbox is %s", arch, p.arch)
	}
	return nil
}

func installScript(c Config, script *strings.Builder) {
	v := c.Install.Version
	if v == "" {
		v = sandboxagent.Version
	}
	base := c.Install.ReleaseURL
	if base == "" {
		base = DefaultReleaseURL(v)
	}
	base = strings.TrimRight(base, "/")
	// Downloaded to a file, not piped to sh, so a failed download is not
	// mistaken for an empty script that "succeeded".
	fmt.Fprintf(script, `t=$(mktemp)
trap 'rm -f "$t"' EXIT
if command -v curl >/dev/null 2>&1; then curl -fsSL --connect-timeout 10 --max-time 120 -o "$t" %[1]s; else wget -q -T 60 -O "$t" %[1]s; fi
sh "$t" --version %[2]s --base-url %[3]s --dir "$HOME/.local/bin"
`, Quote(base+"/install.sh"), Quote(v), Quote(base))
}

// StartScript is the one command that (re)starts the server: `sandbox-agent
// daemon start` does nothing when its daemon is already running on the
// port, refuses when another process holds it, and otherwise returns once
// the new server answers /v1/health. EnsureServer runs exactly this.
func StartScript(c Config) string {
	timeout := c.StartTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	auth := "--no-token"
	if c.Token != "" {
		auth = `--token-file "$HOME/` + tokenRel + `"`
	}
	return `BIN="$HOME/` + binRel + `"
[ -x "$BIN" ] || BIN=$(command -v sandbox-agent) || { echo "sandbox-agent is not installed in this sandbox" >&2; exit 127; }
` + `[ ! -f "$HOME/` + tokenRel + `" ] || chmod 600 "$HOME/` + tokenRel + `"
exec "$BIN" daemon start --host 0.0.0.0 --port ` + strconv.Itoa(c.Port) + ` ` + auth + ` --timeout ` + timeout.String()
}

// StartServer runs StartScript.
func StartServer(ctx context.Context, sb Sandbox, c Config) error {
	res, err := sb.Exec(ctx, StartScript(c))
	if err != nil {
		return fmt.Errorf("start sandbox-agent: %w", err)
	}
	if res.ExitCode != 0 {
		return &ExecError{Step: "start sandbox-agent", ExitCode: res.ExitCode, Output: tail(res.Output)}
	}
	return nil
}

// ErrNoToken: the sandbox has no token file (its server was started with
// NoToken, or not by this SDK).
var ErrNoToken = errors.New("the sandbox has no sandbox-agent token file")

// ReadToken reads the server's token back from the sandbox, for a process
// that reconnects to a sandbox by id.
func ReadToken(ctx context.Context, sb Sandbox) (string, error) {
	res, err := sb.Exec(ctx, `f="$HOME/`+tokenRel+`"; [ -f "$f" ] || exit 44; cat "$f"`)
	if err != nil {
		return "", fmt.Errorf("read the server token: %w", err)
	}
	switch res.ExitCode {
	case 0:
	case 44:
		return "", ErrNoToken
	default:
		return "", &ExecError{Step: "read the server token", ExitCode: res.ExitCode, Output: tail(res.Output)}
	}
	t := strings.TrimSpace(res.Output)
	if t == "" {
		return "", ErrNoToken
	}
	return t, nil
}

func tail(s string) string {
	const n = 2000
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
