// Command bench measures this server side by side with upstream
// sandbox-agent 0.4.2 and writes the results to BENCHMARKS.md.
//
//	go run ./bench            # or ./bench/run.sh
//	go run ./bench -rounds 5 -out /tmp/BENCHMARKS.md
//
// It installs upstream from npm (@sandbox-agent/cli-linux-x64@0.4.2) into
// bench/.cache, builds ours with CGO_ENABLED=0 -ldflags='-s -w', builds the
// bench ACP agent (bench/agent) and installs it as the mock-acp launcher in
// each server's own HOME, so both servers run the identical agent. Every
// benchmark runs against both servers in alternation (ours, upstream, ours,
// upstream, …); the table reports medians with the min–max spread over
// rounds and the ours/upstream ratio.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type config struct {
	rounds      int
	starts      int
	floodN      int
	idleServers int
	healthN     int
	healthN64   int
	rttN        int
	procN       int
	fsN         int
	fileSize    int
	only        string
	out         string
	cache       string
	timeout     time.Duration
	verbose     bool
	ours        string
	noWrite     bool
	readers     string
	heavy       bool
	batchN      int
	ptyN        int
	bigSize     int64
	bigN        int
	agentStarts int
	agentList   string
	agentsCache string
}

func main() {
	cfg := &config{}
	flag.IntVar(&cfg.rounds, "rounds", 5, "rounds of the load benchmarks per server (alternating ours, upstream)")
	flag.IntVar(&cfg.starts, "starts", 10, "start-to-healthy samples per server (alternating)")
	flag.IntVar(&cfg.floodN, "flood", 100000, "notifications per SSE flood")
	flag.StringVar(&cfg.readers, "readers", "1,10", "SSE reader counts to run")
	flag.IntVar(&cfg.idleServers, "idle", 100, "idle ACP servers for the memory benchmark")
	flag.IntVar(&cfg.healthN, "health-n", 2000, "sequential /v1/health requests (1 client)")
	flag.IntVar(&cfg.healthN64, "health-n64", 12800, "/v1/health requests spread over 64 clients")
	flag.IntVar(&cfg.rttN, "rtt-n", 2000, "ACP request round trips")
	flag.IntVar(&cfg.procN, "proc-n", 200, "process runs (and as many bare fork/execs)")
	flag.IntVar(&cfg.fsN, "fs-n", 50, "file PUT+GET pairs")
	flag.IntVar(&cfg.fileSize, "file-size", 1<<20, "file size for the fs benchmark (upstream caps bodies at 2 MiB)")
	flag.StringVar(&cfg.only, "only", "", "comma list of benchmarks to run: size,start,pipe,health,rtt,ingest,sse,idle,proc,fs,batch,pty,bigfile,agents (default all but the heavy bigfile,agents)")
	flag.BoolVar(&cfg.heavy, "heavy", false, "also run the heavy benchmarks (bigfile: 1 GiB PUT/GET; agents: real agents' first streamed chunk) in a full run")
	flag.IntVar(&cfg.batchN, "batch-n", 10000, "small files in the large upload-batch tar (2,000 always runs: the most that fits upstream's 2 MiB cap)")
	flag.IntVar(&cfg.ptyN, "pty-n", 500, "PTY echo round trips")
	flag.Int64Var(&cfg.bigSize, "big-size", 1<<30, "file size for the bigfile benchmark (ours only)")
	flag.IntVar(&cfg.bigN, "big-n", 3, "bigfile PUT/GET (and cp/cat) samples")
	flag.IntVar(&cfg.agentStarts, "agent-starts", 3, "first-turn samples per real agent and server (alternating)")
	flag.StringVar(&cfg.agentList, "agents", "claude,codex,opencode,pi", "real agents for the agents benchmark")
	flag.StringVar(&cfg.agentsCache, "agents-cache", ".cache/agents", "agents cache filled by scripts/install-test-agents.sh, relative to the module root")
	flag.StringVar(&cfg.out, "out", "BENCHMARKS.md", "markdown file to update (between the bench markers), relative to the module root")
	flag.BoolVar(&cfg.noWrite, "no-write", false, "print the table only; do not update the markdown file")
	flag.StringVar(&cfg.cache, "cache", "bench/.cache", "cache directory (upstream install, builds), relative to the module root")
	flag.StringVar(&cfg.ours, "ours", "", "use this server binary as ours instead of building ./cmd/sandbox-agent (e.g. a profiling build)")
	flag.DurationVar(&cfg.timeout, "timeout", 15*time.Minute, "hard limit for the whole run")
	flag.BoolVar(&cfg.verbose, "v", false, "verbose progress")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	err := run(ctx, cfg)
	stopAll()
	if n := killMarked(runPrefix, true); n > 0 {
		fmt.Fprintf(os.Stderr, "bench: killed %d leftover processes\n", n)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func (c *config) want(name string) bool {
	if c.only == "" {
		return true
	}
	for s := range strings.SplitSeq(c.only, ",") {
		if strings.TrimSpace(s) == name {
			return true
		}
	}
	return false
}

// wantHeavy: heavy benchmarks run when named in -only, or with -heavy.
func (c *config) wantHeavy(name string) bool {
	if c.only == "" {
		return c.heavy
	}
	return c.want(name)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

func run(ctx context.Context, cfg *config) error {
	began := time.Now()
	load0 := loadAvg()
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	if err := os.Chdir(root); err != nil {
		return err
	}
	cache, err := filepath.Abs(cfg.cache)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return err
	}
	arts, err := setup(ctx, cfg, cache)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "sa-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	res := newResults()
	ours := &target{name: "ours", bin: arts.ours}
	up := &target{name: "upstream", bin: arts.upstream}
	targets := []*target{ours, up}

	if cfg.want("size") {
		res.add("ours", "size.stripped", "binary size, stripped", "B", lowerBetter, float64(arts.oursSize))
		if arts.upStripped > 0 {
			res.add("upstream", "size.stripped", "binary size, stripped", "B", lowerBetter, float64(arts.upStripped))
		} else {
			res.missing("upstream", "size.stripped", "binary size, stripped", "B", lowerBetter, "strip(1) not found")
		}
		res.add("ours", "size.shipped", "binary size as shipped (ours: -s -w; upstream: npm package)", "B", lowerBetter, float64(arts.oursSize))
		res.add("upstream", "size.shipped", "binary size as shipped (ours: -s -w; upstream: npm package)", "B", lowerBetter, float64(arts.upSize))
	}

	if cfg.want("start") {
		logf("start-to-healthy and idle RSS: %d samples per server", cfg.starts)
		for i := range cfg.starts {
			for _, t := range targets {
				if err := ctx.Err(); err != nil {
					return err
				}
				in, d, err := startServer(ctx, t, tmp, arts.agent)
				if err != nil {
					return err
				}
				res.add(t.name, "start", "start to first healthy /v1/health", "ms", lowerBetter, ms(d))
				time.Sleep(500 * time.Millisecond)
				if v, err := rssBytes(in.pid); err == nil {
					res.add(t.name, "rss.idle", "idle RSS 0.5 s after healthy (VmRSS)", "B", lowerBetter, v)
				}
				if v, err := statusBytes(in.pid, "RssAnon:"); err == nil {
					res.add(t.name, "rss.anon", "idle RSS, anonymous part (RssAnon: heap, stacks)", "B", lowerBetter, v)
				}
				if v, err := statusBytes(in.pid, "RssFile:"); err == nil {
					res.add(t.name, "rss.file", "idle RSS, file-backed part (RssFile: mapped binary pages)", "B", lowerBetter, v)
				}
				if left := in.stop(); left > 0 {
					res.note("%s: %d processes outlived the server at shutdown (start sample %d)", t.name, left, i)
				}
			}
		}
	}

	if cfg.want("pipe") {
		for range cfg.rounds {
			v, err := rawPipe(arts.agent, cfg.floodN)
			if err != nil {
				return err
			}
			res.add("pipe", "pipe", "raw pipe: agent → pipe → line reader", "msg/s", higherBetter, v)
			v, err = clientCeiling(ctx, cfg.floodN)
			if err != nil {
				return err
			}
			res.add("pipe", "ceiling", "bench SSE client reading a pre-encoded flood (in-process server)", "msg/s", higherBetter, v)
			p50, err := pipeRTT(ctx, arts.agent, cfg.rttN)
			if err != nil {
				return err
			}
			res.add("pipe", "pipertt", "request round trip to the agent over its pipes (no server), p50", "ms", lowerBetter, p50)
		}
	}

	type step struct {
		name string
		fn   func(*bench, context.Context, *instance) error
		keys []string // metrics marked n/a when the step fails
	}
	steps := []step{
		// Idle servers first, on a server that has not served load yet, so
		// the RSS growth per ACP server is not blurred by earlier buffers.
		{"idle", (*bench).idle, nil},
		{"health", (*bench).health, nil},
		{"rtt", (*bench).acpRTT, nil},
		{"ingest", (*bench).ingest, []string{"ingest"}},
	}
	for f := range strings.SplitSeq(cfg.readers, ",") {
		k, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || k < 1 {
			return fmt.Errorf("-readers: bad count %q", f)
		}
		steps = append(steps, step{"sse", func(b *bench, ctx context.Context, in *instance) error { return b.sse(ctx, in, k) }, []string{fmt.Sprintf("sse%d.rate", k)}})
	}
	steps = append(steps, []step{
		{"proc", (*bench).procRun, []string{"proc.run.p50", "proc.run.p99", "proc.overhead"}},
		{"fs", (*bench).fsIO, []string{"fs.put", "fs.get"}},
		{"batch", (*bench).uploadBatch, []string{"batch.2000", fmt.Sprintf("batch.%d", cfg.batchN)}},
		{"pty", (*bench).ptyEcho, []string{"pty.echo.p50", "pty.echo.p99"}},
	}...)
	anyStep := false
	for _, s := range steps {
		anyStep = anyStep || cfg.want(s.name)
	}
	for r := range cfg.rounds {
		if !anyStep {
			break
		}
		for _, t := range targets {
			if err := ctx.Err(); err != nil {
				return err
			}
			logf("round %d/%d: %s", r+1, cfg.rounds, t.name)
			in, _, err := startServer(ctx, t, tmp, arts.agent)
			if err != nil {
				return err
			}
			b := &bench{cfg: cfg, res: res, agentBin: arts.agent, logf: logf}
			for _, s := range steps {
				if !cfg.want(s.name) {
					continue
				}
				if err := ctx.Err(); err != nil {
					in.stop()
					return err
				}
				st := time.Now()
				err := s.fn(b, ctx, in)
				if cfg.verbose {
					logf("  %s %s: %v (%s)", t.name, s.name, err, time.Since(st).Round(time.Millisecond))
				}
				if err != nil {
					why := err.Error()
					if !errors.Is(err, errNotImplemented) {
						res.note("%s round %d, %s: %v", t.name, r+1, s.name, err)
						why = "failed: " + why
					}
					for _, k := range s.keys {
						m := res.metrics[k]
						if m != nil {
							res.missing(t.name, k, m.name, m.unit, m.dir, why)
						} else {
							res.missing(t.name, k, k, "", neutral, why)
						}
					}
					if len(s.keys) == 0 {
						res.note("%s: %s skipped: %s", t.name, s.name, why)
					}
				}
			}
			if left := in.stop(); left > 0 {
				res.note("%s: %d processes outlived the server at shutdown (round %d)", t.name, left, r+1)
			}
		}
	}
	if cfg.wantHeavy("bigfile") {
		logf("bigfile: %d MiB PUT/GET on ours, beside cp and cat", cfg.bigSize>>20)
		if err := bigFile(ctx, cfg, res, ours, tmp, arts.agent); err != nil {
			res.note("bigfile: %v", err)
		}
	}
	if cfg.wantHeavy("agents") {
		logf("agents: %s, %d first turns per server", cfg.agentList, cfg.agentStarts)
		if err := realAgents(ctx, cfg, res, targets, tmp, arts.agent); err != nil {
			res.note("agents: %v", err)
		}
	}
	if n := len(markedPIDs(runPrefix, true)); n > 0 {
		res.note("%d marked processes were still running at the end and were killed", n)
	}
	elapsed := time.Since(began)
	rep := report(cfg, arts, res, elapsed, load0, loadAvg())
	fmt.Println(rep.table)
	if cfg.noWrite || cfg.only != "" {
		logf("not writing %s (-no-write or -only)", cfg.out)
		return nil
	}
	if err := writeMarkdown(cfg.out, rep.markdown); err != nil {
		return err
	}
	logf("wrote %s (%s)", cfg.out, elapsed.Round(time.Second))
	return nil
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run from inside the sandbox-agent module")
	}
	return filepath.Dir(mod), nil
}

// loadAvg is the first three fields of /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
