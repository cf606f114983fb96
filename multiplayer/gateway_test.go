package multiplayer

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sandbox-agent-go/sandbox-agent/multiplayer/backend/memory"
)

type chatState struct{}

type chatCtx = Ctx[chatState, struct{}]

func chatDef() Def[chatState, struct{}] {
	return Def[chatState, struct{}]{
		Name: "chat",
		OnBeforeConnect: func(c *chatCtx, params json.RawMessage) error {
			var p struct {
				Token string `json:"token"`
			}
			_ = json.Unmarshal(params, &p)
			if p.Token != "ok" {
				return &Error{Group: "auth", Code: "forbidden", Message: "bad token"}
			}
			return nil
		},
		Actions: map[string]ActionFunc[chatState, struct{}]{
			"say": Action(func(c *chatCtx, text string) (uint64, error) {
				return c.Publish("said", text)
			}),
			"shout": Action(func(c *chatCtx, text string) (bool, error) {
				return true, c.Broadcast("shouted", strings.ToUpper(text))
			}),
		},
	}
}

func gateway(t *testing.T, cfg Config) string {
	t.Helper()
	reg := NewRegistry()
	Register(reg, chatDef())
	cfg.Backend = memory.New()
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.MaxMessageSize = 1024
	rt, err := Open(context.Background(), reg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(rt.Handler())
	t.Cleanup(func() {
		_ = rt.Close()
		srv.CloseClientConnections()
		srv.Close()
	})
	return srv.URL
}

const okParams = `rivet_conn_params.%7B%22token%22%3A%22ok%22%7D`

// dial opens a JSON rivet connection and returns it after Init.
func dial(t *testing.T, url string, protocols ...string) (*websocket.Conn, map[string]any) {
	t.Helper()
	ws, resp, err := websocket.Dial(t.Context(), strings.Replace(url, "http", "ws", 1)+"/gateway/chat/connect?rvt-method=getOrCreate&rvt-key=room",
		&websocket.DialOptions{Subprotocols: append([]string{"rivet"}, protocols...)})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("Sec-WebSocket-Protocol") != "rivet" {
		t.Fatalf("sub-protocol %q not echoed", resp.Header.Get("Sec-WebSocket-Protocol"))
	}
	t.Cleanup(func() { _ = ws.CloseNow() })
	return ws, read(t, ws)
}

func read(t *testing.T, ws *websocket.Conn) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, b, err := ws.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var m struct {
		Body struct {
			Tag string         `json:"tag"`
			Val map[string]any `json:"val"`
		} `json:"body"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	m.Body.Val["tag"] = m.Body.Tag
	return m.Body.Val
}

func write(t *testing.T, ws *websocket.Conn, s string) {
	t.Helper()
	if err := ws.Write(t.Context(), websocket.MessageText, []byte(s)); err != nil {
		t.Fatal(err)
	}
}

func TestGatewayConnection(t *testing.T) {
	url := gateway(t, Config{})
	ws, init := dial(t, url, "rivet_encoding.json", okParams)
	if init["tag"] != "Init" || init["actorId"] == "" || init["connectionId"] == "" {
		t.Fatalf("init %v", init)
	}
	write(t, ws, `{"body":{"tag":"SubscriptionRequest","val":{"eventName":"shouted","subscribe":true}}}`)
	write(t, ws, `{"body":{"tag":"ActionRequest","val":{"id":["$BigInt","7"],"name":"shout","args":["hi"]}}}`)
	ev, resp := read(t, ws), read(t, ws)
	if ev["tag"] != "Event" || ev["name"] != "shouted" || ev["args"].([]any)[0] != "HI" {
		t.Fatalf("event %v", ev)
	}
	if resp["tag"] != "ActionResponse" || resp["id"].([]any)[1] != "7" || resp["output"] != true {
		t.Fatalf("response %v", resp)
	}
	// Unknown action: an Error for that action id, the connection lives on.
	write(t, ws, `{"body":{"tag":"ActionRequest","val":{"id":["$BigInt","8"],"name":"nope","args":[]}}}`)
	if e := read(t, ws); e["tag"] != "Error" || e["code"] != "action_not_found" || e["actionId"].([]any)[1] != "8" {
		t.Fatalf("error %v", e)
	}
}

func TestGatewayRefusals(t *testing.T) {
	url := gateway(t, Config{})
	closeReason := func(ws *websocket.Conn) string {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		for {
			if _, _, err := ws.Read(ctx); err != nil {
				var ce websocket.CloseError
				if errors.As(err, &ce) {
					return ce.Reason
				}
				return err.Error()
			}
		}
	}
	t.Run("rejected by OnBeforeConnect", func(t *testing.T) {
		ws, msg := dial(t, url, "rivet_encoding.json")
		if msg["tag"] != "Error" || msg["code"] != "forbidden" || msg["actionId"] != nil {
			t.Fatalf("%v", msg)
		}
		if r := closeReason(ws); r != "auth.forbidden" {
			t.Fatalf("close reason %q", r)
		}
	})
	t.Run("oversize frame", func(t *testing.T) {
		ws, _ := dial(t, url, "rivet_encoding.json", okParams)
		write(t, ws, `{"body":{"tag":"ActionRequest","val":{"id":["$BigInt","1"],"name":"say","args":["`+strings.Repeat("x", 2000)+`"]}}}`)
		if e := read(t, ws); e["code"] != "incoming_too_long" {
			t.Fatalf("%v", e)
		}
		if r := closeReason(ws); r != "message.incoming_too_long" {
			t.Fatalf("close reason %q", r)
		}
	})
	t.Run("malformed frame", func(t *testing.T) {
		ws, _ := dial(t, url, "rivet_encoding.json", okParams)
		write(t, ws, `{"body":{"tag":"Nope"}}`)
		if e := read(t, ws); e["code"] != "malformed" {
			t.Fatalf("%v", e)
		}
	})
	t.Run("unknown encoding", func(t *testing.T) {
		ws, _, err := websocket.Dial(t.Context(), strings.Replace(url, "http", "ws", 1)+"/gateway/chat/connect?rvt-method=getOrCreate&rvt-key=room",
			&websocket.DialOptions{Subprotocols: []string{"rivet", "rivet_encoding.cbor"}})
		if err != nil {
			t.Fatal(err)
		}
		defer ws.CloseNow()
		if r := closeReason(ws); r != "encoding.invalid" {
			t.Fatalf("close reason %q", r)
		}
	})
	t.Run("cross-site origin", func(t *testing.T) {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", url+"/metadata", nil)
		req.Header.Set("Origin", "https://evil.example")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
}

func TestCORSAllowedOrigin(t *testing.T) {
	url := gateway(t, Config{AllowedOrigins: []string{"http://page.test"}})
	req, _ := http.NewRequestWithContext(t.Context(), "OPTIONS", url+"/gateway/chat/action/say", nil)
	req.Header.Set("Origin", "http://page.test")
	req.Header.Set("Access-Control-Request-Headers", "x-rivet-encoding,x-rivet-conn-params")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h := resp.Header
	if resp.StatusCode != 204 || h.Get("Access-Control-Allow-Origin") != "http://page.test" ||
		h.Get("Access-Control-Allow-Credentials") != "true" || h.Get("Access-Control-Allow-Headers") != "x-rivet-encoding,x-rivet-conn-params" {
		t.Fatalf("preflight %d %v", resp.StatusCode, h)
	}
}

// Stateless HTTP action: params authorise it; errors are Rivet-shaped JSON.
func TestGatewayHTTPAction(t *testing.T) {
	url := gateway(t, Config{})
	post := func(action, params, body string) (int, map[string]any) {
		req, _ := http.NewRequestWithContext(t.Context(), "POST", url+"/gateway/chat/action/"+action+"?rvt-method=getOrCreate&rvt-key=room", strings.NewReader(body))
		req.Header.Set("x-rivet-encoding", "json")
		if params != "" {
			req.Header.Set("x-rivet-conn-params", params)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	if st, m := post("say", `{"token":"ok"}`, `{"args":["hello"]}`); st != 200 || m["output"] != float64(1) {
		t.Fatalf("%d %v", st, m)
	}
	if st, m := post("say", `{"token":"no"}`, `{"args":["hello"]}`); st != 403 || m["code"] != "forbidden" {
		t.Fatalf("unauthorised: %d %v", st, m)
	}
	if st, m := post("say", `{"token":"ok"}`, `{"args":["`+strings.Repeat("x", 2000)+`"]}`); st != 413 || m["code"] != "incoming_too_long" {
		t.Fatalf("oversize: %d %v", st, m)
	}
	if st, m := post("say", `{"token":"ok"}`, `{"args":`); st != 400 || m["code"] != "malformed" {
		t.Fatalf("malformed: %d %v", st, m)
	}
}

// The events stream replays Published events after ?since= and goes on
// live, without a gap or a repeat.
func TestEventsResumeFromSequence(t *testing.T) {
	url := gateway(t, Config{})
	say := func(text string) {
		req, _ := http.NewRequestWithContext(t.Context(), "POST", url+"/gateway/chat/action/say?rvt-method=getOrCreate&rvt-key=room", strings.NewReader(`{"args":["`+text+`"]}`))
		req.Header.Set("x-rivet-conn-params", `{"token":"ok"}`)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	for _, s := range []string{"one", "two", "three"} {
		say(s)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url+`/gateway/chat/events?rvt-method=get&rvt-key=room&since=1&params={"token":"ok"}`, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	var got []string
	next := func() string {
		id := ""
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "id: "):
				id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "data: "):
				return id + "=" + strings.TrimPrefix(line, "data: ")
			}
		}
		t.Fatalf("stream ended: %v", sc.Err())
		return ""
	}
	got = append(got, next(), next())
	say("four") // live, after the replay
	got = append(got, next())
	want := []string{`2=["two"]`, `3=["three"]`, `4=["four"]`}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
}

// A client on node 2 of a World reaches the actor owned by node 1: its
// actions are routed to the owner and the owner's broadcasts come back.
func TestGatewayOnAnotherNode(t *testing.T) {
	w := memory.NewWorld()
	var urls []string
	var rts []*Runtime
	for range 2 {
		reg := NewRegistry()
		Register(reg, chatDef())
		rt, err := Open(context.Background(), reg, Config{Backend: w.Node(""), Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(rt.Handler())
		t.Cleanup(func() {
			_ = rt.Close()
			srv.CloseClientConnections()
			srv.Close()
		})
		urls, rts = append(urls, srv.URL), append(rts, rt)
	}
	// Node 1 owns it (first call there).
	if err := rts[0].Call(t.Context(), "chat", []string{"room"}, "shout", nil, "warm"); err != nil {
		t.Fatal(err)
	}
	ws, _ := dial(t, urls[1], "rivet_encoding.json", okParams)
	write(t, ws, `{"body":{"tag":"SubscriptionRequest","val":{"eventName":"shouted","subscribe":true}}}`)
	write(t, ws, `{"body":{"tag":"ActionRequest","val":{"id":["$BigInt","0"],"name":"shout","args":["via node 2"]}}}`)
	if ev := read(t, ws); ev["tag"] != "Event" || ev["args"].([]any)[0] != "VIA NODE 2" {
		t.Fatalf("event %v", ev)
	}
	if resp := read(t, ws); resp["tag"] != "ActionResponse" {
		t.Fatalf("response %v", resp)
	}
	rts[0].mu.Lock()
	_, onFirst := rts[0].hosts[actorIDOf(t, w)]
	rts[0].mu.Unlock()
	rts[1].mu.Lock()
	_, onSecond := rts[1].hosts[actorIDOf(t, w)]
	rts[1].mu.Unlock()
	if !onFirst || onSecond {
		t.Fatalf("instance on node 1: %v, on node 2: %v", onFirst, onSecond)
	}
}

func actorIDOf(t *testing.T, w *memory.World) string {
	t.Helper()
	a, err := w.Node("peek").Get(t.Context(), "chat", []string{"room"})
	if err != nil {
		t.Fatal(err)
	}
	return a.ID
}
