// Command mpserver serves compatactors on the Go multiplayer runtime, the
// counterpart of multiplayer/compat/rivet-server.mjs, for the compat
// scripts and bench/multiplayer:
//
//	go run ./multiplayer/internal/compatactors/mpserver -listen 127.0.0.1:6420
//
// It prints READY {"endpoint":…,"pid":…} once it listens.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/multiplayer"
	"github.com/sandbox-agent-go/sandbox-agent/multiplayer/internal/compatactors"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:6420", "address")
	dataDir := flag.String("data-dir", "", "data directory (default: a fresh temp dir)")
	natsURL := flag.String("nats", "", "NATS URL (empty: the local SQLite backend)")
	benchSleep := flag.Duration("bench-sleep", 10*time.Minute, "bench actors' idle sleep")
	sleepySleep := flag.Duration("sleepy-sleep", time.Second, "sleepy actors' idle sleep")
	origins := flag.String("allow-origin", "", "comma-separated extra browser origins (* for any)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *dataDir == "" {
		d, err := os.MkdirTemp("", "mpserver-")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(d)
		*dataDir = d
	}
	b, err := multiplayer.OpenBackend(ctx, multiplayer.BackendConfig{DataDir: *dataDir, NATSURL: *natsURL})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	reg := multiplayer.NewRegistry()
	compatactors.Register(reg, compatactors.Options{BenchSleep: *benchSleep, SleepySleep: *sleepySleep})
	rt, err := multiplayer.Open(ctx, reg, multiplayer.Config{Backend: b, AllowedOrigins: multiplayer.SplitOrigins(*origins),
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		log.Fatal(err)
	}
	defer rt.Close()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: rt.Handler(), ReadHeaderTimeout: 10 * time.Second}
	ready, _ := json.Marshal(map[string]any{"endpoint": "http://" + ln.Addr().String(), "pid": os.Getpid()})
	fmt.Printf("READY %s\n", ready)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}
