// Package acpproxy runs ACP agents behind HTTP: one agent process per
// client-chosen server id, JSON-RPC requests POSTed in and answered inline,
// and everything the agent writes streamed out over SSE with numeric ids,
// replay and resume. Lines are forwarded as the agent wrote them, never
// decoded and re-encoded, so ids and unknown fields pass through exactly.
package acpproxy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"slices"
	"sync"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/internal/problem"
)

// Launcher resolves an agent id to the command that runs its ACP process
// (installing it first when allowed). Errors should be *problem.Problem.
// The command must not be bound to ctx: the agent outlives the request.
type Launcher interface {
	Known(agent string) bool
	Command(ctx context.Context, agent string) (*exec.Cmd, error)
}

// Options configure the proxy. Zero values take the defaults.
type Options struct {
	Launcher Launcher
	Logger   *slog.Logger
	// RequestTimeout bounds a POSTed request waiting for its response
	// (default 5 min; upstream deadlocks instead of answering 504).
	RequestTimeout time.Duration
	// ReplayBuffer is how many messages a new reader can replay (1024).
	ReplayBuffer int
	// ReplayMaxBytes bounds the replay ring's memory (64 MiB).
	ReplayMaxBytes int
	// Heartbeat is the SSE keep-alive interval (15 s).
	Heartbeat time.Duration
	// SlowReaderTimeout is how long the agent's output may wait for a live
	// reader that has fallen a whole ring behind before that reader is cut
	// off (10 s).
	SlowReaderTimeout time.Duration
	// KillGrace is how long DELETE waits after SIGTERM before SIGKILL (50 ms).
	KillGrace time.Duration
	// MaxLineBytes bounds one stdout line (64 MiB); longer lines become
	// _adapter/invalid_stdout.
	MaxLineBytes int
	// StderrTailBytes is the stderr kept for error details (64 KiB).
	StderrTailBytes int
	// StderrLogBytes bounds how much stderr is copied to the log (1 MiB).
	StderrLogBytes int
	// MaxServers caps live ACP servers (agent processes) (256); a new
	// server id past it gets 503 too_many_servers.
	MaxServers int
	// MaxQueuedBytes bounds one agent's stdin queue: lines accepted while
	// the agent is not reading (64 MiB). Past it a message is refused (503
	// agent_input_full), never silently dropped.
	MaxQueuedBytes int
}

func (o *Options) defaults() {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	setDefault(&o.RequestTimeout, 5*time.Minute)
	setDefault(&o.ReplayBuffer, 1024)
	setDefault(&o.ReplayMaxBytes, 64<<20)
	setDefault(&o.Heartbeat, 15*time.Second)
	setDefault(&o.SlowReaderTimeout, 10*time.Second)
	setDefault(&o.KillGrace, 50*time.Millisecond)
	setDefault(&o.MaxLineBytes, 64<<20)
	setDefault(&o.StderrTailBytes, 64<<10)
	setDefault(&o.StderrLogBytes, 1<<20)
	setDefault(&o.MaxServers, 256)
	setDefault(&o.MaxQueuedBytes, 64<<20)
}

func setDefault[T cmp.Ordered](v *T, d T) {
	var zero T
	if *v <= zero {
		*v = d
	}
}

// Registry owns every ACP server of this process.
type Registry struct {
	opts    Options
	mu      sync.Mutex
	servers map[string]*slot
	closed  bool
}

// slot lets concurrent first POSTs to one id share a single start.
type slot struct {
	agent string
	ready chan struct{}
	inst  *Instance
	err   error
}

// New returns an empty registry.
func New(opts Options) *Registry {
	opts.defaults()
	return &Registry{opts: opts, servers: map[string]*slot{}}
}

// ServerInfo is one entry of GET /v1/acp.
type ServerInfo struct {
	ServerID    string `json:"serverId"`
	Agent       string `json:"agent"`
	CreatedAtMs int64  `json:"createdAtMs"`
}

// List returns the running servers sorted by id (byte order).
func (r *Registry) List() []ServerInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]ServerInfo, 0, len(r.servers))
	for id, s := range r.servers {
		select {
		case <-s.ready:
			if s.inst != nil {
				out = append(out, ServerInfo{ServerID: id, Agent: s.agent, CreatedAtMs: s.inst.createdAt.UnixMilli()})
			}
		default:
		}
	}
	slices.SortFunc(out, func(a, b ServerInfo) int { return cmp.Compare(a.ServerID, b.ServerID) })
	return out
}

// Get returns a running server.
func (r *Registry) Get(id string) (*Instance, bool) {
	r.mu.Lock()
	s, ok := r.servers[id]
	r.mu.Unlock()
	if !ok {
		return nil, false
	}
	<-s.ready
	return s.inst, s.inst != nil
}

// Resolve returns the server for id, creating it for agent when absent.
// agent == "" means the caller gave no agent.
func (r *Registry) Resolve(ctx context.Context, id, agent string) (*Instance, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, problem.ShuttingDown()
	}
	s, ok := r.servers[id]
	if ok {
		r.mu.Unlock()
		<-s.ready
		if s.err != nil {
			return nil, s.err
		}
		if agent != "" && agent != s.agent {
			return nil, problem.ConflictMsg(fmt.Sprintf("server '%s' already exists for agent '%s'; requested '%s'", id, s.agent, agent))
		}
		return s.inst, nil
	}
	if agent == "" {
		r.mu.Unlock()
		return nil, problem.Invalid("missing required 'agent' query parameter for first POST to /v1/acp/" + id)
	}
	if len(r.servers) >= r.opts.MaxServers {
		r.mu.Unlock()
		return nil, problem.TooMany(r.opts.MaxServers)
	}
	s = &slot{agent: agent, ready: make(chan struct{})}
	r.servers[id] = s
	r.mu.Unlock()

	s.inst, s.err = r.spawn(ctx, id, agent)
	if s.err != nil {
		r.mu.Lock()
		if r.servers[id] == s {
			delete(r.servers, id)
		}
		r.mu.Unlock()
	}
	close(s.ready)
	return s.inst, s.err
}

func (r *Registry) spawn(ctx context.Context, id, agent string) (*Instance, error) {
	cmd, err := r.opts.Launcher.Command(ctx, agent)
	if err != nil {
		var p *problem.Problem
		if errors.As(err, &p) {
			return nil, err
		}
		return nil, problem.Stream("failed to start agent process: " + err.Error())
	}
	inst, err := start(id, agent, cmd, &r.opts)
	if err != nil {
		return nil, problem.Stream("failed to start agent process: " + err.Error())
	}
	return inst, nil
}

// Delete removes id from the registry at once and stops its process.
// It returns when the process group is gone (bounded by ctx).
func (r *Registry) Delete(ctx context.Context, id string) {
	r.mu.Lock()
	s, ok := r.servers[id]
	if ok {
		delete(r.servers, id)
	}
	r.mu.Unlock()
	if !ok {
		return
	}
	<-s.ready
	if s.inst != nil {
		s.inst.close(ctx)
	}
}

// Close stops every server (server shutdown).
func (r *Registry) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	all := make([]*slot, 0, len(r.servers))
	for id, s := range r.servers {
		all = append(all, s)
		delete(r.servers, id)
	}
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range all {
		wg.Go(func() {
			<-s.ready
			if s.inst != nil {
				s.inst.close(ctx)
			}
		})
	}
	wg.Wait()
	return nil
}
