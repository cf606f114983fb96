package sandboxagent

import (
	"context"
	"encoding/json"
	"strings"
)

// ReplayPrefix starts the history text injected into a restored session.
const ReplayPrefix = "Previous session history is replayed below as JSON-RPC envelopes. Use it as context before responding to the latest user prompt.\n"

// ReplayTruncatedMarker follows ReplayPrefix when older events were left
// out to honour the character cap.
const ReplayTruncatedMarker = "[earlier history truncated]\n"

// buildReplay returns the replay text of a session's stored history: the
// last ReplayMaxEvents events, one JSON line each ({createdAt, sender,
// payload}), oldest first. Unlike upstream, the character cap drops the
// oldest events and keeps the newest, and the text never exceeds the cap
// (unless the prefix alone does). "" when there is no history.
func (c *Client) buildReplay(ctx context.Context, id string) (string, error) {
	limit := max(100, c.replayMaxEvents)
	var window []SessionEvent
	cursor := ""
	for {
		page, err := c.store.ListEvents(ctx, ListEventsRequest{SessionID: id, Cursor: cursor, Limit: limit})
		if err != nil {
			return "", err
		}
		window = append(window, page.Items...)
		if len(window) > c.replayMaxEvents {
			window = window[len(window)-c.replayMaxEvents:]
		}
		if page.NextCursor == "" || len(page.Items) == 0 {
			break
		}
		cursor = page.NextCursor
	}
	return formatReplay(window, c.replayMaxChars), nil
}

func formatReplay(events []SessionEvent, maxChars int) string {
	if len(events) == 0 {
		return ""
	}
	lines := make([]string, len(events))
	for i, e := range events {
		b, _ := json.Marshal(struct {
			CreatedAt int64              `json:"createdAt"`
			Sender    SessionEventSender `json:"sender"`
			Payload   json.RawMessage    `json:"payload"`
		}{e.CreatedAt, e.Sender, e.Payload})
		lines[i] = string(b) + "\n"
	}
	budget := maxChars - len(ReplayPrefix)
	total, first := 0, len(lines)
	for i := len(lines) - 1; i >= 0; i-- {
		need := total + len(lines[i])
		if i > 0 { // room for the marker if older lines get dropped
			need += len(ReplayTruncatedMarker)
		}
		if need > budget && !(i == 0 && total+len(lines[i]) <= budget) {
			break
		}
		total += len(lines[i])
		first = i
	}
	var b strings.Builder
	b.WriteString(ReplayPrefix)
	if first > 0 {
		b.WriteString(ReplayTruncatedMarker)
	}
	for _, l := range lines[first:] {
		b.WriteString(l)
	}
	return b.String()
}
