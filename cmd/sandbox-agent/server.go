package main

import (
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sandbox-agent-go/sandbox-agent/internal/agents"
	"github.com/sandbox-agent-go/sandbox-agent/internal/app"
	"github.com/sandbox-agent-go/sandbox-agent/internal/fsapi"
	"github.com/sandbox-agent-go/sandbox-agent/internal/process"
	"github.com/sandbox-agent-go/sandbox-agent/internal/server"
)

type serverFlags struct {
	host           string
	port           int
	corsOrigins    []string
	corsMethods    []string
	corsHeaders    []string
	corsCreds      bool
	noTelemetry    bool
	logFormat      string
	logLevel       string
	maxBodyBytes   int64
	allowedHosts   []string
	requestTimeout time.Duration
	dataDir        string
	maxProcs       int
	logHTTP        bool
	logHTTPHeaders bool
	// issue 9: token file and exited-process log budget
	tokenFile        string
	processLogBudget int64
	bodyIdle         time.Duration
	idleTimeout      time.Duration
	maxACPServers    int
	// upload limits (fs routes); 0 disables one.
	uploadMaxBytes     int64
	uploadMaxFileBytes int64
	uploadMaxEntries   int
	uploadMaxDepth     int
	uploadMaxPathBytes int
}

// envDefaults lets every server flag come from the environment; an explicit
// flag wins over the variable.
var serverEnv = map[string]string{
	"host":                   "SANDBOX_AGENT_HOST",
	"port":                   "SANDBOX_AGENT_PORT",
	"token":                  "SANDBOX_AGENT_TOKEN",
	"cors-allow-origin":      "SANDBOX_AGENT_CORS_ALLOW_ORIGIN",
	"cors-allow-method":      "SANDBOX_AGENT_CORS_ALLOW_METHOD",
	"cors-allow-header":      "SANDBOX_AGENT_CORS_ALLOW_HEADER",
	"cors-allow-credentials": "SANDBOX_AGENT_CORS_ALLOW_CREDENTIALS",
	"log-format":             "SANDBOX_AGENT_LOG_FORMAT",
	"log-level":              "SANDBOX_AGENT_LOG_LEVEL",
	"max-body-bytes":         "SANDBOX_AGENT_MAX_BODY_BYTES",
	"allowed-host":           "SANDBOX_AGENT_ALLOWED_HOSTS",
	"data-dir":               "SANDBOX_AGENT_DATA_DIR",
	"max-procs":              "SANDBOX_AGENT_MAX_PROCS",
	"log-http":               "SANDBOX_AGENT_LOG_HTTP",
	"log-http-headers":       "SANDBOX_AGENT_LOG_HTTP_HEADERS",
	"token-file":             "SANDBOX_AGENT_TOKEN_FILE",
	"process-log-budget":     "SANDBOX_AGENT_PROCESS_LOG_BUDGET",
	"body-idle-timeout":      "SANDBOX_AGENT_BODY_IDLE_TIMEOUT",
	"idle-timeout":           "SANDBOX_AGENT_IDLE_TIMEOUT",
	"max-acp-servers":        "SANDBOX_AGENT_MAX_ACP_SERVERS",
	"upload-max-bytes":       "SANDBOX_AGENT_UPLOAD_MAX_BYTES",
	"upload-max-file-bytes":  "SANDBOX_AGENT_UPLOAD_MAX_FILE_BYTES",
	"upload-max-entries":     "SANDBOX_AGENT_UPLOAD_MAX_ENTRIES",
	"upload-max-depth":       "SANDBOX_AGENT_UPLOAD_MAX_DEPTH",
	"upload-max-path-bytes":  "SANDBOX_AGENT_UPLOAD_MAX_PATH_BYTES",
}

