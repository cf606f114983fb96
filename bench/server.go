package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/sandbox-agent-go/sandbox-agent/internal/serverprobe"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// target is one server under test.
type target struct {
	name string // "ours" or "upstream"
	bin  string
}

// instance is one running server with its own HOME, data dir and launcher.
type instance struct {
	t       *target
	cmd     *exec.Cmd
	pid     int
	addr    string
	base    string
	home    string
	marker  string
	logPath string
	exited  chan struct{}
	stopped bool
}

// runPrefix tags every process this run starts, through an environment
// variable agents inherit, so none can be left behind unnoticed.
var runPrefix = fmt.Sprintf("sabench-%d-", os.Getpid())

const markerVar = "SA_BENCH_MARK"

var (
	liveMu sync.Mutex
	live   = map[*instance]struct{}{}
)

// launcherScript is the mock-acp launcher both servers run: it execs the
// bench agent, so no shell stays between the server and the agent.
func launcherScript(agentBin string) []byte {
	return []byte("#!/bin/sh\nexec '" + strings.ReplaceAll(agentBin, "'", `'\''`) + "' \"$@\"\n")
}

var seqMu sync.Mutex
var seqN int

func nextSeq() int {
	seqMu.Lock()
	defer seqMu.Unlock()
	seqN++
	return seqN
}

// startServer launches t in a fresh HOME and returns once /v1/health
// answers 200 {"status":"ok"}; the duration is exec to first healthy.
func startServer(ctx context.Context, t *target, tmp, agentBin string) (*instance, time.Duration, error) {
	return startServerWith(ctx, t, tmp, agentBin, nil)
}

// startServerWith is startServer with a hook that prepares the fresh HOME
// first and returns extra environment for the server (and so its agents).
func startServerWith(ctx context.Context, t *target, tmp, agentBin string, prep func(home string) ([]string, error)) (*instance, time.Duration, error) {
	seq := nextSeq()
	home := filepath.Join(tmp, fmt.Sprintf("%s-%03d", t.name, seq))
	launcher := filepath.Join(home, ".local", "share", "sandbox-agent", "bin", "agent_processes", "mock-acp")
	if err := os.MkdirAll(filepath.Dir(launcher), 0o755); err != nil {
		return nil, 0, err
	}
	if err := os.WriteFile(launcher, launcherScript(agentBin), 0o755); err != nil {
		return nil, 0, err
	}
	var extraEnv []string
	if prep != nil {
		e, perr := prep(home)
		if perr != nil {
			return nil, 0, perr
		}
		extraEnv = e
	}
	port, err := serverprobe.FreePort("127.0.0.1")
	if err != nil {
		return nil, 0, err
	}
	in := &instance{
		t: t, home: home, marker: runPrefix + strconv.Itoa(seq),
		addr:    "127.0.0.1:" + strconv.Itoa(port),
		logPath: filepath.Join(tmp, fmt.Sprintf("%s-%03d.log", t.name, seq)),
		exited:  make(chan struct{}),
	}
	in.base = "http://" + in.addr
	logf, err := os.Create(in.logPath)
	if err != nil {
		return nil, 0, err
	}
	defer logf.Close()
	cmd := exec.Command(t.bin, "server", "--no-token", "--no-telemetry", "--host", "127.0.0.1", "--port", strconv.Itoa(port))
	cmd.Dir = home
	// A minimal, identical environment: the data dir is derived from HOME
	// by both servers (<HOME>/.local/share/sandbox-agent).
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"LANG=C.UTF-8",
		"SANDBOX_AGENT_LOG_STDOUT=1",
		markerVar + "=" + in.marker,
	}
	cmd.Env = append(cmd.Env, extraEnv...)
	// Profiling switches for bench/pprofserver pass through.
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "SA_BENCH_") && !strings.HasPrefix(kv, markerVar+"=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	// Pdeathsig: the server dies with the bench even if the bench is killed;
	// agents then see EOF on stdin and exit too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	poll := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Second}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, 0, err
	}
	in.cmd, in.pid = cmd, cmd.Process.Pid
	liveMu.Lock()
	live[in] = struct{}{}
	liveMu.Unlock()
	go func() { _ = cmd.Wait(); close(in.exited) }()
	deadline := t0.Add(15 * time.Second)
	for {
		resp, err := poll.Get(in.base + "/v1/health")
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == 200 && bytes.Contains(body, []byte(`"ok"`)) {
				break
			}
		}
		select {
		case <-in.exited:
			in.stop()
			return nil, 0, fmt.Errorf("%s exited during start (log %s)", t.name, in.logPath)
		case <-ctx.Done():
			in.stop()
			return nil, 0, ctx.Err()
		default:
		}
		if time.Now().After(deadline) {
			in.stop()
			return nil, 0, fmt.Errorf("%s not healthy after 15 s (log %s)", t.name, in.logPath)
		}
		time.Sleep(50 * time.Microsecond)
	}
	return in, time.Since(t0), nil
}

