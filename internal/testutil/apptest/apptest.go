// Package apptest runs the whole sandbox-agent server (internal/app, as the
// binary wires it) in the test process on a loopback port, for tests of
// the SDK, the ACP transport and the end-to-end suites.
//
// A test's TestMain that relies on the default Executable must call
// mockagent.ServeIfChild first, so the test binary can stand in for
// `sandbox-agent mock-agent-process`.
package apptest

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/internal/app"
)

// closeTimeout bounds stopping the app (its agents and processes) and
// waiting for the connections it served.
const closeTimeout = 10 * time.Second

// Options says how to start a Server. The zero value serves the mock agent
// from the test binary with authentication off.
type Options struct {
	// Executable is the binary the mock agent's launcher runs as
	// `<Executable> mock-agent-process` (default: the test binary).
	Executable string
	// Home is the server's home directory (default: a fresh t.TempDir()).
	Home string
	// Token, when set, turns bearer-token authentication on.
	Token string
	// Configure adjusts the app configuration after the defaults are set,
	// for what only some tests need (agent install sources, the server's
	// environment, limits).
	Configure func(*app.Config)
}

// Server is an in-process sandbox-agent. Kill and Restart simulate a crash
// and a restart on the same address; the test's cleanup kills it.
type Server struct {
	// URL is the server's base URL (http://127.0.0.1:port).
	URL string
	// Token is the bearer token the server requires ("" when auth is off).
	Token string
	// Home is the server's home directory; it survives Kill and Restart.
	Home string

	t    testing.TB
	addr string
	cfg  app.Config

	mu    sync.Mutex
	app   *app.App
	srv   *http.Server
	serve sync.WaitGroup // the Serve goroutine
	conns sync.WaitGroup // connections the server accepted
}

// Start serves a new app on a free loopback port until the test ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	if o.Executable == "" {
		exe, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		o.Executable = exe
	}
	if o.Home == "" {
		o.Home = t.TempDir()
	}
	cfg := app.Config{
		Version: "test",
		Logger:  slog.New(slog.DiscardHandler),
		Home:    o.Home,
	}
	cfg.Agents.DataDir = t.TempDir()
	cfg.Agents.Executable = o.Executable
	cfg.Agents.Env = append(os.Environ(), "SANDBOX_AGENT_BIN="+o.Executable)
	if o.Token != "" {
		cfg.HTTP.Token, cfg.HTTP.AuthEnabled = o.Token, true
	}
	if o.Configure != nil {
		o.Configure(&cfg)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Token: o.Token, Home: o.Home, t: t, addr: ln.Addr().String(), cfg: cfg}
	s.URL = "http://" + s.addr
	if err := s.start(ln); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Kill)
	return s
}

// App is the running app (nil after Kill); Restart replaces it.
func (s *Server) App() *app.App {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.app
}

func (s *Server) start(ln net.Listener) error {
	a, err := app.New(s.cfg)
	if err != nil {
		_ = ln.Close()
		return err
	}
	srv := &http.Server{Handler: a.Handler(), ConnState: s.track}
	s.mu.Lock()
	s.app, s.srv = a, srv
	s.mu.Unlock()
	s.serve.Go(func() { _ = srv.Serve(ln) })
	return nil
}

// track counts connections from accept until closed or hijacked, so Kill
// returns only when no handler of this server is still running.
func (s *Server) track(_ net.Conn, state http.ConnState) {
	switch state {
	case http.StateNew:
		s.conns.Add(1)
	case http.StateClosed, http.StateHijacked:
		s.conns.Done()
	}
}

// Kill stops the server abruptly: connections are cut, then the app stops
// its agents and processes. It is a no-op when the server is not running.
func (s *Server) Kill() {
	s.mu.Lock()
	a, srv := s.app, s.srv
	s.app, s.srv = nil, nil
	s.mu.Unlock()
	if srv == nil {
		return
	}
	_ = srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	_ = a.Close(ctx)
	s.serve.Wait()
	done := make(chan struct{})
	go func() {
		s.conns.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.t.Errorf("apptest: connections still open %v after Kill", closeTimeout)
	}
}

// Restart serves a new app, with the same configuration and home, on the
// same address. It is a no-op while the server is running.
func (s *Server) Restart() error {
	s.mu.Lock()
	running := s.srv != nil
	s.mu.Unlock()
	if running {
		return nil
	}
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return err
	}
	return s.start(ln)
}
