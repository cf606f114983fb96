package sandboxagent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/sandbox-agent-go/sandbox-agent/acp/acphttp"
)

// PermissionReply is the application's answer to a permission request.
type PermissionReply string

// The three replies, mapped onto the agent's option kinds: once → the
// first allow_once; always → the first allow_always, else allow_once;
// reject → the first reject_once, else reject_always.
const (
	PermissionOnce   PermissionReply = "once"
	PermissionAlways PermissionReply = "always"
	PermissionReject PermissionReply = "reject"
)

// PermissionOption is one option the agent offers.
type PermissionOption struct {
	OptionID string `json:"optionId"`
	Name     string `json:"name"`
	Kind     string `json:"kind"`
}

// PermissionRequest is an agent's session/request_permission.
type PermissionRequest struct {
	ID               string // local id for RespondPermission
	CreatedAt        time.Time
	SessionID        string // local session id
	AgentSessionID   string
	AvailableReplies []PermissionReply
	Options          []PermissionOption
	ToolCall         json.RawMessage
	RawRequest       json.RawMessage // the params
}

type pendingPermission struct {
	req  PermissionRequest
	live *liveConn
	ch   chan permissionAnswer
	once sync.Once
}

type permissionAnswer struct {
	result any
	err    error
}

func (p *pendingPermission) resolve(result any) { p.answer(permissionAnswer{result: result}) }

func (p *pendingPermission) answer(a permissionAnswer) {
	p.once.Do(func() { p.ch <- a })
}

func cancelledOutcome() any {
	return map[string]any{"outcome": map[string]string{"outcome": "cancelled"}}
}

// OnPermissionRequest registers fn for the session's permission requests.
// fn runs on its own goroutine per request and may call RespondPermission
// directly or later. Without any listener requests are answered
// "cancelled". It returns the unsubscribe function.
func (s *Session) OnPermissionRequest(fn func(PermissionRequest)) (unsubscribe func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextSub++
	k := s.nextSub
	s.permFns[k] = fn
	return func() {
		s.mu.Lock()
		delete(s.permFns, k)
		s.mu.Unlock()
	}
}

// RespondPermission answers a pending request of this session.
func (s *Session) RespondPermission(permissionID string, reply PermissionReply) error {
	return s.c.RespondPermission(permissionID, reply)
}

// RawRespondPermission answers with an arbitrary RequestPermissionResponse.
func (s *Session) RawRespondPermission(permissionID string, response any) error {
	return s.c.RawRespondPermission(permissionID, response)
}

func (c *Client) takePermission(id string) *pendingPermission {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.perms[id]
	delete(c.perms, id)
	return p
}

// RespondPermission answers a pending permission request. A reply the agent
// offered no option for returns *UnsupportedPermissionReplyError and answers
// the agent with an error.
func (c *Client) RespondPermission(permissionID string, reply PermissionReply) error {
	p := c.takePermission(permissionID)
	if p == nil {
		return fmt.Errorf("%w: %q", ErrPermissionNotFound, permissionID)
	}
	pick := func(kinds ...string) string {
		for _, k := range kinds {
			for _, o := range p.req.Options {
				if o.Kind == k {
					return o.OptionID
				}
			}
		}
		return ""
	}
	var id string
	switch reply {
	case PermissionOnce:
		id = pick("allow_once")
	case PermissionAlways:
		id = pick("allow_always", "allow_once")
	case PermissionReject:
		id = pick("reject_once", "reject_always")
	}
	if id == "" {
		err := &UnsupportedPermissionReplyError{PermissionID: permissionID, RequestedReply: reply, AvailableReplies: p.req.AvailableReplies}
		p.answer(permissionAnswer{err: err})
		return err
	}
	p.resolve(map[string]any{"outcome": map[string]string{"outcome": "selected", "optionId": id}})
	return nil
}

// RawRespondPermission answers a pending request with response as is.
func (c *Client) RawRespondPermission(permissionID string, response any) error {
	p := c.takePermission(permissionID)
	if p == nil {
		return fmt.Errorf("%w: %q", ErrPermissionNotFound, permissionID)
	}
	p.resolve(response)
	return nil
}

func (c *Client) cancelPermissions(match func(*pendingPermission) bool) {
	c.mu.Lock()
	var ps []*pendingPermission
	for id, p := range c.perms {
		if match(p) {
			ps = append(ps, p)
			delete(c.perms, id)
		}
	}
	c.mu.Unlock()
	for _, p := range ps {
		p.resolve(cancelledOutcome())
	}
}

func (c *Client) handlePermission(ctx context.Context, l *liveConn, r acphttp.Request) (any, error) {
	var params struct {
		SessionID string             `json:"sessionId"`
		Options   []PermissionOption `json:"options"`
		ToolCall  json.RawMessage    `json:"toolCall"`
	}
	if err := json.Unmarshal(r.Params, &params); err != nil {
		return nil, &acphttp.RPCError{Code: -32602, Message: "Invalid params"}
	}
	l.mu.Lock()
	local := l.byAgent[params.SessionID]
	l.mu.Unlock()
	s := c.cachedSession(local)
	if s == nil {
		return cancelledOutcome(), nil
	}
	s.mu.Lock()
	fns := make([]func(PermissionRequest), 0, len(s.permFns))
	for _, fn := range s.permFns {
		fns = append(fns, fn)
	}
	s.mu.Unlock()
	if len(fns) == 0 {
		return cancelledOutcome(), nil
	}
	req := PermissionRequest{
		ID: uuid.NewString(), CreatedAt: time.Now(), SessionID: local, AgentSessionID: params.SessionID,
		Options: params.Options, ToolCall: params.ToolCall, RawRequest: r.Params,
	}
	seen := map[PermissionReply]bool{}
	for _, o := range params.Options {
		var rep PermissionReply
		switch o.Kind {
		case "allow_once":
			rep = PermissionOnce
		case "allow_always":
			rep = PermissionAlways
		case "reject_once", "reject_always":
			rep = PermissionReject
		}
		if rep != "" && !seen[rep] {
			seen[rep] = true
			req.AvailableReplies = append(req.AvailableReplies, rep)
		}
	}
	p := &pendingPermission{req: req, live: l, ch: make(chan permissionAnswer, 1)}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return cancelledOutcome(), nil
	}
	c.perms[req.ID] = p
	c.mu.Unlock()
	for _, fn := range fns {
		if err := callListener(fn, req); err != nil {
			c.takePermission(req.ID)
			return nil, err
		}
	}
	select {
	case a := <-p.ch:
		if a.err != nil {
			return nil, a.err
		}
		return a.result, nil
	case <-ctx.Done():
		c.takePermission(req.ID)
		return cancelledOutcome(), nil
	}
}

func callListener(fn func(PermissionRequest), req PermissionRequest) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errors.New(fmt.Sprint("permission listener panicked: ", r))
		}
	}()
	fn(req)
	return nil
}
