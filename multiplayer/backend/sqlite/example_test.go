package sqlite_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/sandbox-agent-go/sandbox-agent/multiplayer/backend/sqlite"
)

// Open a data directory, create an actor, own it and write through the
// Owner; a second Open of the same directory is refused.
func ExampleOpen() {
	dir, err := os.MkdirTemp("", "mp-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	b, err := sqlite.Open(ctx, sqlite.Options{Dir: dir})
	if err != nil {
		panic(err)
	}
	defer b.Close()

	a, created, err := b.GetOrCreate(ctx, "workspace", []string{"ws-1"}, json.RawMessage(`{"sandboxId":"sb-1"}`))
	if err != nil {
		panic(err)
	}
	o, err := b.Claim(ctx, a.ID)
	if err != nil {
		panic(err)
	}
	if err := o.SaveState(ctx, []byte(`{"count":1}`)); err != nil {
		panic(err)
	}
	ev, err := o.Append(ctx, "chat.user", json.RawMessage(`[{"userId":"u1","text":"hi"}]`))
	if err != nil {
		panic(err)
	}
	fmt.Println("created:", created, "generation:", o.Generation(), "event seq:", ev.Seq)

	_, err = sqlite.Open(ctx, sqlite.Options{Dir: dir})
	fmt.Println("second open locked:", errors.Is(err, sqlite.ErrLocked))
	// Output:
	// created: true generation: 1 event seq: 1
	// second open locked: true
}
