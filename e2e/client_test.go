package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// acpClient is a minimal ACP client over the server's HTTP transport:
// requests are POSTed, everything the agent writes arrives on SSE, and
// agent→client requests (permission, fs/*, terminal/*) are answered by
// POSTing responses, as the official SDK does.
type acpClient struct {
	t     *testing.T
	base  string
	id    string
	agent string
	cwd   string

	mu        sync.Mutex
	next      int
	created   bool
	updates   []map[string]any // session/update params, in order
	requests  []string         // agent→client request methods, in order
	deny      bool
	changed   chan struct{}
	terminals map[string]*terminal
	cancel    context.CancelFunc
	done      chan struct{}
	// firstPost and firstChunk time the agent's start: first POST sent,
	// first agent_message_chunk received.
	firstPost, firstChunk time.Time
}

type terminal struct {
	out  bytes.Buffer
	code int
	done chan struct{}
}

func newClient(t *testing.T, base, id, agent, cwd string) *acpClient {
	c := &acpClient{t: t, base: base, id: id, agent: agent, cwd: cwd, changed: make(chan struct{}), terminals: map[string]*terminal{}, done: make(chan struct{})}
	t.Cleanup(c.close)
	return c
}

func (c *acpClient) close() {
	c.mu.Lock()
	cancel := c.cancel
	c.cancel = nil
	c.mu.Unlock()
	if cancel != nil {
		cancel()
		<-c.done
	}
}

// post sends one envelope; it returns the response envelope for requests.
func (c *acpClient) post(ctx context.Context, env map[string]any) (int, []byte) {
	c.t.Helper()
	url := c.base + "/v1/acp/" + c.id
	c.mu.Lock()
	first := !c.created
	c.created = true
	if first {
		c.firstPost = time.Now()
	}
	c.mu.Unlock()
	if first {
		url += "?agent=" + c.agent
	}
	b, _ := json.Marshal(env)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Errorf("POST %s: %v", env["method"], err)
		return 0, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if first {
		c.startStream()
	}
	return resp.StatusCode, body
}

// call sends a request and returns its result (fails the test on errors).
func (c *acpClient) call(method string, params any) map[string]any {
	c.t.Helper()
	res, err := c.tryCall(method, params, 2*time.Minute)
	if err != nil {
		c.t.Fatalf("%s: %v", method, err)
	}
	return res
}

func (c *acpClient) tryCall(method string, params any, timeout time.Duration) (map[string]any, error) {
	c.mu.Lock()
	c.next++
	id := c.next
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	status, body := c.post(ctx, map[string]any{"jsonrpc": "2.0", "id": id, "method": method, "params": params})
	if status != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d: %s", status, body)
	}
	var env struct {
		Result json.RawMessage `json:"result"`
		Error  json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, fmt.Errorf("bad response %s: %v", body, err)
	}
	if len(env.Error) > 0 {
		return nil, fmt.Errorf("JSON-RPC error %s", env.Error)
	}
	var res map[string]any
	_ = json.Unmarshal(env.Result, &res)
	return res, nil
}

func (c *acpClient) notify(method string, params any) {
	c.t.Helper()
	status, body := c.post(context.Background(), map[string]any{"jsonrpc": "2.0", "method": method, "params": params})
	if status != http.StatusAccepted {
		c.t.Errorf("%s: HTTP %d %s", method, status, body)
	}
}

