package natsbackend

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/multiplayer/backend"
	"github.com/sandbox-agent-go/sandbox-agent/multiplayer/internal/natstest"
)

// proxy forwards TCP between a client and a server on loopback. hold()
// stops forwarding without dropping anything — bytes wait in the socket
// buffers, as in a partition where TCP keeps retransmitting — and
// release() lets them through late, in order.
type proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	gate  chan struct{} // closed while traffic flows
	conns []net.Conn
	wg    sync.WaitGroup
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, gate: make(chan struct{})}
	close(p.gate)
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) url() string { return "nats://" + p.ln.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.DialTimeout("tcp", p.target, 2*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, s)
		go p.pipe(s, c)
	}
}

func (p *proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		p.mu.Lock()
		gate := p.gate
		p.mu.Unlock()
		<-gate // held: do not even read, so the bytes queue up
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			gate = p.gate
			p.mu.Unlock()
			<-gate
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *proxy) hold() {
	p.mu.Lock()
	p.gate = make(chan struct{})
	p.mu.Unlock()
}

func (p *proxy) release() {
	p.mu.Lock()
	select {
	case <-p.gate:
	default:
		close(p.gate)
	}
	p.mu.Unlock()
}

func (p *proxy) close() {
	p.release()
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// TestPartitionDelayedWrites: node A reaches its server through a proxy
// that is then held. A fences itself at its deadline; B takes over; when
// the partition heals, A's writes sent during it reach the server late and
// are refused by the stream, so nothing of A's generation lands after B's
// claim; A then takes a new lease.
func TestPartitionDelayedWrites(t *testing.T) {
	s := startServer(t)
	p := startProxy(t, s.Addr().String())
	opts := Options{Prefix: "pt", LeaseTTL: time.Second}
	a := openVia(t, p.url(), opts)
	b := openNode(t, s, opts)
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	act, err := b.Create(ctx, "doc", []string{"p"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	oa, err := a.Claim(ctx, act.ID)
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, oa, "a1")

	p.hold()
	held := time.Now()
	// Writes sent into the partition: they time out here but stay queued.
	for _, name := range []string{"late1", "late2"} {
		wctx, wcancel := context.WithTimeout(ctx, 200*time.Millisecond)
		_, err := oa.Append(wctx, name, nil)
		wcancel()
		if err == nil {
			t.Fatalf("Append %s through a held partition succeeded", name)
		}
	}
	select {
	case <-oa.Lost():
		t.Logf("partitioned owner fenced itself after %v", time.Since(held))
	case <-ctx.Done():
		t.Fatal("the partitioned owner never fenced itself")
	}
	ob, at := claimUntil(ctx, t, b, act.ID)
	t.Logf("taken over after %v", at.Sub(held))
	mustAppend(t, ob, "b1")

	p.release()
	// A's queued messages reach the server now; flush ours after them, so
	// the server has processed them before we look.
	if err := a.nc.FlushTimeout(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, ob, "b2")
	evs := checkEvents(t, b, act.ID, ob.Generation())
	var names []string
	for _, e := range evs {
		names = append(names, e.Name)
	}
	if len(evs) != 3 || evs[0].Name != "a1" || evs[1].Name != "b1" || evs[2].Name != "b2" {
		t.Errorf("events %q, want a1 b1 b2 (the late writes refused)", names)
	}
	if _, err := oa.Append(ctx, "after", nil); !errors.Is(err, backend.ErrFenced) {
		t.Errorf("Append of the partitioned owner after healing: %v, want ErrFenced", err)
	}
	// A recovers a lease of its own and can own actors again.
	act2, err := a.Create(ctx, "doc", []string{"p2"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	o2, _ := claimUntil(ctx, t, a, act2.ID)
	mustAppend(t, o2, "a-again")
}

// openVia opens a node on a connection to url (a proxy).
func openVia(t *testing.T, url string, o Options) *Backend {
	t.Helper()
	o.Conn, o.Logger = natstest.Connect(t, url), quiet
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}
