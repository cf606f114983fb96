// Package compatactors defines the actors that multiplayer/compat's scripts
// and bench/multiplayer drive, the same shapes as rivet-server.mjs defines
// on rivetkit, so that one script checks both servers: workspace (the docs'
// Multiplayer actor without a sandbox, plus conformance helpers), bench and
// sleepy.
package compatactors

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/multiplayer"
)

// Options tune the actors as rivet-server.mjs's flags do.
type Options struct {
	BenchSleep  time.Duration // default 10 min
	SleepySleep time.Duration // default 1 s
}

type workspaceState struct {
	SandboxID *string `json:"sandboxId"`
	BaseURL   *string `json:"baseUrl"`
}

type (
	wsCtx  = multiplayer.Ctx[workspaceState, struct{}]
	benchS struct {
		Count int `json:"count"`
	}
	benchCtx = multiplayer.Ctx[benchS, struct{}]
	sleepyS  struct {
		Count int `json:"count"`
		Wakes int `json:"wakes"`
	}
	sleepyCtx = multiplayer.Ctx[sleepyS, struct{}]
)

type promptIn struct {
	UserID string `json:"userId"`
	Text   string `json:"text"`
}

// Tricky is the value of the tricky action: a bigint beyond 2^53, bytes, a
// user array that looks like a compat tag, nesting, unicode.
var Tricky = json.RawMessage(`{"big":9007199254740993,"bytes":"AAEC+v8=","dollar":["$notATag",1],` +
	`"nested":{"list":[1,"two",null,{"deep":[true,false]}],"empty":{},"arr":[]},"unicode":"héllo ☃ 🚀","float":1.5,"neg":-42}`)

// Register adds workspace, bench and sleepy to reg.
func Register(reg *multiplayer.Registry, o Options) {
	if o.BenchSleep == 0 {
		o.BenchSleep = 10 * time.Minute
	}
	if o.SleepySleep == 0 {
		o.SleepySleep = time.Second
	}
	multiplayer.Register(reg, multiplayer.Def[workspaceState, struct{}]{
		Name: "workspace",
		Actions: map[string]multiplayer.ActionFunc[workspaceState, struct{}]{
			"getSessionInfo": multiplayer.Action(func(c *wsCtx, _ struct{}) (map[string]any, error) {
				return map[string]any{"workspaceId": c.Key()[0], "sandboxId": c.State().SandboxID}, nil
			}),
			"prompt": multiplayer.Action(func(c *wsCtx, in promptIn) (map[string]any, error) {
				now := time.Now().UnixMilli()
				if err := c.Broadcast("chat.user", map[string]any{"userId": in.UserID, "text": in.Text, "createdAt": now}); err != nil {
					return nil, err
				}
				if err := c.Broadcast("session.event", map[string]any{"type": "agent.message", "sender": "agent",
					"text": "echo: " + in.Text, "createdAt": now}); err != nil {
					return nil, err
				}
				return map[string]any{"accepted": true}, nil
			}),
			"barrier": multiplayer.Action(func(c *wsCtx, _ struct{}) (bool, error) { return true, nil }),
			"fail": multiplayer.Action(func(c *wsCtx, _ struct{}) (any, error) {
				return nil, multiplayer.UserError("boom", "it went boom", map[string]any{"why": "asked", "n": 1})
			}),
			"tricky": multiplayer.Action(func(c *wsCtx, _ struct{}) (json.RawMessage, error) { return Tricky, nil }),
			"echo":   multiplayer.Action(func(c *wsCtx, x json.RawMessage) (json.RawMessage, error) { return x, nil }),
			"kick": multiplayer.Action(func(c *wsCtx, _ struct{}) (string, error) {
				return "kicked", c.Disconnect(c.Conn(), "bench.kicked")
			}),
		},
	})
	multiplayer.Register(reg, multiplayer.Def[benchS, struct{}]{
		Name:    "bench",
		Options: multiplayer.Options{SleepTimeout: o.BenchSleep},
		Actions: map[string]multiplayer.ActionFunc[benchS, struct{}]{
			"echo":    multiplayer.Action(func(c *benchCtx, x json.RawMessage) (json.RawMessage, error) { return x, nil }),
			"barrier": multiplayer.Action(func(c *benchCtx, _ struct{}) (bool, error) { return true, nil }),
			"fanout": multiplayer.Action(func(c *benchCtx, a multiplayer.Args) (bool, error) {
				var n int
				var tag any
				if len(a) > 0 {
					_ = json.Unmarshal(a[0], &n)
				}
				if len(a) > 1 {
					_ = json.Unmarshal(a[1], &tag)
				}
				return true, c.Broadcast("fanout", map[string]any{"tag": tag, "pad": strings.Repeat("x", max(n, 0))})
			}),
			"increment": multiplayer.Action(func(c *benchCtx, by *int) (int, error) {
				c.State().Count += valueOr(by, 1)
				return c.State().Count, nil
			}),
			"getCount": multiplayer.Action(func(c *benchCtx, _ struct{}) (int, error) { return c.State().Count, nil }),
		},
	})
	multiplayer.Register(reg, multiplayer.Def[sleepyS, struct{}]{
		Name:    "sleepy",
		Options: multiplayer.Options{SleepTimeout: o.SleepySleep},
		OnWake: func(c *sleepyCtx) error {
			c.State().Wakes++
			return nil
		},
		Actions: map[string]multiplayer.ActionFunc[sleepyS, struct{}]{
			"increment": multiplayer.Action(func(c *sleepyCtx, by *int) (int, error) {
				c.State().Count += valueOr(by, 1)
				return c.State().Count, nil
			}),
			"wakes": multiplayer.Action(func(c *sleepyCtx, _ struct{}) (int, error) { return c.State().Wakes, nil }),
		},
	})
}

func valueOr(p *int, d int) int {
	if p == nil {
		return d
	}
	return *p
}
