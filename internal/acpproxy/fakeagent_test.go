package acpproxy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"go.uber.org/goleak"
)

// TestMain doubles as a fake ACP agent: the proxy under test launches this
// test binary with FAKE_ACP_AGENT=1.
func TestMain(m *testing.M) {
	if os.Getenv("FAKE_ACP_AGENT") == "1" {
		os.Exit(fakeAgent())
	}
	goleak.VerifyTestMain(m)
}

type fakeLauncher struct{ env []string }

func (fakeLauncher) Known(a string) bool { return a == "fake" || a == "fake2" }

func (l fakeLauncher) Command(ctx context.Context, agent string) (*exec.Cmd, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "FAKE_ACP_AGENT=1")
	cmd.Env = append(cmd.Env, l.env...)
	return cmd, nil
}

// fakeAgent answers requests by method:
//
//	echo (default)  notify then respond {"echoed": params}
//	pause           respond {"pid"}, then read nothing until SIGUSR1
//	hang            never respond
//	die             write "dying now" to stderr, exit 3
//	flood {n}       n notifications, then respond
//	lines {pads}    a notification per pad length, then respond
//	garbage         a non-JSON line, then respond
//	perm            ask the client (id "perm-1"), respond with its answer
//	child           start a grandchild `sleep 300`, respond with its pid
func fakeAgent() int {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 64<<20)
	out := bufio.NewWriterSize(os.Stdout, 64<<10)
	send := func(v any) {
		b, _ := json.Marshal(v)
		out.Write(b)
		out.WriteByte('\n')
	}
	var waitingPerm json.RawMessage
	for in.Scan() {
		var msg struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
			Params json.RawMessage `json:"params"`
			Result json.RawMessage `json:"result"`
		}
		if json.Unmarshal(in.Bytes(), &msg) != nil {
			continue
		}
		if msg.Method == "" {
			if string(msg.ID) == `"perm-1"` && waitingPerm != nil {
				send(map[string]any{"jsonrpc": "2.0", "id": waitingPerm, "result": map[string]any{"permission": msg.Result}})
				waitingPerm = nil
			}
			out.Flush()
			continue
		}
		if msg.ID == nil {
			send(map[string]any{"jsonrpc": "2.0", "method": "fake/notified", "params": map[string]any{"method": msg.Method}})
			out.Flush()
			continue
		}
		switch msg.Method {
		case "stall": // stop reading stdin altogether
			send(map[string]any{"jsonrpc": "2.0", "id": msg.ID, "result": nil})
			out.Flush()
			select {}
		case "pause": // stop reading stdin until SIGUSR1
			sig := make(chan os.Signal, 1)
			signal.Notify(sig, syscall.SIGUSR1)
			send(map[string]any{"jsonrpc": "2.0", "id": msg.ID, "result": map[string]any{"pid": os.Getpid()}})
			out.Flush()
			<-sig
			signal.Stop(sig)
		case "hang":
			send(map[string]any{"jsonrpc": "2.0", "method": "fake/hanging"})
		case "die":
			out.Flush()
			fmt.Fprintln(os.Stderr, "dying now")
			return 3
		case "flood":
			var p struct{ N int }
			_ = json.Unmarshal(msg.Params, &p)
			for i := range p.N {
				out.WriteString(`{"jsonrpc":"2.0","method":"fake/flood","params":{"i":` + strconv.Itoa(i) + "}}\n")
			}
			send(map[string]any{"jsonrpc": "2.0", "id": msg.ID, "result": map[string]any{"n": p.N}})
		case "lines": // one notification per requested pad length, then respond
			var p struct{ Pads []int }
			_ = json.Unmarshal(msg.Params, &p)
			for i, n := range p.Pads {
				out.WriteString(`{"jsonrpc":"2.0","method":"fake/line","params":{"i":` + strconv.Itoa(i) + `,"pad":"` + strings.Repeat("x", n) + `"}}` + "\n")
			}
			send(map[string]any{"jsonrpc": "2.0", "id": msg.ID, "result": map[string]any{"n": len(p.Pads)}})
		case "garbage":
			out.WriteString("this is not json\n")
			send(map[string]any{"jsonrpc": "2.0", "id": msg.ID, "result": nil})
		case "perm":
			waitingPerm = msg.ID
			send(map[string]any{"jsonrpc": "2.0", "id": "perm-1", "method": "session/request_permission", "params": map[string]any{}})
		case "child":
			c := exec.Command("sleep", "300")
			if err := c.Start(); err != nil {
				return 1
			}
			send(map[string]any{"jsonrpc": "2.0", "id": msg.ID, "result": map[string]any{"pid": c.Process.Pid}})
		default:
			send(map[string]any{"jsonrpc": "2.0", "method": "fake/echo", "params": map[string]any{"method": msg.Method}})
			send(map[string]any{"jsonrpc": "2.0", "id": msg.ID, "result": map[string]any{"echoed": msg.Params}})
		}
		out.Flush()
	}
	out.Flush()
	return 0
}
