// Command multiplayer is upstream's Multiplayer page in Go: one actor per
// workspace owns a sandbox-agent session, and browsers talk to the actor
// (never to sandbox-agent) with the official rivetkit client, unchanged:
//
//	const client = createClient({ endpoint });
//	const conn = client.workspace.getOrCreate([workspaceId]).connect();
//	conn.on("chat.user", …); conn.on("session.event", …);
//	await conn.prompt({ userId, text });
//
// The workspace actor keeps {sandboxId, baseUrl} as state; at every wake it
// connects the Go SDK (a local sandbox-agent by default, or -server-url)
// with a SessionStore kept in the actor's own storage, resumes session
// "default" (restoring it by replay on a new server), and broadcasts every
// session event. Kill the process, start it again on the same -data-dir:
// the session and its history are back.
//
//	go build -o /tmp/sandbox-agent ./cmd/sandbox-agent
//	SANDBOX_AGENT_BIN=/tmp/sandbox-agent go run ./examples/multiplayer -data-dir /tmp/mp
//	open http://127.0.0.1:6420/?workspace=ws-1
package main

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	sandboxagent "github.com/sandbox-agent-go/sandbox-agent"
	"github.com/sandbox-agent-go/sandbox-agent/multiplayer"
	"github.com/sandbox-agent-go/sandbox-agent/multiplayer/sessionstore"
	"github.com/sandbox-agent-go/sandbox-agent/provider/local"
)

//go:embed web
var web embed.FS

// state is persisted with the actor (as the page's createState).
type state struct {
	SandboxID string `json:"sandboxId,omitempty"`
	BaseURL   string `json:"baseUrl,omitempty"`
}

// vars live while the actor is awake (the page's createVars).
type vars struct {
	client      *sandboxagent.Client
	session     *sandboxagent.Session
	unsubscribe func()
	owned       bool // we started the sandbox: destroy it at sleep
}

type (
	ctx      = multiplayer.Ctx[state, *vars]
	asyncCtx = multiplayer.AsyncCtx[state, *vars]
)

type promptIn struct {
	UserID string `json:"userId"`
	Text   string `json:"text"`
}

type config struct {
	agent     string
	serverURL string
	token     string
	provider  *local.Provider
}

func workspace(cfg *config) multiplayer.Def[state, *vars] {
	return multiplayer.Def[state, *vars]{
		Name: "workspace",
		CreateVars: func(c *ctx) (*vars, error) {
			v := &vars{}
			opts := sandboxagent.Options{Store: sessionstore.New(c.Storage())}
			var err error
			if cfg.serverURL != "" {
				opts.BaseURL, opts.Token = cfg.serverURL, cfg.token
				v.client, err = sandboxagent.Connect(c.Context(), opts)
			} else {
				// A local sandbox-agent per awake workspace; its history
				// lives in the actor, so a new server gets it by replay.
				v.client, err = sandboxagent.Start(c.Context(), cfg.provider, sandboxagent.StartOptions{Options: opts})
				v.owned = true
			}
			if err != nil {
				return nil, fmt.Errorf("connect to sandbox-agent: %w", err)
			}
			c.State().SandboxID, c.State().BaseURL = v.client.SandboxID(), v.client.BaseURL()
			v.session, err = v.client.ResumeOrCreateSession(c.Context(), sandboxagent.CreateSessionRequest{ID: "default", Agent: cfg.agent})
			if err != nil {
				v.close()
				return nil, fmt.Errorf("resume session: %w", err)
			}
			// Broadcast is safe from the session's goroutine.
			v.unsubscribe = v.session.OnEvent(func(e sandboxagent.SessionEvent) {
				_ = c.Broadcast("session.event", e)
			})
			return v, nil
		},
		OnSleep: func(c *ctx) error {
			c.Vars().close()
			return nil
		},
		Actions: map[string]multiplayer.ActionFunc[state, *vars]{
			"getSessionInfo": multiplayer.Action(func(c *ctx, _ struct{}) (map[string]any, error) {
				return map[string]any{"workspaceId": c.Key()[0], "sandboxId": c.State().SandboxID}, nil
			}),
			// history lists the prompts the session sent, each as its text
			// blocks: after a restart on a new server, the first one carries
			// the replayed history.
			"history": multiplayer.Long(func(c *asyncCtx, _ struct{}) ([][]string, error) {
				return history(c.Context(), c.Vars().client)
			}),
			// prompt waits for the agent's whole turn: a long action, so
			// getSessionInfo and other users' prompts are not blocked.
			"prompt": multiplayer.Long(func(c *asyncCtx, in promptIn) (sandboxagent.PromptResponse, error) {
				if in.Text == "" {
					return sandboxagent.PromptResponse{}, multiplayer.UserError("empty_prompt", "text is required", nil)
				}
				if err := c.Broadcast("chat.user", map[string]any{"userId": in.UserID, "text": in.Text, "createdAt": time.Now().UnixMilli()}); err != nil {
					return sandboxagent.PromptResponse{}, err
				}
				return c.Vars().session.Prompt(c.Context(), in.Text)
			}),
		},
		Options: multiplayer.Options{ActionTimeout: 10 * time.Minute},
	}
}