func (c *acpClient) startStream() {
	ctx, cancel := context.WithCancel(context.Background())
	c.mu.Lock()
	c.cancel = cancel
	c.mu.Unlock()
	ready := make(chan struct{})
	go func() {
		defer close(c.done)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/acp/"+c.id, nil)
		req.Header.Set("Accept", "text/event-stream")
		resp, err := http.DefaultClient.Do(req)
		close(ready)
		if err != nil {
			return
		}
		defer resp.Body.Close()
		var wg sync.WaitGroup
		defer wg.Wait()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			line := sc.Text()
			if !strings.HasPrefix(line, "data: ") {
				continue
			}
			var msg struct {
				ID     json.RawMessage `json:"id"`
				Method string          `json:"method"`
				Params map[string]any  `json:"params"`
			}
			if json.Unmarshal([]byte(line[6:]), &msg) != nil || msg.Method == "" {
				continue
			}
			if len(msg.ID) == 0 {
				if msg.Method == "session/update" {
					c.mu.Lock()
					c.updates = append(c.updates, msg.Params)
					if up, _ := msg.Params["update"].(map[string]any); up["sessionUpdate"] == "agent_message_chunk" && c.firstChunk.IsZero() {
						c.firstChunk = time.Now()
					}
					close(c.changed)
					c.changed = make(chan struct{})
					c.mu.Unlock()
				}
				continue
			}
			c.mu.Lock()
			c.requests = append(c.requests, msg.Method)
			c.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				result, rpcErr := c.handle(ctx, msg.Method, msg.Params)
				env := map[string]any{"jsonrpc": "2.0", "id": msg.ID}
				if rpcErr != nil {
					env["error"] = rpcErr
				} else {
					env["result"] = result
				}
				rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				c.post(rctx, env)
			}()
		}
	}()
	<-ready
}

// handle answers one agent→client request.
func (c *acpClient) handle(ctx context.Context, method string, p map[string]any) (any, map[string]any) {
	str := func(k string) string { s, _ := p[k].(string); return s }
	switch method {
	case "session/request_permission":
		c.mu.Lock()
		deny := c.deny
		c.mu.Unlock()
		want := []string{"allow_once", "allow_always"}
		if deny {
			want = []string{"reject_once", "reject_always"}
		}
		opts, _ := p["options"].([]any)
		for _, k := range want {
			for _, o := range opts {
				om, _ := o.(map[string]any)
				if om["kind"] == k {
					return map[string]any{"outcome": map[string]any{"outcome": "selected", "optionId": om["optionId"]}}, nil
				}
			}
		}
		return map[string]any{"outcome": map[string]any{"outcome": "cancelled"}}, nil
	case "fs/write_text_file":
		if err := os.WriteFile(str("path"), []byte(str("content")), 0o644); err != nil {
			return nil, map[string]any{"code": -32603, "message": err.Error()}
		}
		return nil, nil
	case "fs/read_text_file":
		b, err := os.ReadFile(str("path"))
		if err != nil {
			return nil, map[string]any{"code": -32603, "message": err.Error()}
		}
		return map[string]any{"content": string(b)}, nil
	case "terminal/create":
		line := str("command")
		if args, ok := p["args"].([]any); ok {
			for _, a := range args {
				line += " " + fmt.Sprint(a)
			}
		}
		cmd := exec.CommandContext(ctx, "sh", "-c", line)
		cmd.Dir = c.cwd
		if cwd := str("cwd"); cwd != "" {
			cmd.Dir = cwd
		}
		term := &terminal{done: make(chan struct{})}
		cmd.Stdout, cmd.Stderr = &term.out, &term.out
		c.mu.Lock()
		tid := fmt.Sprintf("term-%d", len(c.terminals)+1)
		c.terminals[tid] = term
		c.mu.Unlock()
		go func() {
			defer close(term.done)
			if err := cmd.Run(); err != nil {
				term.code = 1
				if ee, ok := err.(*exec.ExitError); ok {
					term.code = ee.ExitCode()
				}
			}
		}()
		return map[string]any{"terminalId": tid}, nil
	case "terminal/output", "terminal/wait_for_exit", "terminal/kill", "terminal/release":
		c.mu.Lock()
		term := c.terminals[str("terminalId")]
		c.mu.Unlock()
		if term == nil {
			return nil, map[string]any{"code": -32602, "message": "unknown terminal"}
		}
		switch method {
		case "terminal/wait_for_exit":
			<-term.done
			return map[string]any{"exitCode": term.code, "signal": nil}, nil
		case "terminal/output":
			select {
			case <-term.done:
				return map[string]any{"output": term.out.String(), "truncated": false, "exitStatus": map[string]any{"exitCode": term.code, "signal": nil}}, nil
			default:
				return map[string]any{"output": "", "truncated": false}, nil
			}
		}
		<-term.done
		return nil, nil
	}
	return nil, map[string]any{"code": -32601, "message": "method not found: " + method}
}

