package sandboxagent

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func replayClient(t *testing.T, maxEvents, maxChars int, n int) *Client {
	t.Helper()
	c := &Client{store: NewMemoryStore(MemoryStoreOptions{}), log: slog.New(slog.DiscardHandler)}
	c.replayMaxEvents, c.replayMaxChars = maxEvents, maxChars
	for i := 1; i <= n; i++ {
		_, err := c.store.InsertEvent(context.Background(), "s", SessionEvent{
			Sender: SessionEventSenderClient, CreatedAt: int64(i), ConnectionID: "c",
			Payload: json.RawMessage(fmt.Sprintf(`{"jsonrpc":"2.0","method":"m","params":{"n":%d}}`, i)),
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func TestReplayKeepsNewestEvents(t *testing.T) {
	// 120 events, cap 50: events 71..120.
	c := replayClient(t, 50, 1_000_000, 120)
	text, err := c.buildReplay(t.Context(), "s")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(strings.TrimPrefix(text, ReplayPrefix), "\n"), "\n")
	if len(lines) != 50 || !strings.Contains(lines[0], `"n":71`) || !strings.Contains(lines[49], `"n":120`) {
		t.Fatalf("%d lines, first %s last %s", len(lines), lines[0], lines[len(lines)-1])
	}
	if lines[0] != `{"createdAt":71,"sender":"client","payload":{"jsonrpc":"2.0","method":"m","params":{"n":71}}}` {
		t.Fatalf("line format %s", lines[0])
	}
}

func TestReplayCharCapDropsOldestNotNewest(t *testing.T) {
	c := replayClient(t, 50, len(ReplayPrefix)+300, 10)
	text, err := c.buildReplay(t.Context(), "s")
	if err != nil {
		t.Fatal(err)
	}
	if len(text) > c.replayMaxChars {
		t.Fatalf("replay %d chars > cap %d", len(text), c.replayMaxChars)
	}
	if !strings.HasPrefix(text, ReplayPrefix+ReplayTruncatedMarker) {
		t.Fatalf("no truncation marker: %q", text)
	}
	if !strings.Contains(text, `"n":10}`) || strings.Contains(text, `"n":1}`) {
		t.Fatalf("wrong events kept: %q", text)
	}
	// No events → nothing to replay.
	empty := replayClient(t, 50, 12000, 0)
	if s, _ := empty.buildReplay(t.Context(), "s"); s != "" {
		t.Fatalf("empty history: %q", s)
	}
	// Everything fits: no marker.
	all := replayClient(t, 50, 12000, 3)
	if s, _ := all.buildReplay(t.Context(), "s"); strings.Contains(s, ReplayTruncatedMarker) || strings.Count(s, "\n") != 4 {
		t.Fatalf("full history: %q", s)
	}
}