func applyEnv(fs *pflag.FlagSet, env map[string]string) error {
	for name, key := range env {
		v, ok := os.LookupEnv(key)
		f := fs.Lookup(name)
		if !ok || f == nil || f.Changed {
			continue
		}
		if sv, isSlice := f.Value.(pflag.SliceValue); isSlice {
			var items []string
			for it := range strings.SplitSeq(v, ",") {
				if it = strings.TrimSpace(it); it != "" {
					items = append(items, it)
				}
			}
			if err := sv.Replace(items); err != nil {
				return fmt.Errorf("%s: %w", key, err)
			}
		} else if err := fs.Set(name, v); err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		f.Changed = true
	}
	return nil
}

func newServerCmd(g *globalFlags) *cobra.Command {
	f := &serverFlags{}
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the sandbox agent HTTP server",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fs := cmd.Flags()
			env, err := tokenEnv(fs, serverEnv)
			if err != nil {
				return err
			}
			if err := applyEnv(fs, env); err != nil {
				return &usageError{err.Error()}
			}
			if fs.Changed("token-file") {
				if g.token, err = readTokenFile(f.tokenFile); err != nil {
					return err
				}
			}
			if f.processLogBudget <= 0 {
				return &usageError{"invalid --process-log-budget: must be a positive number of bytes"}
			}
			log, err := newLogger(cmd.ErrOrStderr(), f.logFormat, f.logLevel)
			if err != nil {
				return &usageError{err.Error()}
			}
			timeout := f.requestTimeout
			if ms, ok := os.LookupEnv("SANDBOX_AGENT_ACP_REQUEST_TIMEOUT_MS"); ok && !fs.Changed("acp-request-timeout") {
				n, err := strconv.Atoi(ms)
				if err != nil || n <= 0 {
					return &usageError{"SANDBOX_AGENT_ACP_REQUEST_TIMEOUT_MS must be a positive integer"}
				}
				timeout = time.Duration(n) * time.Millisecond
			}
			if f.maxProcs < 0 {
				return &usageError{"invalid --max-procs: must be 0 (automatic) or more"}
			}
			_, goEnv := os.LookupEnv("GOMAXPROCS")
			procs := serverProcs(f.maxProcs, goEnv, runtime.GOMAXPROCS(0))
			if procs != runtime.GOMAXPROCS(0) {
				// This also stops the runtime from following later changes
				// of the cgroup CPU limit; a restart picks them up.
				runtime.GOMAXPROCS(procs)
			}
			allowedHosts := f.allowedHosts
			if len(allowedHosts) == 0 {
				allowedHosts = server.DefaultAllowedHosts(f.host)
			}
			cfg := app.Config{
				Version:  version,
				Logger:   log,
				Timeouts: server.Timeouts{Idle: f.idleTimeout},
				HTTP: server.Config{
					Token:           g.token,
					AuthEnabled:     fs.Changed("token") || fs.Changed("token-file"), // --token wins over --no-token, as upstream
					CORSOrigins:     f.corsOrigins,
					CORSMethods:     f.corsMethods,
					CORSHeaders:     f.corsHeaders,
					CORSCredentials: f.corsCreds,
					MaxBodyBytes:    f.maxBodyBytes,
					AllowedHosts:    allowedHosts,
					BodyIdleTimeout: f.bodyIdle,
					LogHTTP:         f.logHTTP,
					LogHTTPHeaders:  f.logHTTPHeaders,
				},
				Agents: agents.Options{DataDir: f.dataDir, RequirePreinstall: agents.EnvRequirePreinstall()},
			}
			cfg.ACP.RequestTimeout = timeout
			cfg.Processes.ExitedLogBudget = uint64(f.processLogBudget)
			if f.maxACPServers <= 0 {
				return &usageError{"invalid --max-acp-servers: must be 1 or more"}
			}
			cfg.ACP.MaxServers = f.maxACPServers
			if f.uploadMaxBytes < 0 || f.uploadMaxFileBytes < 0 || f.uploadMaxEntries < 0 || f.uploadMaxDepth < 0 || f.uploadMaxPathBytes < 0 {
				return &usageError{"invalid --upload-max-*: must be 0 (unlimited) or more"}
			}
			cfg.MaxFileBytes = f.uploadMaxFileBytes
			cfg.Upload = fsapi.UploadLimits{MaxBytes: f.uploadMaxBytes, MaxEntries: f.uploadMaxEntries, MaxDepth: f.uploadMaxDepth, MaxPathBytes: f.uploadMaxPathBytes}
			a, err := app.New(cfg)
			if err != nil {
				return err
			}
			addr := net.JoinHostPort(f.host, strconv.Itoa(f.port))
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("listen on %s: %w", addr, err)
			}
			url := "http://" + ln.Addr().String()
			log.Info("server listening", "url", url, "auth", cfg.HTTP.AuthEnabled, "version", version, "procs", runtime.GOMAXPROCS(0))
			return a.Serve(cmd.Context(), ln)
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&f.host, "host", "H", "127.0.0.1", "address to listen on")
	fs.IntVarP(&f.port, "port", "p", 2468, "port to listen on (0 picks a free port)")
	fs.StringArrayVarP(&f.corsOrigins, "cors-allow-origin", "O", nil, "allowed CORS origin (exact match; repeatable)")
	fs.StringArrayVarP(&f.corsMethods, "cors-allow-method", "M", nil, "allowed CORS method (repeatable; default *)")
	fs.StringArrayVarP(&f.corsHeaders, "cors-allow-header", "A", nil, "allowed CORS header (repeatable; default *)")
	fs.BoolVarP(&f.corsCreds, "cors-allow-credentials", "C", false, "send Access-Control-Allow-Credentials: true")
	fs.BoolVar(&f.noTelemetry, "no-telemetry", false, "accepted for compatibility; this server sends no telemetry")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.Int64Var(&f.maxBodyBytes, "max-body-bytes", server.DefaultMaxBodyBytes, "limit for buffered JSON request bodies")
	fs.StringArrayVar(&f.allowedHosts, "allowed-host", nil, "accept only requests whose Host is listed (DNS-rebinding guard; repeatable; '*' accepts any; default on a loopback address: localhost, 127.0.0.1, ::1)")
	fs.DurationVar(&f.bodyIdle, "body-idle-timeout", server.DefaultBodyIdleTimeout, "answer 408 and close when a request body delivers nothing for this long (uploads that keep moving are never cut)")
	fs.DurationVar(&f.idleTimeout, "idle-timeout", server.DefaultIdleTimeout, "close keep-alive connections idle for this long")
	fs.DurationVar(&f.requestTimeout, "acp-request-timeout", 5*time.Minute, "how long an ACP request may wait for the agent before 504 (env SANDBOX_AGENT_ACP_REQUEST_TIMEOUT_MS)")
	fs.IntVar(&f.maxACPServers, "max-acp-servers", 256, "most live ACP servers (agent processes); a new server id past it gets 503 too_many_servers")
	fs.BoolVar(&f.logHTTP, "log-http", false, "log every finished request: method, path, status, bytes, duration (tokens redacted)")
	fs.BoolVar(&f.logHTTPHeaders, "log-http-headers", false, "also log request headers (Authorization, cookies and API keys redacted); implies --log-http")
	fs.IntVar(&f.maxProcs, "max-procs", 0, "OS threads running Go code at once (0: half the CPUs the runtime sees, at least 1, unless GOMAXPROCS is set)")
	fs.StringVar(&f.tokenFile, "token-file", "", "read the bearer token from this file (trailing newline trimmed) so it is not on the command line; excludes --token")
	fs.Int64Var(&f.processLogBudget, "process-log-budget", process.DefaultExitedLogBudget, "bytes of output kept by exited processes in total; past it the oldest exited process's logs are dropped")
	fs.StringVar(&f.dataDir, "data-dir", "", "data directory for installed agents (default $XDG_DATA_HOME/sandbox-agent or ~/.local/share/sandbox-agent)")
	fs.Int64Var(&f.uploadMaxBytes, "upload-max-bytes", fsapi.DefaultUploadLimits.MaxBytes, "upload-batch: most bytes one archive may extract, sparse holes included (0: unlimited)")
	fs.Int64Var(&f.uploadMaxFileBytes, "upload-max-file-bytes", fsapi.DefaultMaxFileBytes, "most bytes of one file: a PUT /v1/fs/file body or an upload-batch entry (0: unlimited)")
	fs.IntVar(&f.uploadMaxEntries, "upload-max-entries", fsapi.DefaultUploadLimits.MaxEntries, "upload-batch: most entries in one archive (0: unlimited)")
	fs.IntVar(&f.uploadMaxDepth, "upload-max-depth", fsapi.DefaultUploadLimits.MaxDepth, "upload-batch: most path components in an entry's name (0: unlimited)")
	fs.IntVar(&f.uploadMaxPathBytes, "upload-max-path-bytes", fsapi.DefaultUploadLimits.MaxPathBytes, "upload-batch: longest entry name or link target, in bytes (0: unlimited)")
	return cmd
}

