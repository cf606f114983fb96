// Command pprofserver is our server with profiling hooks, for finding out
// where a benchmark's time goes. It takes the same arguments the bench
// passes (server --no-token --no-telemetry --host H --port P) and builds the
// server through internal/app exactly as the CLI does.
//
//	go build -o bench/.cache/ours-pprof ./bench/pprofserver
//	SA_BENCH_CPUPROFILE=/tmp/cpu.prof go run ./bench -ours bench/.cache/ours-pprof -only sse -rounds 1 -starts 0
//	go tool pprof -top bench/.cache/ours-pprof /tmp/cpu.prof.<pid>
//
// Environment (forwarded by the bench): SA_BENCH_CPUPROFILE and
// SA_BENCH_MEMPROFILE write profiles to <path>.<pid> at shutdown;
// SA_BENCH_PPROF_ADDR serves net/http/pprof there; SA_BENCH_KILLGRACE sets
// the agent kill grace of DELETE.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strconv"
	"syscall"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/internal/app"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "pprofserver:", err)
		os.Exit(1)
	}
}

func run() error {
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "server" {
		args = args[1:]
	}
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	host := fs.String("host", "127.0.0.1", "")
	port := fs.Int("port", 2468, "")
	fs.Bool("no-token", false, "")
	fs.Bool("no-telemetry", false, "")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	cfg := app.Config{Version: "bench-pprof", Logger: log}
	// SA_BENCH_KILLGRACE (a Go duration) overrides the SIGTERM→SIGKILL
	// grace of DELETE, for experiments on its latency.
	if v := os.Getenv("SA_BENCH_KILLGRACE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("SA_BENCH_KILLGRACE: %w", err)
		}
		cfg.ACP.KillGrace = d
	}
	a, err := app.New(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(*host, strconv.Itoa(*port)))
	if err != nil {
		return err
	}
	if addr := os.Getenv("SA_BENCH_PPROF_ADDR"); addr != "" {
		go func() { _ = http.ListenAndServe(addr, nil) }()
	}
	suffix := "." + strconv.Itoa(os.Getpid())
	if p := os.Getenv("SA_BENCH_CPUPROFILE"); p != "" {
		f, err := os.Create(p + suffix)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	if p := os.Getenv("SA_BENCH_MEMPROFILE"); p != "" {
		runtime.MemProfileRate = 4096
		defer func() {
			f, err := os.Create(p + suffix)
			if err == nil {
				_ = pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
		}()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return a.Serve(ctx, ln)
}
