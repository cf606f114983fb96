package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/sandbox-agent-go/sandbox-agent/internal/agents"
)

func newCredentialsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "credentials",
		Short: "Inspect locally discovered credentials",
	}
	var (
		home    string
		noOAuth bool
		export  bool
		agent   string
		prov    string
		reveal  bool
	)
	opts := func() agents.CredentialOptions {
		return agents.CredentialOptions{Env: os.Environ(), Home: home, NoOAuth: noOAuth}
	}
	extractEnv := &cobra.Command{
		Use:   "extract-env",
		Short: "Print discovered credentials as KEY=value lines (for eval / env files)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, l := range agents.DiscoverCredentials(opts()).EnvLines(export) {
				fmt.Fprintln(cmd.OutOrStdout(), l)
			}
			return nil
		},
	}
	extractEnv.Flags().BoolVarP(&export, "export", "e", false, "prefix lines with `export ` and shell-quote values")
	extract := &cobra.Command{
		Use:   "extract",
		Short: "Print discovered credentials as JSON (keys redacted unless --reveal)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c := agents.DiscoverCredentials(opts())
			provider := prov
			switch agent {
			case "":
			case "claude", "amp":
				provider = "anthropic"
			case "codex":
				provider = "openai"
			case "opencode":
			default:
				return fmt.Errorf("unsupported agent: %s", agent)
			}
			var out any = c
			if provider != "" {
				var found *agents.Credential
				switch provider {
				case "anthropic":
					found = c.Anthropic
				case "openai":
					found = c.OpenAI
				default:
					found = c.Other[provider]
				}
				if found == nil {
					return fmt.Errorf("no credentials found for provider %s", provider)
				}
				out = found
			}
			if !reveal {
				out = redactAll(c, out)
			}
			b, _ := json.MarshalIndent(out, "", "  ")
			fmt.Fprintln(cmd.OutOrStdout(), string(b))
			return nil
		},
	}
	extract.Flags().StringVarP(&agent, "agent", "a", "", "only the credentials this agent uses (claude, codex, opencode, amp)")
	extract.Flags().StringVarP(&prov, "provider", "p", "", "only this provider (anthropic, openai, …)")
	extract.Flags().BoolVarP(&reveal, "reveal", "r", false, "print secrets in full")
	for _, c := range []*cobra.Command{extract, extractEnv} {
		c.Flags().StringVarP(&home, "home-dir", "d", "", "home directory to read the agents' config files from (default $HOME)")
		c.Flags().BoolVar(&noOAuth, "no-oauth", false, "ignore OAuth tokens, keep API keys")
	}
	cmd.AddCommand(extract, extractEnv)
	return cmd
}

// redactAll replaces every secret in out (c or one of its credentials).
func redactAll(c agents.Credentials, out any) any {
	red := func(x *agents.Credential) *agents.Credential {
		if x == nil {
			return nil
		}
		y := *x
		y.APIKey = y.Redacted
		return &y
	}
	if one, ok := out.(*agents.Credential); ok {
		return red(one)
	}
	r := agents.Credentials{Anthropic: red(c.Anthropic), OpenAI: red(c.OpenAI), Other: map[string]*agents.Credential{}}
	for k, v := range c.Other {
		r.Other[k] = red(v)
	}
	return r
}
