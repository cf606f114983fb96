package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sandbox-agent-go/sandbox-agent/internal/sse"
)

// apiClient is the small HTTP client behind `sandbox-agent api`.
type apiClient struct {
	g        *globalFlags
	endpoint string
	out      io.Writer
}

func (c *apiClient) do(cmd *cobra.Command, method, path string, body []byte, hdr map[string]string) (*http.Response, error) {
	u := strings.TrimRight(c.endpoint, "/") + path
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(cmd.Context(), method, u, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.g.token != "" && !c.g.noToken {
		req.Header.Set("Authorization", "Bearer "+c.g.token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		printPretty(c.out, b)
		return nil, fmt.Errorf("unexpected http status: %s", resp.Status)
	}
	return resp, nil
}

// call performs a request and pretty-prints the JSON answer (nothing for
// an empty body such as 202/204).
func (c *apiClient) call(cmd *cobra.Command, method, path string, body []byte) error {
	resp, err := c.do(cmd, method, path, body, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	printPretty(c.out, b)
	return nil
}

func printPretty(w io.Writer, b []byte) {
	if len(bytes.TrimSpace(b)) == 0 {
		return
	}
	var buf bytes.Buffer
	if json.Indent(&buf, b, "", "  ") == nil {
		buf.WriteByte('\n')
		_, _ = w.Write(buf.Bytes())
		return
	}
	_, _ = w.Write(append(b, '\n'))
}

func newAPICmd(g *globalFlags) *cobra.Command {
	c := &apiClient{g: g}
	api := &cobra.Command{Use: "api", Short: "Call the HTTP API without writing client code"}
	api.PersistentFlags().StringVarP(&c.endpoint, "endpoint", "e", "http://127.0.0.1:2468", "server URL")
	api.PersistentPreRun = func(cmd *cobra.Command, args []string) { c.out = cmd.OutOrStdout() }

	agentsCmd := &cobra.Command{Use: "agents", Short: "List and install agents"}
	agentsCmd.AddCommand(&cobra.Command{
		Use: "list", Short: "List agents with install status and config options", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.call(cmd, http.MethodGet, "/v1/agents?config=true", nil)
		},
	})
	agentsCmd.AddCommand(&cobra.Command{
		Use: "report", Short: "Report each agent's models, modes and thought levels as JSON", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return c.report(cmd) },
	})
	var reinstall bool
	var agentVersion, processVersion string
	install := &cobra.Command{
		Use: "install AGENT", Short: "Install an agent", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body, _ := json.Marshal(map[string]any{"reinstall": reinstall, "agentVersion": nonEmpty(agentVersion), "agentProcessVersion": nonEmpty(processVersion)})
			return c.call(cmd, http.MethodPost, "/v1/agents/"+url.PathEscape(args[0])+"/install", body)
		},
	}
	install.Flags().BoolVarP(&reinstall, "reinstall", "r", false, "reinstall even if installed")
	install.Flags().StringVar(&agentVersion, "agent-version", "", "agent version to install")
	install.Flags().StringVar(&processVersion, "agent-process-version", "", "ACP adapter version to install")
	agentsCmd.AddCommand(install)

	acpCmd := &cobra.Command{Use: "acp", Short: "Talk ACP to an agent server"}
	var serverID, agent, jsonText, jsonFile string
	var lastEventID uint64
	checkID := func() error {
		if serverID == "" {
			return &usageError{"--server-id must not be empty"}
		}
		if strings.Contains(serverID, "/") {
			return &usageError{"server id must not contain '/'"}
		}
		return nil
	}
	post := &cobra.Command{
		Use: "post", Short: "POST one JSON-RPC envelope (from --json, --json-file or stdin)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkID(); err != nil {
				return err
			}
			var body []byte
			var err error
			switch {
			case jsonText != "" && jsonFile != "":
				return &usageError{"--json and --json-file are mutually exclusive"}
			case jsonText != "":
				body = []byte(jsonText)
			case jsonFile != "":
				body, err = os.ReadFile(jsonFile)
			default:
				body, err = io.ReadAll(cmd.InOrStdin())
			}
			if err != nil {
				return err
			}
			path := "/v1/acp/" + url.PathEscape(serverID)
			if agent != "" {
				path += "?agent=" + url.QueryEscape(agent)
			}
			return c.call(cmd, http.MethodPost, path, body)
		},
	}
	post.Flags().StringVar(&agent, "agent", "", "agent to start on the first POST")
	post.Flags().StringVar(&jsonText, "json", "", "JSON-RPC envelope")
	post.Flags().StringVar(&jsonFile, "json-file", "", "file holding the JSON-RPC envelope")
	stream := &cobra.Command{
		Use: "stream", Short: "Print the server's SSE stream, one JSON message per line", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkID(); err != nil {
				return err
			}
			hdr := map[string]string{"Accept": "text/event-stream"}
			if cmd.Flags().Changed("last-event-id") {
				hdr["Last-Event-ID"] = strconv.FormatUint(lastEventID, 10)
			}
			resp, err := c.do(cmd, http.MethodGet, "/v1/acp/"+url.PathEscape(serverID), nil, hdr)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			r := sse.NewReader(resp.Body)
			for {
				ev, err := r.Next()
				if err != nil {
					if errors.Is(err, io.EOF) || cmd.Context().Err() != nil {
						return nil
					}
					return err
				}
				fmt.Fprintf(c.out, "%s\n", ev.Data)
			}
		},
	}
	stream.Flags().Uint64Var(&lastEventID, "last-event-id", 0, "resume after this event id")
	closeCmd := &cobra.Command{
		Use: "close", Short: "Stop the agent server (DELETE)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkID(); err != nil {
				return err
			}
			return c.call(cmd, http.MethodDelete, "/v1/acp/"+url.PathEscape(serverID), nil)
		},
	}
	for _, sc := range []*cobra.Command{post, stream, closeCmd} {
		sc.Flags().StringVar(&serverID, "server-id", "", "ACP server id")
		acpCmd.AddCommand(sc)
	}
	listCmd := &cobra.Command{
		Use: "list", Short: "List running agent servers", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return c.call(cmd, http.MethodGet, "/v1/acp", nil) },
	}
	acpCmd.AddCommand(listCmd)
	api.AddCommand(agentsCmd, acpCmd)
	return api
}

