package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// bench runs the measurements of one round against one server.
type bench struct {
	cfg      *config
	res      *results
	agentBin string
	logf     func(format string, args ...any)
}

func newClient(conns int, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			MaxIdleConns:        conns * 2,
			MaxIdleConnsPerHost: conns * 2,
			IdleConnTimeout:     30 * time.Second,
			DisableCompression:  true,
		},
	}
}

func closeClient(c *http.Client) { c.CloseIdleConnections() }

// do sends one request and returns status and body.
func do(ctx context.Context, c *http.Client, method, u string, body []byte, hdr ...string) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, nil, err
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func acpURL(in *instance, server string, create bool) string {
	u := in.base + "/v1/acp/" + url.PathEscape(server)
	if create {
		u += "?agent=mock"
	}
	return u
}

func acpPost(ctx context.Context, c *http.Client, in *instance, server string, create bool, body []byte) (int, []byte, error) {
	return do(ctx, c, http.MethodPost, acpURL(in, server, create), body, "Content-Type", "application/json", "Accept", "application/json")
}

const initBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"clientCapabilities":{},"protocolVersion":1}}`

// createACP starts ACP server id with the bench agent behind it.
func createACP(ctx context.Context, c *http.Client, in *instance, id string) (time.Duration, error) {
	t0 := time.Now()
	st, body, err := acpPost(ctx, c, in, id, true, []byte(initBody))
	d := time.Since(t0)
	if err != nil {
		return d, err
	}
	if st != http.StatusOK || !bytes.Contains(body, []byte(`"protocolVersion":1`)) {
		return d, fmt.Errorf("create %s: %d %s", id, st, trunc(body))
	}
	return d, nil
}

// dropACP deletes an ACP server without measuring; upstream never answers
// while the agent lives, so the short timeout is what ends its agent.
func dropACP(in *instance, id string) {
	agents := in.agentPIDs()
	c := &http.Client{Timeout: 300 * time.Millisecond}
	_, _, _ = do(context.Background(), c, http.MethodDelete, acpURL(in, id, false), nil, "Accept", "application/json")
	deadline := time.Now().Add(3 * time.Second)
	for alive(agents) > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
}

func isTimeout(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) && ne.Timeout()
}

func trunc(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

// latencies records p50 and p99 of samples under key prefix.
func (b *bench) latencies(server, key, name string, samples []time.Duration) {
	xs := durationsMs(samples)
	b.res.add(server, key+".p50", name+" p50", "ms", lowerBetter, percentile(xs, 50))
	b.res.add(server, key+".p99", name+" p99", "ms", lowerBetter, percentile(xs, 99))
}

// health: GET /v1/health latency with 1 and 64 keep-alive clients.
func (b *bench) health(ctx context.Context, in *instance) error {
	name := in.t.name
	c := newClient(1, 5*time.Second)
	defer closeClient(c)
	u := in.base + "/v1/health"
	n := b.cfg.healthN
	lat := make([]time.Duration, 0, n)
	var t0 time.Time
	var cm cpuMeter
	for i := range n + n/10 {
		if i == n/10 {
			t0 = time.Now()
			cm = meterCPU(in.pid)
		}
		s := time.Now()
		st, _, err := do(ctx, c, http.MethodGet, u, nil)
		if err != nil || st != 200 {
			return fmt.Errorf("health: %d %v", st, err)
		}
		if i >= n/10 {
			lat = append(lat, time.Since(s))
		}
	}
	b.latencies(name, "health1", "/v1/health, 1 client", lat)
	if v, ok := cm.per(n); ok {
		b.res.add(name, "health1.cpu", "/v1/health: server CPU per request", "µs", lowerBetter, v)
	}
	b.res.add(name, "health1.rps", "/v1/health, 1 client throughput", "req/s", higherBetter, float64(n)/time.Since(t0).Seconds())

	const conc = 64
	per := max(1, b.cfg.healthN64/conc)
	c64 := newClient(conc, 10*time.Second)
	defer closeClient(c64)
	var wg sync.WaitGroup
	var errs atomic.Int64
	all := make([][]time.Duration, conc)
	start := make(chan struct{})
	for w := range conc {
		wg.Go(func() {
			// Warm one connection per worker before the clock starts.
			if st, _, err := do(ctx, c64, http.MethodGet, u, nil); err != nil || st != 200 {
				errs.Add(1)
			}
			<-start
			l := make([]time.Duration, 0, per)
			for range per {
				s := time.Now()
				st, _, err := do(ctx, c64, http.MethodGet, u, nil)
				if err != nil || st != 200 {
					errs.Add(1)
					continue
				}
				l = append(l, time.Since(s))
			}
			all[w] = l
		})
	}
	time.Sleep(50 * time.Millisecond)
	t0 = time.Now()
	close(start)
	wg.Wait()
	wall := time.Since(t0)
	if errs.Load() > 0 {
		return fmt.Errorf("health x64: %d failed requests", errs.Load())
	}
	lat = slices.Concat(all...)
	b.latencies(name, "health64", "/v1/health, 64 clients", lat)
	b.res.add(name, "health64.rps", "/v1/health, 64 clients throughput", "req/s", higherBetter, float64(len(lat))/wall.Seconds())
	return nil
}

// acpRTT: POSTed request → agent → inline response, one client, then a
// DELETE of that server with its agent alive.
func (b *bench) acpRTT(ctx context.Context, in *instance) error {
	name := in.t.name
	c := newClient(1, 10*time.Second)
	defer closeClient(c)
	const id = "rtt"
	d, err := createACP(ctx, c, in, id)
	if err != nil {
		return err
	}
	b.res.add(name, "acp.create", "ACP server create (first POST, spawns agent)", "ms", lowerBetter, ms(d))
	n := b.cfg.rttN
	lat := make([]time.Duration, 0, n)
	body := make([]byte, 0, 128)
	var cm cpuMeter
	for i := range n + n/10 {
		if i == n/10 {
			cm = meterCPU(in.pid)
		}
		reqID := i + 2
		body = fmt.Appendf(body[:0], `{"jsonrpc":"2.0","id":%d,"method":"bench/echo","params":{"i":%d}}`, reqID, i)
		s := time.Now()
		st, resp, err := acpPost(ctx, c, in, id, false, body)
		el := time.Since(s)
		if err != nil || st != 200 || !bytes.HasPrefix(resp, fmt.Appendf(nil, `{"id":%d,`, reqID)) {
			return fmt.Errorf("acp request %d: %d %v %s", reqID, st, err, trunc(resp))
		}
		if i >= n/10 {
			lat = append(lat, el)
		}
	}
	b.latencies(name, "acp.rtt", "ACP request round trip", lat)
	if v, ok := cm.per(n); ok {
		b.res.add(name, "acp.rtt.cpu", "ACP round trip: server CPU per request", "µs", lowerBetter, v)
	}

	// DELETE with the agent alive, with the SDK's 2 s client timeout.
	agents := in.agentPIDs()
	if len(agents) != 1 {
		b.res.note("%s: expected 1 agent process before DELETE, found %d", name, len(agents))
	}
	dc := &http.Client{Timeout: 2 * time.Second}
	s := time.Now()
	st, _, err := do(ctx, dc, http.MethodDelete, acpURL(in, id, false), nil, "Accept", "application/json")
	el := time.Since(s)
	aliveNow := alive(agents)
	switch {
	case err == nil && st == http.StatusNoContent:
		b.res.add(name, "acp.delete", "DELETE /v1/acp/{id}, live agent", "ms", lowerBetter, ms(el))
	case isTimeout(err):
		b.res.missing(name, "acp.delete", "DELETE /v1/acp/{id}, live agent", "ms", lowerBetter, "no answer within the 2 s client timeout")
	default:
		b.res.missing(name, "acp.delete", "DELETE /v1/acp/{id}, live agent", "ms", lowerBetter, fmt.Sprintf("status %d, %v", st, err))
	}
	b.res.add(name, "acp.delete.alive", "agent processes alive when DELETE returned (or client gave up)", "count", lowerBetter, float64(aliveNow))
	deadline := time.Now().Add(2 * time.Second)
	for alive(agents) > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	b.res.add(name, "acp.delete.alive2s", "agent processes alive 2 s after DELETE", "count", lowerBetter, float64(alive(agents)))
	return nil
}

// ingest: the agent floods N notifications then answers; nobody reads the
// SSE stream. The POST returns when the server has read the answer, after
// every notification.
func (b *bench) ingest(ctx context.Context, in *instance) error {
	name := in.t.name
	c := newClient(1, 120*time.Second)
	defer closeClient(c)
	const id = "ingest"
	if _, err := createACP(ctx, c, in, id); err != nil {
		return err
	}
	defer dropACP(in, id)
	n := b.cfg.floodN
	r0, _, _ := sysCalls(in.pid)
	cm := meterCPU(in.pid)
	s := time.Now()
	st, resp, err := acpPost(ctx, c, in, id, false, fmt.Appendf(nil, `{"jsonrpc":"2.0","id":"flood-0","method":"flood","params":{"n":%d}}`, n))
	d := time.Since(s)
	if err != nil || st != 200 || !bytes.Contains(resp, []byte(`"flooded"`)) {
		return fmt.Errorf("flood: %d %v %s", st, err, trunc(resp))
	}
	if v, ok := cm.per(n); ok {
		b.res.add(name, "ingest.cpu", "ingest: server CPU per notification", "µs", lowerBetter, v)
	}
	if r1, _, err := sysCalls(in.pid); err == nil {
		b.res.add(name, "ingest.reads", "ingest: server read(2) calls per 1000 notifications", "count", neutral, (r1-r0)*1000/float64(n))
	}
	b.res.add(name, "ingest", fmt.Sprintf("agent stdout ingest, %d notifications, no reader", n), "msg/s", higherBetter, float64(n)/d.Seconds())
	return nil
}

var (
	floodPrefix = []byte(`{"jsonrpc":"2.0","method":"session/update","params":{"seq":`)
	floodResp   = []byte(`{"id":"flood-`)
)

// sseReader counts what one SSE client receives of a flood, by SSE id.
type sseReader struct {
	n         int
	ready     chan struct{}
	readyOnce sync.Once
	lastAct   atomic.Int64

	idCount, seqCount []uint8
	base              int64
	baseSet           bool
	flood             int
	outOfRange        int
	nonContig         int
	lastID            uint64
	gotResp           bool
	tLast             time.Time
	err               error
}

func parseUint(b []byte) (uint64, int) {
	var v uint64
	i := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		v = v*10 + uint64(b[i]-'0')
		i++
	}
	return v, i
}

func (r *sseReader) run(ctx context.Context, c *http.Client, u string) {
	defer r.readyOnce.Do(func() { close(r.ready) })
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.Do(req)
	if err != nil {
		r.err = err
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		r.err = fmt.Errorf("sse: status %d", resp.StatusCode)
		return
	}
	br := bufio.NewReaderSize(resp.Body, 1<<20)
	var cur uint64
	var long []byte
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long, line...)
			continue
		}
		if long != nil {
			line = append(long, line...)
			long = nil
		}
		if err != nil {
			if !r.gotResp && ctx.Err() == nil {
				r.err = err
			}
			return
		}
		switch {
		case bytes.HasPrefix(line, []byte("id: ")):
			cur, _ = parseUint(line[4:])
		case bytes.HasPrefix(line, []byte("data: ")):
			data := line[6:]
			if r.lastID != 0 && cur != r.lastID+1 {
				r.nonContig++
			}
			r.lastID = cur
			now := time.Now()
			r.lastAct.Store(now.UnixNano())
			switch {
			case bytes.HasPrefix(data, floodPrefix):
				seq, _ := parseUint(data[len(floodPrefix):])
				r.flood++
				r.tLast = now
				if !r.baseSet {
					r.base, r.baseSet = int64(cur)-int64(seq), true
				}
				if idx := int64(cur) - r.base; idx >= 0 && idx < int64(r.n) {
					r.idCount[idx] = min(r.idCount[idx]+1, 250)
				} else {
					r.outOfRange++
				}
				if seq < uint64(r.n) {
					r.seqCount[seq] = min(r.seqCount[seq]+1, 250)
				}
			case bytes.HasPrefix(data, floodResp):
				r.gotResp = true
				r.tLast = now
				return
			default:
				r.readyOnce.Do(func() { close(r.ready) })
			}
		}
	}
}

