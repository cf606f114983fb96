package sandboxagent

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/internal/agents"
	"github.com/sandbox-agent-go/sandbox-agent/internal/app"
)

// agentBin is the real sandbox-agent binary, built into a temporary
// directory (removed after the run) by the package's TestMain
// (store_test.go, through export_test.go's AgentBinary). The test binary
// cannot serve as the mock agent itself, so the in-process server launches
// `<agentBin> mock-agent-process`.
var agentBin string

func agentBinary(t *testing.T) string {
	t.Helper()
	if agentBin == "" {
		t.Fatal("sandbox-agent was not built: TestMain must run testbin.Main with AgentBinary")
	}
	return agentBin
}

// testServer is an in-process sandbox-agent on a fixed address that can
// be killed and restarted.
type testServer struct {
	t    *testing.T
	addr string
	bin  string
	home string

	mu  sync.Mutex
	app *app.App
	srv *http.Server
	wg  sync.WaitGroup
}

func startTestServer(t *testing.T) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{t: t, addr: ln.Addr().String(), bin: agentBinary(t), home: t.TempDir()}
	s.serve(ln)
	t.Cleanup(s.kill)
	return s
}

func (s *testServer) url() string { return "http://" + s.addr }

func (s *testServer) serve(ln net.Listener) {
	a, err := app.New(app.Config{
		Version: "test",
		Logger:  slog.New(slog.DiscardHandler),
		Home:    s.home,
		Agents: agents.Options{
			DataDir:    filepath.Join(s.home, "data"),
			Executable: s.bin,
			Env:        append(os.Environ(), "SANDBOX_AGENT_BIN="+s.bin),
		},
	})
	if err != nil {
		s.t.Fatal(err)
	}
	srv := &http.Server{Handler: a.Handler()}
	s.mu.Lock()
	s.app, s.srv = a, srv
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = srv.Serve(ln)
	}()
}

// kill stops the server abruptly (connections closed, agents stopped).
func (s *testServer) kill() {
	s.mu.Lock()
	a, srv := s.app, s.srv
	s.app, s.srv = nil, nil
	s.mu.Unlock()
	if srv == nil {
		return
	}
	_ = srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = a.Close(ctx)
	s.wg.Wait()
}

// restart serves again on the same address (no-op when running).
func (s *testServer) restart() error {
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
	s.serve(ln)
	return nil
}

func connectTest(t *testing.T, s *testServer, mut func(*Options)) *Client {
	t.Helper()
	o := Options{BaseURL: s.url(), Logger: slog.New(slog.DiscardHandler)}
	if mut != nil {
		mut(&o)
	}
	c, err := Connect(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}