// optionReport is one category of an agent report (upstream's shape).
type optionReport struct {
	CurrentValue string        `json:"currentValue,omitempty"`
	Values       []optionValue `json:"values"`
}

type optionValue struct {
	Value string `json:"value"`
	Name  string `json:"name"`
}

// report prints upstream's `api agents report` document, built from
// GET /v1/agents?config=true.
func (c *apiClient) report(cmd *cobra.Command) error {
	resp, err := c.do(cmd, http.MethodGet, "/v1/agents?config=true", nil, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var list struct {
		Agents []struct {
			ID            string `json:"id"`
			Installed     bool   `json:"installed"`
			ConfigOptions []struct {
				Category     string        `json:"category"`
				CurrentValue string        `json:"currentValue"`
				Options      []optionValue `json:"options"`
			} `json:"configOptions"`
		} `json:"agents"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return fmt.Errorf("decode agents: %w", err)
	}
	type agentReport struct {
		ID            string       `json:"id"`
		Installed     bool         `json:"installed"`
		Models        optionReport `json:"models"`
		Modes         optionReport `json:"modes"`
		ThoughtLevels optionReport `json:"thoughtLevels"`
	}
	out := struct {
		GeneratedAtMs int64         `json:"generatedAtMs"`
		Endpoint      string        `json:"endpoint"`
		Agents        []agentReport `json:"agents"`
	}{GeneratedAtMs: time.Now().UnixMilli(), Endpoint: c.endpoint, Agents: []agentReport{}}
	for _, a := range list.Agents {
		r := agentReport{ID: a.ID, Installed: a.Installed,
			Models: optionReport{Values: []optionValue{}}, Modes: optionReport{Values: []optionValue{}}, ThoughtLevels: optionReport{Values: []optionValue{}}}
		for _, o := range a.ConfigOptions {
			var dst *optionReport
			switch o.Category {
			case "model":
				dst = &r.Models
			case "mode":
				dst = &r.Modes
			case "thought_level":
				dst = &r.ThoughtLevels
			default:
				continue
			}
			dst.CurrentValue = o.CurrentValue
			dst.Values = append(dst.Values, o.Options...)
		}
		out.Agents = append(out.Agents, r)
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(c.out, "%s\n", b)
	return err
}

func nonEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}
