package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/sandbox-agent-go/sandbox-agent/internal/agents"
	"github.com/sandbox-agent-go/sandbox-agent/internal/daemon"
)

type daemonFlags struct {
	host      string
	port      int
	dataDir   string
	timeout   time.Duration
	upgrade   bool
	tokenFile string
}

func (f *daemonFlags) options(g *globalFlags) (daemon.Options, error) {
	exe, err := os.Executable()
	if err != nil {
		return daemon.Options{}, fmt.Errorf("locate this binary: %w", err)
	}
	dir := f.dataDir
	var serverArgs []string
	if dir != "" {
		// The daemon runs from /, so a relative directory would move.
		if dir, err = filepath.Abs(dir); err != nil {
			return daemon.Options{}, err
		}
		serverArgs = append(serverArgs, "--data-dir", dir)
	} else {
		dir = agents.DefaultDataDir()
	}
	return daemon.Options{
		DataDir: dir, Host: f.host, Port: f.port, Token: g.token,
		Executable: exe, Version: version, ServerArgs: serverArgs,
		StartTimeout: f.timeout,
	}, nil
}

// daemonSub builds one `daemon` subcommand with the address flags.
func daemonSub(g *globalFlags, use, short string, run func(cmd *cobra.Command, o daemon.Options, f *daemonFlags) error) (*cobra.Command, *daemonFlags) {
	f := &daemonFlags{}
	c := &cobra.Command{
		Use: use, Short: short, Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := f.options(g)
			if err != nil {
				return err
			}
			return run(cmd, o, f)
		},
	}
	fs := c.Flags()
	fs.StringVarP(&f.host, "host", "H", "127.0.0.1", "address the daemon listens on")
	fs.IntVarP(&f.port, "port", "p", 2468, "port the daemon listens on")
	fs.StringVar(&f.dataDir, "data-dir", "", "data directory (daemon files go to <dir>/daemon; default $XDG_DATA_HOME/sandbox-agent or ~/.local/share/sandbox-agent)")
	return c, f
}

func newDaemonCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Manage the sandbox-agent background daemon",
	}
	start, sf := daemonSub(g, "start", "Start the server in the background and wait until it is healthy", func(cmd *cobra.Command, o daemon.Options, f *daemonFlags) error {
		if f.tokenFile != "" {
			if cmd.Flags().Changed("token") {
				return &usageError{"--token and --token-file exclude each other"}
			}
			abs, err := filepath.Abs(f.tokenFile)
			if err != nil {
				return err
			}
			// Read here for the health check; the server reads the file
			// itself, so the token is on no command line.
			if o.Token, err = readTokenFile(abs); err != nil {
				return err
			}
			o.TokenFile = abs
		}
		st, started, err := daemon.Start(cmd.Context(), o, f.upgrade)
		if err != nil {
			return err
		}
		verb := "started"
		if !started {
			verb = "already running"
		}
		fmt.Fprintf(cmd.OutOrStdout(), "daemon %s (PID %d, logs: %s)\n", verb, st.PID, st.Files.Log)
		return nil
	})
	start.Flags().BoolVar(&sf.upgrade, "upgrade", false, "replace a running daemon that another version started")
	start.Flags().StringVar(&sf.tokenFile, "token-file", "", "the server reads its bearer token from this file (trailing newline trimmed); excludes --token")
	start.Flags().DurationVar(&sf.timeout, "timeout", daemon.DefaultStartTimeout, "how long to wait for the server to become healthy")

	stop, _ := daemonSub(g, "stop", "Stop the background daemon", func(cmd *cobra.Command, o daemon.Options, _ *daemonFlags) error {
		st, err := daemon.Status(o)
		if err != nil {
			return err
		}
		if st.Running {
			fmt.Fprintf(cmd.OutOrStdout(), "stopping daemon (PID %d)...\n", st.PID)
		}
		st, err = daemon.Stop(cmd.Context(), o)
		switch {
		case errors.Is(err, daemon.ErrNotRunning) && st.Stale:
			fmt.Fprintln(cmd.OutOrStdout(), "daemon is not running (stale PID file)")
		case errors.Is(err, daemon.ErrNotRunning):
			fmt.Fprintln(cmd.OutOrStdout(), "daemon is not running")
		case err != nil:
			return err
		default:
			fmt.Fprintln(cmd.OutOrStdout(), "daemon stopped")
		}
		return nil
	})

	status, _ := daemonSub(g, "status", "Show whether the background daemon runs", func(cmd *cobra.Command, o daemon.Options, _ *daemonFlags) error {
		st, err := daemon.Status(o)
		if err != nil {
			return err
		}
		if !st.Running {
			fmt.Fprintln(cmd.OutOrStdout(), "Daemon not running")
			return nil
		}
		build := st.Version
		if build == "" {
			build = "unknown"
		}
		note := ""
		if st.Outdated(version) {
			note = " [outdated, restart recommended]"
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Daemon running (PID %d, build %s, logs: %s)%s\n", st.PID, build, st.Files.Log, note)
		return nil
	})
	cmd.AddCommand(start, stop, status)
	return cmd
}
