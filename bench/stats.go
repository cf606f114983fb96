package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/bench/internal/stats"
)

// percentile returns the p-th percentile (0..100) of xs by nearest rank
// (NaN for none).
func percentile(xs []float64, p float64) float64 {
	v, ok := stats.Percentile(xs, p)
	if !ok {
		return math.NaN()
	}
	return v
}

// median interpolates between the two middle values of an even count.
func median(xs []float64) float64 { return stats.Median(xs) }

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// durationsMs converts samples to milliseconds.
func durationsMs(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = ms(d)
	}
	return out
}

// Direction says which way a metric improves.
type direction int

const (
	lowerBetter direction = iota
	higherBetter
	neutral
)

// metric is one row of the results table: one value per round (or sample)
// for each server, or the reason it could not be measured.
type metric struct {
	key  string
	name string
	unit string
	dir  direction
	vals map[string][]float64
	na   map[string]string
}

// results collects every metric of a run, in first-recorded order.
type results struct {
	mu      sync.Mutex
	order   []string
	metrics map[string]*metric
	notes   []string
}

func newResults() *results { return &results{metrics: map[string]*metric{}} }

func (r *results) get(key, name, unit string, dir direction) *metric {
	m, ok := r.metrics[key]
	if !ok {
		m = &metric{key: key, name: name, unit: unit, dir: dir, vals: map[string][]float64{}, na: map[string]string{}}
		r.metrics[key] = m
		r.order = append(r.order, key)
	}
	return m
}

// add records one value of metric key for server.
func (r *results) add(server, key, name, unit string, dir direction, v float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.get(key, name, unit, dir)
	// A metric first seen as n/a may carry a placeholder name and unit.
	m.name, m.unit, m.dir = name, unit, dir
	m.vals[server] = append(m.vals[server], v)
}

// missing marks metric key as not measurable for server.
func (r *results) missing(server, key, name, unit string, dir direction, why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.get(key, name, unit, dir)
	if _, ok := m.na[server]; !ok {
		m.na[server] = why
	}
}

func (r *results) note(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := fmt.Sprintf(format, args...)
	if !slices.Contains(r.notes, s) {
		r.notes = append(r.notes, s)
	}
}

// summary is median and spread of a metric for one server.
type summary struct {
	ok            bool
	med, lo, hi   float64
	n             int
	notAvailable  string
	hasValueAndNA bool
}

func (m *metric) summary(server string) summary {
	vs := m.vals[server]
	if len(vs) == 0 {
		why := m.na[server]
		if why == "" {
			why = "not measured"
		}
		return summary{notAvailable: why}
	}
	return summary{ok: true, med: median(vs), lo: slices.Min(vs), hi: slices.Max(vs), n: len(vs), hasValueAndNA: m.na[server] != ""}
}

// ratio is ours/upstream of the medians.
func (m *metric) ratio() (float64, bool) {
	a, b := m.summary("ours"), m.summary("upstream")
	if !a.ok || !b.ok || b.med == 0 {
		return 0, false
	}
	return a.med / b.med, true
}

// format renders a value in the metric's unit.
func format(v float64, unit string) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	switch unit {
	case "msg/s", "req/s", "files/s":
		switch {
		case v >= 1e6:
			return fmt.Sprintf("%.2fM", v/1e6)
		case v >= 1e3:
			return fmt.Sprintf("%.1fk", v/1e3)
		}
		return fmt.Sprintf("%.0f", v)
	case "%":
		return fmt.Sprintf("%.2f %%", v)
	case "count", "":
		if v != math.Trunc(v) {
			return trimFloat(v)
		}
		return fmt.Sprintf("%.0f", v)
	case "µs":
		return trimFloat(v) + " µs"
	case "B":
		return fmt.Sprintf("%.2f MiB", v/(1<<20))
	}
	return trimFloat(v) + " " + unit
}

// trimFloat prints three significant digits without exponent notation.
func trimFloat(v float64) string {
	a := math.Abs(v)
	switch {
	case a == 0:
		return "0"
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	case a >= 0.1:
		return fmt.Sprintf("%.3f", v)
	}
	return fmt.Sprintf("%.4f", v)
}

func (s summary) String(unit string) string {
	if !s.ok {
		return "n/a (" + s.notAvailable + ")"
	}
	if s.n == 1 || s.lo == s.hi {
		return format(s.med, unit)
	}
	// Spread is min–max over rounds; the unit is written once, at the end.
	lo, hi := format(s.lo, unit), format(s.hi, unit)
	if sp := strings.LastIndexByte(lo, ' '); sp > 0 && strings.HasSuffix(hi, lo[sp:]) {
		lo = lo[:sp]
	}
	return fmt.Sprintf("%s [%s–%s]", format(s.med, unit), lo, hi)
}