// serverProcs picks GOMAXPROCS for the server. An explicit --max-procs
// wins, then the GOMAXPROCS variable (already applied by the runtime); by
// default the server takes half of what the runtime would (which already
// honours cgroup CPU limits), at least one. The server is a proxy whose
// work comes in short bursts between agents, clients and pipes, in a
// sandbox where the agents (node processes) need the CPUs: measured on 2
// CPUs, one P cut server CPU per ACP round trip from 161 to 102 µs and the
// round trip from 0.24 to 0.20 ms, with SSE fan-out and file throughput as
// good or better, because fewer cross-thread wake-ups are needed
// (BENCHMARKS.md).
func serverProcs(flag int, goEnv bool, current int) int {
	switch {
	case flag > 0:
		return flag
	case goEnv:
		return current
	default:
		return max(1, current/2)
	}
}

func newLogger(w interface{ Write([]byte) (int, error) }, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("invalid --log-level %q", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("invalid --log-format %q: want text or json", format)
}

// tokenEnv returns env without the token variable that must not apply:
// --token and --token-file exclude each other (a usage error when both are
// flags, or both variables, are given); an explicit flag of either kind
// wins over the other kind's variable, as flags win over variables
// everywhere else.
func tokenEnv(fs *pflag.FlagSet, env map[string]string) (map[string]string, error) {
	tokenFlag, fileFlag := fs.Changed("token"), fs.Changed("token-file")
	_, tokenVar := os.LookupEnv(env["token"])
	_, fileVar := os.LookupEnv(env["token-file"])
	switch {
	case tokenFlag && fileFlag:
		return nil, &usageError{"--token and --token-file exclude each other"}
	case !tokenFlag && !fileFlag && tokenVar && fileVar:
		return nil, &usageError{env["token"] + " and " + env["token-file"] + " exclude each other"}
	}
	out := maps.Clone(env)
	if fileFlag {
		delete(out, "token")
	}
	if tokenFlag {
		delete(out, "token-file")
	}
	return out, nil
}

// readTokenFile reads the server token from path: the content with its
// trailing newline (and surrounding whitespace) trimmed, which must not be
// empty.
func readTokenFile(path string) (string, error) {
	if path == "" {
		return "", &usageError{"invalid --token-file: empty path"}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", &usageError{fmt.Sprintf("invalid --token-file: %v", err)}
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", &usageError{fmt.Sprintf("invalid --token-file: %s is empty", path)}
	}
	if strings.ContainsAny(tok, "\r\n") {
		return "", &usageError{fmt.Sprintf("invalid --token-file: %s holds more than one line", path)}
	}
	return tok, nil
}