func (c *acpClient) setDeny(deny bool) {
	c.mu.Lock()
	c.deny = deny
	c.mu.Unlock()
}

// mark returns the current update count, for text since a point.
func (c *acpClient) mark() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.updates)
}

func (c *acpClient) requestCount(method string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, m := range c.requests {
		if m == method {
			n++
		}
	}
	return n
}

// text joins the text of updates of kind since mark.
func (c *acpClient) text(since int, kind string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	for _, u := range c.updates[min(since, len(c.updates)):] {
		up, _ := u["update"].(map[string]any)
		if up["sessionUpdate"] != kind {
			continue
		}
		if ct, ok := up["content"].(map[string]any); ok {
			if s, ok := ct["text"].(string); ok {
				b.WriteString(s)
			}
		}
	}
	return b.String()
}

// waitText waits until the text of kind since mark contains want.
func (c *acpClient) waitText(since int, kind, want string, timeout time.Duration) bool {
	deadline := time.After(timeout)
	for {
		c.mu.Lock()
		ch := c.changed
		c.mu.Unlock()
		if strings.Contains(c.text(since, kind), want) {
			return true
		}
		select {
		case <-ch:
		case <-deadline:
			return false
		}
	}
}

func (c *acpClient) kinds(since int) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, u := range c.updates[min(since, len(c.updates)):] {
		up, _ := u["update"].(map[string]any)
		if k, ok := up["sessionUpdate"].(string); ok {
			out = append(out, k)
		}
	}
	return out
}

// toolStatuses maps each tool call reported since mark (tool_call and
// tool_call_update) to its latest status.
func (c *acpClient) toolStatuses(since int) map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]string{}
	for _, u := range c.updates[min(since, len(c.updates)):] {
		up, _ := u["update"].(map[string]any)
		if k := up["sessionUpdate"]; k != "tool_call" && k != "tool_call_update" {
			continue
		}
		id, _ := up["toolCallId"].(string)
		if s, ok := up["status"].(string); ok {
			out[id] = s
		} else if _, seen := out[id]; !seen {
			out[id] = "pending" // a tool_call without status starts pending
		}
	}
	return out
}

// waitToolCallsSettled waits until no tool call reported since mark is
// still pending or in progress, i.e. each has completed or failed.
func (c *acpClient) waitToolCallsSettled(since int, timeout time.Duration) bool {
	deadline := time.After(timeout)
	for {
		c.mu.Lock()
		ch := c.changed
		c.mu.Unlock()
		settled := true
		for _, st := range c.toolStatuses(since) {
			if st == "pending" || st == "in_progress" {
				settled = false
			}
		}
		if settled {
			return true
		}
		select {
		case <-ch:
		case <-deadline:
			return false
		}
	}
}

// prompt runs one turn and returns its stopReason and the streamed text.
func (c *acpClient) prompt(session, text string) (string, string) {
	c.t.Helper()
	m := c.mark()
	res := c.call("session/prompt", map[string]any{"sessionId": session, "prompt": []any{map[string]any{"type": "text", "text": text}}})
	stop, _ := res["stopReason"].(string)
	return stop, c.text(m, "agent_message_chunk")
}

func (c *acpClient) delete() {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodDelete, c.base+"/v1/acp/"+c.id, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("DELETE: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		c.t.Fatalf("DELETE: %d", resp.StatusCode)
	}
	c.close()
}
