// Command sandbox-agent is the sandbox-agent server and its command-line
// tools: run the HTTP server, call its API from the shell, and run the
// built-in mock ACP agent.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/sandbox-agent-go/sandbox-agent/internal/mockagent"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

// exitError carries a process exit code through cobra.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// globalFlags are accepted on every command, as upstream.
type globalFlags struct {
	token   string
	noToken bool
}

func newRoot() *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:           "sandbox-agent",
		Short:         "Run coding agents inside sandboxes behind one HTTP API",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("sandbox-agent {{.Version}}\n")
	root.Flags().BoolP("version", "V", false, "print version")
	pf := root.PersistentFlags()
	pf.StringVarP(&g.token, "token", "t", "", "bearer token (server: require it; clients: send it)")
	pf.BoolVarP(&g.noToken, "no-token", "n", false, "disable authentication")
	root.AddCommand(newServerCmd(g), newMockAgentCmd(), newAPICmd(g),
		newInstallAgentCmd(),
		newCredentialsCmd(),
		newDaemonCmd(g),
	)
	return root
}

func newMockAgentCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "mock-agent-process",
		Short:  "Run the built-in deterministic mock ACP agent on stdio",
		Hidden: true,
		Args:   cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, a := range args {
				if a == "--help" || a == "-h" {
					fmt.Fprintln(cmd.OutOrStdout(), "sandbox-agent mock-agent-process: the built-in mock ACP agent (speaks ACP on stdin/stdout)")
					return nil
				}
			}
			err := mockagent.Run(cmd.Context(), os.Stdin, os.Stdout, os.Stderr)
			if cmd.Context().Err() != nil {
				return nil // stopped by SIGTERM/SIGINT: a normal end for an agent
			}
			var ee *mockagent.ExitError
			if errors.As(err, &ee) {
				return &exitError{ee.Code}
			}
			return err
		},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot().ExecuteContext(ctx)
	stop()
	if err == nil {
		return
	}
	var ee *exitError
	if errors.As(err, &ee) {
		os.Exit(ee.code)
	}
	fmt.Fprintln(os.Stderr, "error:", err)
	var ue *usageError
	if errors.As(err, &ue) {
		os.Exit(2)
	}
	os.Exit(1)
}

// usageError marks bad command-line input (exit code 2, as upstream).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }
