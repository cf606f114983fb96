package serverprobe

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestDialHost(t *testing.T) {
	tests := []struct{ host, want string }{
		{"", "127.0.0.1"},
		{"0.0.0.0", "127.0.0.1"},
		{"::", "::1"},
		{"[::]", "::1"},
		{"[::1]", "::1"},
		{"127.0.0.1", "127.0.0.1"},
		{"localhost", "localhost"},
		{"fe80::1", "fe80::1"},
	}
	for _, tt := range tests {
		if got := DialHost(tt.host); got != tt.want {
			t.Errorf("DialHost(%q) = %q, want %q", tt.host, got, tt.want)
		}
	}
	if got := BaseURL("::", 2468); got != "http://[::1]:2468" {
		t.Errorf("BaseURL(::) = %q", got)
	}
}

func TestFreePortIsBindable(t *testing.T) {
	p, err := FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		t.Fatalf("port %d from FreePort is not bindable: %v", p, err)
	}
	ln.Close()
	if _, err := FreePort("203.0.113.1"); err == nil {
		t.Error("FreePort on an address this machine does not have succeeded")
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		body    string
		wantErr string
	}{
		{"ok", 200, `{"status":"ok"}`, ""},
		{"other status value", 200, `{"status":"starting"}`, `status "starting"`},
		{"not json", 200, `<html>`, "not its JSON"},
		{"unauthorised", 401, `{}`, "answered 401"},
		{"any 2xx is not enough", 204, ``, "answered 204"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/v1/health" || r.Header.Get("Authorization") != "Bearer tok" {
					w.WriteHeader(http.StatusTeapot)
					return
				}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			err := Check(t.Context(), srv.Client(), srv.URL+"/", "tok")
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Check = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestWait(t *testing.T) {
	died := errors.New("process exited")
	tests := []struct {
		name     string
		okAfter  int32 // probes answered 503 before the first 200
		alive    func(probes *atomic.Int32) error
		timeout  time.Duration
		wantErr  error
		wantText string
	}{
		{name: "healthy at once", okAfter: 0},
		{name: "healthy after a slow boot", okAfter: 3},
		{name: "process died", okAfter: 1 << 30, alive: func(p *atomic.Int32) error {
			if p.Load() >= 2 {
				return died
			}
			return nil
		}, wantErr: died},
		{name: "never healthy", okAfter: 1 << 30, timeout: 50 * time.Millisecond, wantErr: ErrTimeout, wantText: "answered 503"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var probes atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if probes.Add(1) <= tt.okAfter {
					w.WriteHeader(http.StatusServiceUnavailable)
					return
				}
				_, _ = io.WriteString(w, `{"status":"ok"}`)
			}))
			defer srv.Close()
			o := WaitOptions{Client: srv.Client(), BaseURL: srv.URL, Timeout: tt.timeout, MaxInterval: time.Millisecond}
			if o.Timeout == 0 {
				o.Timeout = 10 * time.Second
			}
			if tt.alive != nil {
				o.Alive = func() error { return tt.alive(&probes) }
			}
			err := Wait(t.Context(), o)
			if !errors.Is(err, tt.wantErr) || tt.wantErr == nil && err != nil {
				t.Fatalf("Wait = %v, want %v", err, tt.wantErr)
			}
			if tt.wantText != "" && !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q does not carry the last probe %q", err, tt.wantText)
			}
			if tt.wantErr == nil && probes.Load() != tt.okAfter+1 {
				t.Errorf("%d probes, want %d", probes.Load(), tt.okAfter+1)
			}
		})
	}
}

func TestWaitHonoursCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := Wait(ctx, WaitOptions{BaseURL: "http://127.0.0.1:1"})
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrTimeout) {
		t.Fatalf("Wait after cancel = %v", err)
	}
}