// counts returns distinct flood messages by SSE id and by agent seq, and
// duplicates by SSE id.
func (r *sseReader) counts() (distinctID, distinctSeq, dup int) {
	for _, c := range r.idCount {
		if c > 0 {
			distinctID++
			dup += int(c) - 1
		}
	}
	for _, c := range r.seqCount {
		if c > 0 {
			distinctSeq++
		}
	}
	return distinctID, distinctSeq, dup + r.outOfRange
}

// sse: k readers on one ACP server; the agent floods N notifications.
func (b *bench) sse(ctx context.Context, in *instance, k int) error {
	name := in.t.name
	key := fmt.Sprintf("sse%d", k)
	c := newClient(k+1, 0) // streaming: bounded by the context below
	defer closeClient(c)
	id := fmt.Sprintf("sse-%d", k)
	cc := newClient(1, 10*time.Second)
	defer closeClient(cc)
	if _, err := createACP(ctx, cc, in, id); err != nil {
		return err
	}
	defer dropACP(in, id)
	n := b.cfg.floodN
	rctx, cancel := context.WithTimeout(ctx, 120*time.Second)
	defer cancel()
	readers := make([]*sseReader, k)
	var wg sync.WaitGroup
	for i := range readers {
		r := &sseReader{n: n, ready: make(chan struct{}), idCount: make([]uint8, n), seqCount: make([]uint8, n)}
		readers[i] = r
		wg.Go(func() { r.run(rctx, c, acpURL(in, id, false)) })
	}
	for _, r := range readers {
		select {
		case <-r.ready:
		case <-time.After(10 * time.Second):
			return errors.New("sse reader not ready after 10 s")
		}
		if r.err != nil {
			return r.err
		}
	}
	fc := newClient(1, 120*time.Second)
	defer closeClient(fc)
	_, w0, _ := sysCalls(in.pid)
	cm := meterCPU(in.pid)
	var postDone atomic.Bool
	var postErr error
	postCh := make(chan struct{})
	t0 := time.Now()
	go func() {
		defer close(postCh)
		st, resp, err := acpPost(rctx, fc, in, id, false, fmt.Appendf(nil, `{"jsonrpc":"2.0","id":"flood-%d","method":"flood","params":{"n":%d}}`, k, n))
		if err == nil && (st != 200 || !bytes.Contains(resp, []byte(`"flooded"`))) {
			err = fmt.Errorf("flood: %d %s", st, trunc(resp))
		}
		postErr = err
		postDone.Store(true)
	}()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	// Readers end on the flood's response. One that never gets it (a lossy
	// server may drop it too) is stopped after 2 s without data once the
	// POST has returned.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	stalled := false
wait:
	for {
		select {
		case <-done:
			break wait
		case <-rctx.Done():
			break wait
		case <-tick.C:
			if !postDone.Load() {
				continue
			}
			idle := true
			for _, r := range readers {
				if !r.gotResp && time.Since(time.Unix(0, r.lastAct.Load())) < 2*time.Second {
					idle = false
				}
			}
			if idle {
				stalled = true
				break wait
			}
		}
	}
	select {
	case <-postCh:
	case <-time.After(10 * time.Second):
	}
	cancel()
	<-done
	<-postCh
	if postErr != nil {
		return postErr
	}
	_, w1, _ := sysCalls(in.pid)
	var total int
	var end time.Time
	var lostMax, dupMax, ncMax float64
	perReader := make([]float64, 0, k)
	complete := 0
	for _, r := range readers {
		if r.err != nil {
			return fmt.Errorf("sse reader: %w", r.err)
		}
		dID, dSeq, dup := r.counts()
		lost := n - dID
		if ls := n - dSeq; ls != lost {
			b.res.note("%s %s: lost by SSE id %d but by agent seq %d", name, key, lost, ls)
		}
		lostMax = max(lostMax, float64(lost))
		dupMax = max(dupMax, float64(dup))
		ncMax = max(ncMax, float64(r.nonContig))
		total += r.flood
		if r.tLast.After(end) {
			end = r.tLast
		}
		if r.gotResp {
			complete++
		}
		if !r.tLast.IsZero() {
			perReader = append(perReader, float64(r.flood)/r.tLast.Sub(t0).Seconds())
		}
	}
	if stalled && complete < k {
		b.res.note("%s %s: %d of %d readers never received the flood's response (stopped after 2 s without data)", name, key, k-complete, k)
	}
	wall := end.Sub(t0).Seconds()
	label := fmt.Sprintf("SSE delivery, %d notifications, %d reader", n, k)
	if k > 1 {
		label += "s (all readers)"
	}
	b.res.add(name, key+".rate", label, "msg/s", higherBetter, float64(total)/wall)
	if k > 1 {
		b.res.add(name, key+".per", fmt.Sprintf("SSE delivery, %d readers, per reader", k), "msg/s", higherBetter, median(perReader))
	}
	if cpuPer, ok := cm.per(total); ok {
		b.res.add(name, key+".cpu", fmt.Sprintf("SSE %d reader(s): server CPU per delivered message", k), "µs", lowerBetter, cpuPer)
	}
	if total > 0 {
		b.res.add(name, key+".writes", fmt.Sprintf("SSE %d reader(s): server write(2) calls per 1000 delivered messages", k), "count", neutral, (w1-w0)*1000/float64(total))
	}
	b.res.add(name, key+".lost", fmt.Sprintf("SSE %d reader(s): lost, worst reader", k), "%", lowerBetter, 100*lostMax/float64(n))
	b.res.add(name, key+".dup", fmt.Sprintf("SSE %d reader(s): duplicated, worst reader", k), "count", lowerBetter, dupMax)
	b.res.add(name, key+".gaps", fmt.Sprintf("SSE %d reader(s): non-contiguous ids, worst reader", k), "count", lowerBetter, ncMax)
	return nil
}

