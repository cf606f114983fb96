package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/bench/internal/stats"
)

// percentile returns the p-th percentile (0..100) of ds by nearest rank
// (0 for none).
func percentile(ds []time.Duration, p float64) time.Duration {
	v, _ := stats.Percentile(ds, p)
	return v
}

// medianF is the median of xs (mean of the middle two for an even count).
func medianF(xs []float64) float64 { return stats.Median(xs) }

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// vmRSS reads VmRSS (kB) of one process from /proc/PID/status.
func vmRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("rss of pid %d: %w", pid, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			fields := strings.Fields(v)
			if len(fields) < 1 {
				break
			}
			kb, err := strconv.ParseInt(fields[0], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("rss of pid %d: %q: %w", pid, line, err)
			}
			return kb, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("rss of pid %d: %w", pid, err)
	}
	return 0, fmt.Errorf("rss of pid %d: no VmRSS line", pid)
}

// totalRSS sums VmRSS over pids: rivetkit's server is two processes (the
// node process hosting the actors and the engine holding the sockets), ours
// is one.
func totalRSS(pids []int) (int64, error) {
	var sum int64
	for _, p := range pids {
		kb, err := vmRSS(p)
		if err != nil {
			return 0, err
		}
		sum += kb
	}
	return sum, nil
}

// parsePIDs parses "123,456".
func parsePIDs(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("pid %q: not a positive integer", f)
		}
		out = append(out, n)
	}
	return out, nil
}
