package wire_test

import (
	"encoding/json"
	"fmt"

	"github.com/sandbox-agent-go/sandbox-agent/multiplayer/internal/wire"
)

// A JSON client's action call, decoded to canonical JSON, and the reply.
func Example() {
	frame := []byte(`{"body":{"tag":"ActionRequest","val":{"id":["$BigInt","0"],"name":"prompt",` +
		`"args":[{"userId":"u1","n":["$BigInt","9007199254740993"],"tag":["$$x",1]}]}}}`)
	msg, _, err := wire.DecodeToServer(wire.JSON, frame)
	if err != nil {
		panic(err)
	}
	fmt.Println(msg.Name, string(msg.Args))

	out, text, err := wire.EncodeToClient(wire.JSON, 0, wire.ToClient{
		Kind:   wire.ActionResponse,
		ID:     msg.ID,
		Output: json.RawMessage(`{"seq":18446744073709551615,"pair":["$y",2]}`),
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(text, string(out))
	// Output:
	// prompt [{"userId":"u1","n":9007199254740993,"tag":["$x",1]}]
	// true {"body":{"tag":"ActionResponse","val":{"id":["$BigInt","0"],"output":{"seq":["$BigInt","18446744073709551615"],"pair":["$$y",2]}}}}
}

// BARE clients get Init in version 2, then replies in their own version.
func ExampleEncodeToClient_bare() {
	frame, _, _ := wire.EncodeToClient(wire.BARE, wire.InitVersion, wire.ToClient{Kind: wire.Init, ActorID: "a", ConnectionID: "c"})
	fmt.Printf("% x\n", frame)
	// Output: 02 00 00 01 61 01 63
}
