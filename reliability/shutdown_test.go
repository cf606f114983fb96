package reliability

import (
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// Issue 9 §4: clients that stopped sending cannot hold SIGTERM: the server
// exits 0 within 2 s. (ACP and process streams have their own tests.)
func TestShutdownWithStalledBodies(t *testing.T) {
	s := start(t, opts{Args: []string{"--token", "s3cret"}})
	heads := []string{
		// Unauthenticated: refused at once, before its body.
		"POST /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n",
		// Authorised: the handler is reading a body that never comes.
		"POST /v1/acp/x?agent=mock HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer s3cret\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{",
		// Headers that never end.
		"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n",
	}
	for _, h := range heads {
		c, err := net.Dial("tcp", s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, h); err != nil {
			t.Fatal(err)
		}
	}
	// Whatever state each stalled connection has reached (reading headers,
	// refused, inside its handler), none may hold the exit.
	if code, _ := s.do("GET", "/v1/health", "", nil, "Authorization", "Bearer s3cret"); code != 200 {
		t.Fatalf("health %d", code)
	}
	code, took := s.stop(syscall.SIGTERM, 2*time.Second)
	if code != 0 {
		t.Fatalf("exit %d after %s\n%s", code, took, s.Log())
	}
}
