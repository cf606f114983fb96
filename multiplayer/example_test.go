package multiplayer_test

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/sandbox-agent-go/sandbox-agent/multiplayer"
	"github.com/sandbox-agent-go/sandbox-agent/multiplayer/backend/memory"
)

type counter struct {
	Count int `json:"count"`
}

type counterCtx = multiplayer.Ctx[counter, struct{}]

func Example() {
	reg := multiplayer.NewRegistry()
	multiplayer.Register(reg, multiplayer.Def[counter, struct{}]{
		Name: "counter",
		Actions: map[string]multiplayer.ActionFunc[counter, struct{}]{
			"increment": multiplayer.Action(func(c *counterCtx, by int) (int, error) {
				c.State().Count += by
				// Every connection subscribed to "count" gets it.
				return c.State().Count, c.Broadcast("count", c.State().Count)
			}),
		},
	})
	ctx := context.Background()
	rt, err := multiplayer.Open(ctx, reg, multiplayer.Config{Backend: memory.New(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	defer rt.Close()
	// Server-side callers use Call; browsers use rt.Handler() with rivetkit.
	var n int
	for range 3 {
		if err := rt.Call(ctx, "counter", []string{"room-1"}, "increment", &n, 2); err != nil {
			panic(err)
		}
	}
	fmt.Println(n)
	// Output: 6
}
