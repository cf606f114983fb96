package acpproxy

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/internal/server"
)

// BenchmarkACPRoundTripWithReader is BenchmarkACPRoundTrip with one live
// SSE reader on the server id: each answer then waits until the reader has
// flushed the response (the ordering invariant), the cost that the
// reader-less benchmark does not see.
func BenchmarkACPRoundTripWithReader(b *testing.B) {
	reg := New(Options{Logger: slog.New(slog.DiscardHandler), Launcher: fakeLauncher{}})
	hnd, err := server.NewHandler(server.Config{}, reg.Routes())
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(hnd)
	ctx, cancel := context.WithCancel(context.Background())
	readerDone := make(chan struct{})
	defer func() {
		cancel()
		<-readerDone
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ccancel()
		_ = reg.Close(cctx)
		ts.Close()
	}()
	c := ts.Client()
	post := func(q, body string) {
		req, _ := http.NewRequest(http.MethodPost, ts.URL+"/v1/acp/bench"+q, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatal(resp.Status)
		}
	}
	post("?agent=fake", `{"jsonrpc":"2.0","id":0,"method":"initialize"}`)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+"/v1/acp/bench", nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	go func() {
		defer close(readerDone)
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
	}()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		post("", `{"jsonrpc":"2.0","id":`+strconv.Itoa(i)+`,"method":"stall-free"}`)
	}
}