// stop ends the server's process group, then every process still carrying
// its marker (agents in their own groups included). It returns how many
// marked processes outlived the server.
func (in *instance) stop() int {
	if in.stopped {
		return 0
	}
	in.stopped = true
	_ = syscall.Kill(-in.pid, syscall.SIGTERM)
	select {
	case <-in.exited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-in.pid, syscall.SIGKILL)
		<-in.exited
	}
	_ = syscall.Kill(-in.pid, syscall.SIGKILL)
	left := killMarked(in.marker, false)
	liveMu.Lock()
	delete(live, in)
	liveMu.Unlock()
	return left
}

// stopAll stops every server still running (interrupt, failure).
func stopAll() {
	liveMu.Lock()
	all := make([]*instance, 0, len(live))
	for in := range live {
		all = append(all, in)
	}
	liveMu.Unlock()
	for _, in := range all {
		in.stop()
	}
}

// killMarked SIGKILLs every live process whose environment carries the
// marker (prefix match when prefix is true) and waits until they are gone.
func killMarked(marker string, prefix bool) int {
	pids := markedPIDs(marker, prefix)
	for _, p := range pids {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) && len(markedPIDs(marker, prefix)) > 0 {
		time.Sleep(10 * time.Millisecond)
	}
	return len(pids)
}

// markedPIDs lists live (non-zombie) processes whose environment has
// markerVar=marker, or a value starting with marker when prefix is set.
func markedPIDs(marker string, prefix bool) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	want := []byte(markerVar + "=" + marker)
	self := os.Getpid()
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil || len(env) == 0 {
			continue
		}
		for kv := range bytes.SplitSeq(env, []byte{0}) {
			if bytes.Equal(kv, want) || (prefix && bytes.HasPrefix(kv, want)) {
				if !isZombie(pid) {
					out = append(out, pid)
				}
				break
			}
		}
	}
	return out
}

func isZombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true // gone
	}
	// state is the field after the parenthesised command name.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	return b[i+2] == 'Z' || b[i+2] == 'X'
}

// agentPIDs are the marked processes other than the server itself.
func (in *instance) agentPIDs() []int {
	var out []int
	for _, p := range markedPIDs(in.marker, false) {
		if p != in.pid {
			out = append(out, p)
		}
	}
	return out
}

// rssBytes reads VmRSS of pid from /proc/<pid>/status.
func rssBytes(pid int) (float64, error) { return statusBytes(pid, "VmRSS:") }

// statusBytes reads a kB field (VmRSS:, RssAnon:, RssFile:) of
// /proc/<pid>/status in bytes.
func statusBytes(pid int, field string) (float64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, err := strconv.ParseFloat(f[0], 64)
				return kb * 1024, err
			}
		}
	}
	return 0, errors.New("no " + field + " in /proc/<pid>/status")
}

func alive(pids []int) int {
	n := 0
	for _, p := range pids {
		if !isZombie(p) {
			n++
		}
	}
	return n
}

// sysCalls reads the read(2)-like and write(2)-like syscall counts of pid
// (all threads) from /proc/<pid>/io.
func sysCalls(pid int) (reads, writes float64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/io")
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
		switch k {
		case "syscr":
			reads = n
		case "syscw":
			writes = n
		}
	}
	return reads, writes, nil
}

// cpuTime is the CPU time pid's live threads have used, from
// /proc/<pid>/task/*/schedstat (nanoseconds, unlike the 10 ms ticks of
// /proc/<pid>/stat).
func cpuTime(pid int) (time.Duration, error) {
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, e := range ents {
		b, err := os.ReadFile(dir + "/" + e.Name() + "/schedstat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) > 0 {
			n, _ := strconv.ParseInt(f[0], 10, 64)
			total += n
		}
	}
	return time.Duration(total), nil
}

// cpuMeter measures a server's CPU time over a section.
type cpuMeter struct {
	pid   int
	start time.Duration
	ok    bool
}

func meterCPU(pid int) cpuMeter {
	d, err := cpuTime(pid)
	return cpuMeter{pid: pid, start: d, ok: err == nil}
}

// per returns the CPU microseconds used per unit since the meter started.
func (m cpuMeter) per(units int) (float64, bool) {
	d, err := cpuTime(m.pid)
	if !m.ok || err != nil || units <= 0 {
		return 0, false
	}
	return float64(d-m.start) / float64(time.Microsecond) / float64(units), true
}
