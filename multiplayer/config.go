package multiplayer

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/multiplayer/backend"
	natsbackend "github.com/sandbox-agent-go/sandbox-agent/multiplayer/backend/nats"
	"github.com/sandbox-agent-go/sandbox-agent/multiplayer/backend/sqlite"
)

// BackendConfig chooses a backend as data: the same application runs on
// one machine or many by configuration alone.
type BackendConfig struct {
	// NATSURL (comma-separated URLs) selects the nats backend; empty: the
	// local SQLite backend in DataDir.
	NATSURL string
	// DataDir of the local backend (locked: one process at a time).
	DataDir string
	// NodeID of this node on NATS (default random).
	NodeID string
	// Replicas of the NATS buckets and streams (default 1; 3 in a
	// production cluster).
	Replicas int
	// LeaseTTL on NATS: the failover time after a crash (default 10 s).
	LeaseTTL time.Duration
	// Logger of the backend; default slog.Default().
	Logger *slog.Logger
}

// BackendConfigFromEnv reads SANDBOX_AGENT_MP_NATS_URL,
// SANDBOX_AGENT_MP_DATA_DIR and SANDBOX_AGENT_MP_NODE_ID.
func BackendConfigFromEnv() BackendConfig {
	return BackendConfig{NATSURL: os.Getenv("SANDBOX_AGENT_MP_NATS_URL"), DataDir: os.Getenv("SANDBOX_AGENT_MP_DATA_DIR"),
		NodeID: os.Getenv("SANDBOX_AGENT_MP_NODE_ID")}
}

// OpenBackend opens the backend that c names.
func OpenBackend(ctx context.Context, c BackendConfig) (backend.Backend, error) {
	if c.NATSURL != "" {
		return natsbackend.Open(ctx, natsbackend.Options{URLs: strings.Split(c.NATSURL, ","), NodeID: c.NodeID,
			Replicas: c.Replicas, LeaseTTL: c.LeaseTTL, Logger: c.Logger})
	}
	if c.DataDir == "" {
		return nil, errors.New("multiplayer: the local backend needs a data directory")
	}
	return sqlite.Open(ctx, sqlite.Options{Dir: c.DataDir, Logger: c.Logger})
}

// SplitOrigins parses a comma-separated origin list (a flag's value).
func SplitOrigins(s string) []string {
	var out []string
	for o := range strings.SplitSeq(s, ",") {
		if o = strings.TrimSpace(o); o != "" {
			out = append(out, o)
		}
	}
	return out
}