func history(ctx context.Context, client *sandboxagent.Client) ([][]string, error) {
	out := [][]string{}
	cursor := ""
	for {
		page, err := client.GetEvents(ctx, sandboxagent.ListEventsRequest{SessionID: "default", Cursor: cursor})
		if err != nil {
			return nil, err
		}
		for _, e := range page.Items {
			var m struct {
				Method string `json:"method"`
				Params struct {
					Prompt []struct {
						Text string `json:"text"`
					} `json:"prompt"`
				} `json:"params"`
			}
			if json.Unmarshal(e.Payload, &m) != nil || m.Method != "session/prompt" {
				continue
			}
			texts := []string{}
			for _, b := range m.Params.Prompt {
				texts = append(texts, b.Text)
			}
			out = append(out, texts)
		}
		if page.NextCursor == "" {
			return out, nil
		}
		cursor = page.NextCursor
	}
}

func (v *vars) close() {
	if v == nil {
		return
	}
	if v.unsubscribe != nil {
		v.unsubscribe()
	}
	if v.client == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if v.owned {
		_ = v.client.DestroySandbox(ctx)
	}
	_ = v.client.Close(ctx)
}

func main() {
	listen := flag.String("listen", "127.0.0.1:6420", "address to serve the actors and the page on")
	dataDir := flag.String("data-dir", "", "where the actors live (local backend; default ./multiplayer-data)")
	natsURL := flag.String("nats", "", "NATS URL(s), comma-separated: run on a NATS JetStream cluster instead of the local backend")
	agent := flag.String("agent", "mock", "agent of the workspace sessions")
	serverURL := flag.String("server-url", "", "an existing sandbox-agent server (default: start a local one per workspace)")
	origins := flag.String("allow-origin", "", "comma-separated extra browser origins allowed to connect")
	hosts := flag.String("allow-host", "", "comma-separated host names this server answers to besides IPs and localhost (when served under a domain)")
	flag.Parse()
	if *dataDir == "" && *natsURL == "" {
		*dataDir = "multiplayer-data"
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := run(*listen, *dataDir, *natsURL, *origins, *hosts, &config{agent: *agent, serverURL: *serverURL,
		token: os.Getenv("SANDBOX_AGENT_TOKEN")}, log); err != nil {
		log.Error("multiplayer", "err", err)
		os.Exit(1)
	}
}

func run(listen, dataDir, natsURL, origins, hosts string, cfg *config, log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if dataDir != "" {
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return err
		}
	}
	if cfg.serverURL == "" {
		cfg.provider = local.New(local.Options{})
		defer cfg.provider.Close()
	}
	b, err := multiplayer.OpenBackend(ctx, multiplayer.BackendConfig{DataDir: dataDir, NATSURL: natsURL, Logger: log})
	if err != nil {
		return err
	}
	defer b.Close()
	reg := multiplayer.NewRegistry()
	multiplayer.Register(reg, workspace(cfg))
	rt, err := multiplayer.Open(ctx, reg, multiplayer.Config{Backend: b, Logger: log, AllowedOrigins: multiplayer.SplitOrigins(origins),
		AllowedHosts: multiplayer.SplitOrigins(hosts)})
	if err != nil {
		return err
	}
	var closeOnce sync.Once
	closeRT := func() { closeOnce.Do(func() { _ = rt.Close() }) }
	defer closeRT()
	page, _ := fs.Sub(web, "web")
	mux := http.NewServeMux()
	mux.Handle("/", rt.Handler())
	files := http.FileServerFS(page)
	for _, p := range []string{"GET /{$}", "GET /app.js", "GET /rivetkit-client.js"} {
		mux.Handle(p, files)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	info, _ := json.Marshal(map[string]any{"endpoint": "http://" + ln.Addr().String(), "pid": os.Getpid()})
	fmt.Printf("READY %s\n", info)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Actors first (their sessions close), then the listener.
	closeRT()
	_ = srv.Shutdown(sctx)
	return nil
}
