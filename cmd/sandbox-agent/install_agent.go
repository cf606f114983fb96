package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/sandbox-agent-go/sandbox-agent/internal/agents"
	"github.com/sandbox-agent-go/sandbox-agent/internal/problem"
)

// cliArtifact is upstream's CLI spelling of an install artifact.
type cliArtifact struct {
	Kind    string `json:"kind"`
	Path    string `json:"path"`
	Source  string `json:"source"`
	Version string `json:"version"`
}

type cliInstallResult struct {
	Agent            string        `json:"agent,omitempty"`
	AlreadyInstalled bool          `json:"alreadyInstalled"`
	Artifacts        []cliArtifact `json:"artifacts"`
	Error            string        `json:"error,omitempty"`
}

// camel turns "agent_process" into "AgentProcess".
func camel(s string) string {
	var b strings.Builder
	for p := range strings.SplitSeq(s, "_") {
		if p != "" {
			b.WriteString(strings.ToUpper(p[:1]) + p[1:])
		}
	}
	return b.String()
}

func newInstallAgentCmd() *cobra.Command {
	var (
		all, reinstall              bool
		agentVersion, processVerson string
		dataDir                     string
	)
	cmd := &cobra.Command{
		Use:   "install-agent [AGENT]",
		Short: "Install or reinstall one agent, or `all` supported agents, without running the server",
		Long: "Install an agent's ACP process (and native CLI) into the data directory.\n" +
			"Sources: the ACP registry (SANDBOX_AGENT_ACP_REGISTRY_URL; \"off\" disables it), else built-in pins;\n" +
			"native CLIs from upstream's download sources, else npm (SANDBOX_AGENT_NATIVE_SOURCE=auto|npm|download).",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := applyEnv(cmd.Flags(), map[string]string{"data-dir": "SANDBOX_AGENT_DATA_DIR"}); err != nil {
				return &usageError{err.Error()}
			}
			var ids []string
			switch {
			case all || (len(args) == 1 && args[0] == "all"):
				if agentVersion != "" || processVerson != "" {
					return &usageError{"--agent-version and --agent-process-version need a single agent"}
				}
				ids = agents.IDs
			case len(args) == 1:
				if !agents.Known(args[0]) {
					return fmt.Errorf("unsupported agent: %s", args[0])
				}
				ids = args
			default:
				return &usageError{"the following required arguments were not provided: <AGENT> (or --all)"}
			}
			m := agents.NewManager(agents.Options{DataDir: dataDir, Logger: slog.New(slog.DiscardHandler)})
			stderr := cmd.ErrOrStderr()
			progress := newProgressPrinter(stderr)
			req := agents.InstallRequest{Reinstall: reinstall, AgentVersion: agentVersion, AgentProcessVersion: processVerson}
			var failed []string
			for _, id := range ids {
				res, err := m.InstallWithProgress(cmd.Context(), id, req, progress)
				out := cliInstallResult{AlreadyInstalled: res.AlreadyInstalled, Artifacts: []cliArtifact{}}
				for _, a := range res.Artifacts {
					out.Artifacts = append(out.Artifacts, cliArtifact{Kind: camel(a.Kind), Path: a.Path, Source: camel(a.Source), Version: a.Version})
				}
				if len(ids) > 1 {
					out.Agent = id
				}
				if err != nil {
					if len(ids) == 1 {
						return errors.New(installErrorText(err))
					}
					out.Error = installErrorText(err)
					failed = append(failed, id)
				}
				b, _ := json.Marshal(out)
				fmt.Fprintln(cmd.OutOrStdout(), string(b))
			}
			if len(failed) > 0 {
				return fmt.Errorf("install failed for: %s", strings.Join(failed, ", "))
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.BoolVar(&all, "all", false, "install every supported agent")
	fs.BoolVarP(&reinstall, "reinstall", "r", false, "reinstall even when already installed")
	fs.StringVar(&agentVersion, "agent-version", "", "version of the native agent CLI")
	fs.StringVar(&processVerson, "agent-process-version", "", "version of the ACP adapter package")
	fs.StringVar(&dataDir, "data-dir", "", "data directory (env SANDBOX_AGENT_DATA_DIR; default $XDG_DATA_HOME/sandbox-agent or ~/.local/share/sandbox-agent)")
	return cmd
}

// installErrorText is the step-naming detail of an install_failed problem.
func installErrorText(err error) string {
	var p *problem.Problem
	if errors.As(err, &p) {
		if s, ok := p.Details["stderr"].(string); ok {
			return s
		}
	}
	return err.Error()
}

// newProgressPrinter shows every step on a terminal (start and result) and
// one line per finished step otherwise.
func newProgressPrinter(w io.Writer) agents.ProgressFunc {
	tty := false
	if f, ok := w.(*os.File); ok {
		tty = isatty.IsTerminal(f.Fd())
	}
	return func(ev agents.ProgressEvent) {
		detail := ev.Detail
		if ev.Status == "fail" {
			// The full error follows at the end; keep the step line short.
			detail, _, _ = strings.Cut(detail, "\n")
		}
		if detail != "" {
			detail = ": " + detail
		}
		dur := ev.Elapsed.Round(100 * time.Millisecond)
		if tty {
			switch ev.Status {
			case "start":
				fmt.Fprintf(w, "\r\033[K  … %s: %s", ev.Agent, ev.Step)
			case "done":
				fmt.Fprintf(w, "\r\033[K  ✓ %s: %s (%s)%s\n", ev.Agent, ev.Step, dur, detail)
			case "skip":
				fmt.Fprintf(w, "\r\033[K  - %s: %s skipped%s\n", ev.Agent, ev.Step, detail)
			case "fail":
				fmt.Fprintf(w, "\r\033[K  ✗ %s: %s failed (%s)%s\n", ev.Agent, ev.Step, dur, detail)
			}
			return
		}
		if ev.Status == "start" {
			return
		}
		fmt.Fprintf(w, "install-agent: %s: %s: %s (%s)%s\n", ev.Agent, ev.Step, ev.Status, dur, detail)
	}
}