// idle: memory of many idle ACP servers, then deleting them all.
func (b *bench) idle(ctx context.Context, in *instance) error {
	name := in.t.name
	m := b.cfg.idleServers
	rss0, err := rssBytes(in.pid)
	if err != nil {
		return err
	}
	c := newClient(1, 10*time.Second)
	defer closeClient(c)
	created := make([]time.Duration, 0, m)
	for i := range m {
		d, err := createACP(ctx, c, in, fmt.Sprintf("idle-%03d", i))
		if err != nil {
			return err
		}
		created = append(created, d)
	}
	b.res.add(name, "idle.create.p50", fmt.Sprintf("ACP server create, %d in a row, p50", m), "ms", lowerBetter, percentile(durationsMs(created), 50))
	time.Sleep(time.Second)
	srv, err := rssBytes(in.pid)
	if err != nil {
		return err
	}
	agents := in.agentPIDs()
	if len(agents) != m {
		b.res.note("%s: %d agent processes for %d ACP servers", name, len(agents), m)
	}
	var agentRSS float64
	for _, p := range agents {
		if v, err := rssBytes(p); err == nil {
			agentRSS += v
		}
	}
	b.res.add(name, "idle.server", fmt.Sprintf("%d idle ACP servers: server RSS", m), "B", lowerBetter, srv)
	b.res.add(name, "idle.perserver", fmt.Sprintf("%d idle ACP servers: server RSS growth per ACP server", m), "KiB", lowerBetter, (srv-rss0)/float64(m)/1024)
	b.res.add(name, "idle.total", fmt.Sprintf("%d idle ACP servers: server + agents RSS", m), "B", lowerBetter, srv+agentRSS)

	// Delete them all, 10 at a time, each with a 500 ms client timeout.
	ids := make(chan int, m)
	for i := range m {
		ids <- i
	}
	close(ids)
	var mu sync.Mutex
	var lat []time.Duration
	var timeouts, failed int
	dc := newClient(10, 500*time.Millisecond)
	defer closeClient(dc)
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			for i := range ids {
				s := time.Now()
				st, _, err := do(ctx, dc, http.MethodDelete, acpURL(in, fmt.Sprintf("idle-%03d", i), false), nil, "Accept", "application/json")
				el := time.Since(s)
				mu.Lock()
				switch {
				case err == nil && st == http.StatusNoContent:
					lat = append(lat, el)
				case isTimeout(err):
					timeouts++
				default:
					failed++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	aliveNow := alive(agents)
	deadline := time.Now().Add(3 * time.Second)
	for alive(agents) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	dk := fmt.Sprintf("DELETE of %d ACP servers, 10 concurrent", m)
	if len(lat) > 0 {
		xs := durationsMs(lat)
		b.res.add(name, "idle.delete.p50", dk+", p50", "ms", lowerBetter, percentile(xs, 50))
		b.res.add(name, "idle.delete.p99", dk+", p99", "ms", lowerBetter, percentile(xs, 99))
		b.res.add(name, "idle.delete.max", dk+", max", "ms", lowerBetter, slices.Max(xs))
	}
	if timeouts > 0 || failed > 0 {
		why := fmt.Sprintf("%d of %d got no answer within the 500 ms client timeout", timeouts, m)
		if failed > 0 {
			why += fmt.Sprintf(", %d failed", failed)
		}
		b.res.missing(name, "idle.delete.p50", dk+", p50", "ms", lowerBetter, why)
		b.res.missing(name, "idle.delete.p99", dk+", p99", "ms", lowerBetter, why)
		b.res.missing(name, "idle.delete.max", dk+", max", "ms", lowerBetter, why)
	}
	b.res.add(name, "idle.alive", dk+": agents alive when the last DELETE returned", "count", lowerBetter, float64(aliveNow))
	b.res.add(name, "idle.alive3s", dk+": agents alive 3 s later", "count", lowerBetter, float64(alive(agents)))
	return nil
}

// errNotImplemented marks an endpoint the server does not have (yet).
var errNotImplemented = errors.New("endpoint not implemented (404)")

// procRun: POST /v1/processes/run of `true` against a bare fork/exec of
// `true` with captured output, interleaved.
func (b *bench) procRun(ctx context.Context, in *instance) error {
	name := in.t.name
	c := newClient(1, 10*time.Second)
	defer closeClient(c)
	u := in.base + "/v1/processes/run"
	body := []byte(`{"command":"true"}`)
	n := b.cfg.procN
	var run, bare []time.Duration
	for i := range n + n/10 {
		s := time.Now()
		var o, e bytes.Buffer
		cmd := exec.Command("true")
		cmd.Stdout, cmd.Stderr = &o, &e
		if err := cmd.Run(); err != nil {
			return err
		}
		db := time.Since(s)
		s = time.Now()
		st, resp, err := do(ctx, c, http.MethodPost, u, body, "Content-Type", "application/json")
		dr := time.Since(s)
		if err != nil {
			return err
		}
		if st == http.StatusNotFound {
			return errNotImplemented
		}
		if st != 200 || !bytes.Contains(resp, []byte(`"exitCode":0`)) {
			return fmt.Errorf("processes/run: %d %s", st, trunc(resp))
		}
		if i >= n/10 {
			run, bare = append(run, dr), append(bare, db)
		}
	}
	b.latencies(name, "proc.run", "POST /v1/processes/run `true`", run)
	pr, pb := percentile(durationsMs(run), 50), percentile(durationsMs(bare), 50)
	b.res.add(name, "proc.bare.p50", "bare fork/exec of `true` from the bench, p50 (same round)", "ms", neutral, pb)
	b.res.add(name, "proc.overhead", "process run p50 ÷ bare fork/exec p50", "×", lowerBetter, pr/pb)
	return nil
}

// fsIO: PUT and GET /v1/fs/file of a file below upstream's 2 MiB cap.
func (b *bench) fsIO(ctx context.Context, in *instance) error {
	name := in.t.name
	c := newClient(1, 30*time.Second)
	defer closeClient(c)
	size := b.cfg.fileSize
	data := make([]byte, size)
	_, _ = rand.Read(data)
	u := in.base + "/v1/fs/file?path=" + url.QueryEscape(filepath.Join(in.home, "fsbench", "file.bin"))
	n := b.cfg.fsN
	var put, get []time.Duration
	for i := range n + n/10 {
		s := time.Now()
		st, resp, err := do(ctx, c, http.MethodPut, u, data, "Content-Type", "application/octet-stream")
		dp := time.Since(s)
		if err != nil {
			return err
		}
		if st == http.StatusNotFound {
			return errNotImplemented
		}
		if st != 200 || !bytes.Contains(resp, []byte(`"bytesWritten":`+strconv.Itoa(size))) {
			return fmt.Errorf("fs PUT: %d %s", st, trunc(resp))
		}
		s = time.Now()
		st, got, err := do(ctx, c, http.MethodGet, u, nil)
		dg := time.Since(s)
		if err != nil {
			return err
		}
		if st != 200 || !bytes.Equal(got, data) {
			return fmt.Errorf("fs GET: %d, %d bytes", st, len(got))
		}
		if i >= n/10 {
			put, get = append(put, dp), append(get, dg)
		}
	}
	mib := float64(size) / (1 << 20)
	label := fmt.Sprintf("%.0f MiB", mib)
	b.res.add(name, "fs.put", "PUT /v1/fs/file "+label+", throughput (median request)", "MiB/s", higherBetter, mib/(percentile(durationsMs(put), 50)/1000))
	b.res.add(name, "fs.get", "GET /v1/fs/file "+label+", throughput (median request)", "MiB/s", higherBetter, mib/(percentile(durationsMs(get), 50)/1000))
	// The body cap: upstream refuses more than 2 MiB.
	big := make([]byte, 4<<20)
	st, _, err := do(ctx, c, http.MethodPut, u, big, "Content-Type", "application/octet-stream")
	if err == nil {
		b.res.note("%s: PUT /v1/fs/file of 4 MiB → HTTP %d", name, st)
	}
	return nil
}

// rawPipe: the agent writes N notifications into a pipe read line by line
// (a /dev/null-like consumer): the physical limit of the flood.
func rawPipe(agentBin string, n int) (float64, error) {
	cmd := exec.Command(agentBin, "-flood", strconv.Itoa(n))
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	br := bufio.NewReaderSize(out, 64<<10)
	lines := 0
	for {
		_, err := br.ReadSlice('\n')
		if err == nil {
			lines++
			continue
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		break
	}
	d := time.Since(t0)
	if err := cmd.Wait(); err != nil {
		return 0, err
	}
	if lines != n {
		return 0, fmt.Errorf("raw pipe: %d lines, want %d", lines, n)
	}
	return float64(n) / d.Seconds(), nil
}

// clientCeiling: the bench's SSE reader against an in-process server that
// writes a pre-encoded stream of N flood events in 64 KiB writes: the most
// this client can count on this machine, whatever the server.
func clientCeiling(ctx context.Context, n int) (float64, error) {
	var stream bytes.Buffer
	text := []byte("abcdefghijklmnopqrstuvwxyzabcdef")
	line := make([]byte, 0, 256)
	stream.WriteString("event: message\nid: 1\ndata: {\"id\":1,\"jsonrpc\":\"2.0\",\"result\":{}}\n\n")
	for i := range n {
		line = line[:0]
		line = append(line, "event: message\nid: "...)
		line = strconv.AppendInt(line, int64(i+2), 10)
		line = append(line, "\ndata: "...)
		line = append(line, floodPrefix...)
		line = strconv.AppendInt(line, int64(i), 10)
		line = append(line, `,"sessionId":"bench","update":{"content":{"text":"`...)
		line = append(line, text...)
		line = append(line, `","type":"text"},"sessionUpdate":"agent_message_chunk"}}}`...)
		line = append(line, "\n\n"...)
		stream.Write(line)
	}
	fmt.Fprintf(&stream, "event: message\nid: %d\ndata: {\"id\":\"flood-x\",\"jsonrpc\":\"2.0\",\"result\":{\"flooded\":%d}}\n\n", n+2, n)
	payload := stream.Bytes()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	go func() {
		_ = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			for p := payload; len(p) > 0; {
				k := min(len(p), 64<<10)
				if _, err := w.Write(p[:k]); err != nil {
					return
				}
				p = p[k:]
			}
		}))
	}()
	defer ln.Close()
	c := newClient(1, 0)
	defer closeClient(c)
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	r := &sseReader{n: n, ready: make(chan struct{}), idCount: make([]uint8, n), seqCount: make([]uint8, n)}
	t0 := time.Now()
	r.run(rctx, c, "http://"+ln.Addr().String()+"/")
	if r.err != nil {
		return 0, r.err
	}
	if !r.gotResp || r.flood != n {
		return 0, fmt.Errorf("client ceiling: %d of %d events", r.flood, n)
	}
	return float64(n) / time.Since(t0).Seconds(), nil
}

// pipeRTT: the bench writes a request line to the agent's stdin and reads
// the answer from its stdout, n times: the pipe part of every ACP round
// trip, without any server.
func pipeRTT(ctx context.Context, agentBin string, n int) (float64, error) {
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(cctx, agentBin)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return 0, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() { _ = stdin.Close(); _ = cmd.Wait() }()
	br := bufio.NewReader(stdout)
	lat := make([]time.Duration, 0, n)
	body := make([]byte, 0, 128)
	for i := range n + n/10 {
		body = fmt.Appendf(body[:0], `{"jsonrpc":"2.0","id":%d,"method":"bench/echo","params":{"i":%d}}`+"\n", i, i)
		s := time.Now()
		if _, err := stdin.Write(body); err != nil {
			return 0, err
		}
		line, err := br.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		el := time.Since(s)
		if !bytes.HasPrefix(line, fmt.Appendf(nil, `{"id":%d,`, i)) {
			return 0, fmt.Errorf("pipe rtt: unexpected %s", trunc(line))
		}
		if i >= n/10 {
			lat = append(lat, el)
		}
	}
	return percentile(durationsMs(lat), 50), nil
}
