package sqlite_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/internal/testutil/syncbuf"

	"github.com/coder/quartz"

	"github.com/sandbox-agent-go/sandbox-agent/multiplayer/backend"
	"github.com/sandbox-agent-go/sandbox-agent/multiplayer/backend/backendtest"
	"github.com/sandbox-agent-go/sandbox-agent/multiplayer/backend/sqlite"
)

const helperEnvDir = "MP_SQLITE_HELPER_DIR"

// helperMain runs the child process of TestKillAndReopen when the
// environment asks for it, and then exits.
func helperMain() bool {
	dir := os.Getenv(helperEnvDir)
	if dir == "" {
		return false
	}
	if err := helper(dir); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
	os.Exit(0)
	return true
}

// helper writes an actor's state, events, KV item and schedule, says
// "ready <actor id> <node id>" and waits to be killed (or for 30 s).
func helper(dir string) error {
	ctx := context.Background()
	b, err := sqlite.Open(ctx, sqlite.Options{Dir: dir})
	if err != nil {
		return err
	}
	a, _, err := b.GetOrCreate(ctx, "workspace", []string{"ws-1"}, json.RawMessage(`{"sandboxId":"sb"}`))
	if err != nil {
		return err
	}
	o, err := b.Claim(ctx, a.ID)
	if err != nil {
		return err
	}
	if err := o.SaveState(ctx, []byte(`{"n":3}`)); err != nil {
		return err
	}
	for i := 1; i <= 3; i++ {
		if _, err := o.Append(ctx, "tick", json.RawMessage(fmt.Sprintf(`[%d]`, i))); err != nil {
			return err
		}
	}
	if err := o.Put(ctx, "sessions", "default", []byte("record")); err != nil {
		return err
	}
	if err := o.AddSchedule(ctx, backend.Schedule{ID: "wake", ActorID: a.ID, At: time.UnixMilli(1_700_000_000_000), Action: "wake", Args: json.RawMessage(`[]`)}); err != nil {
		return err
	}
	fmt.Printf("ready %s %s\n", a.ID, b.NodeID())
	time.Sleep(30 * time.Second) // the parent kills us long before
	return errors.New("not killed")
}

// TestKillAndReopen kills -9 a process that owns an actor (so it never
// releases it or closes the database) and reopens its directory: the lock
// is free, the next Claim has the next generation, everything written is
// there.
func TestKillAndReopen(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnvDir+"="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		lines <- line
	}()
	var line string
	select {
	case line = <-lines:
	case <-ctx.Done():
		t.Fatalf("the helper never became ready: %s", stderr.String())
	}
	var actorID, nodeID string
	if _, err := fmt.Sscanf(line, "ready %s %s", &actorID, &nodeID); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("helper said %q (%v); stderr: %s", line, err, stderr.String())
	}

	// While it lives, the directory is locked to this process too.
	if _, err := sqlite.Open(ctx, sqlite.Options{Dir: dir}); !errors.Is(err, sqlite.ErrLocked) || !strings.Contains(err.Error(), dir) {
		t.Errorf("Open while another process holds the dir: %v, want ErrLocked naming %s", err, dir)
	}

	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	_ = cmd.Wait()

	b := open(t, dir)
	if b.NodeID() != nodeID {
		t.Errorf("node id %q after reopen, want the directory's %q", b.NodeID(), nodeID)
	}
	o, err := b.Claim(ctx, actorID)
	if err != nil {
		t.Fatalf("Claim after the owner was killed: %v", err)
	}
	if o.Generation() != 2 {
		t.Errorf("generation %d, want 2", o.Generation())
	}
	if s, ok, err := o.LoadState(ctx); err != nil || !ok || string(s) != `{"n":3}` {
		t.Errorf("state after the kill: %q, %v, %v", s, ok, err)
	}
	evs, err := b.Events(ctx, actorID, 0, 0)
	if err != nil || len(evs) != 3 {
		t.Fatalf("events after the kill: %+v, %v", evs, err)
	}
	for i, e := range evs {
		if e.Seq != uint64(i+1) || e.Generation != 1 || string(e.Args) != fmt.Sprintf("[%d]", i+1) {
			t.Errorf("event %d: %+v", i, e)
		}
	}
	if ev, err := o.Append(ctx, "after", json.RawMessage(`[]`)); err != nil || ev.Seq != 4 || ev.Generation != 2 {
		t.Errorf("Append after the kill: %+v, %v; want seq 4 generation 2", ev, err)
	}
	if v, err := o.Get(ctx, "sessions", "default"); err != nil || string(v) != "record" {
		t.Errorf("KV after the kill: %q, %v", v, err)
	}
	if due, err := b.DueSchedules(ctx, time.UnixMilli(1_700_000_000_000), 10); err != nil || len(due) != 1 || due[0].ID != "wake" {
		t.Errorf("schedules after the kill: %+v, %v", due, err)
	}
	if a, err := b.Get(ctx, "workspace", []string{"ws-1"}); err != nil || a.ID != actorID || string(a.Input) != `{"sandboxId":"sb"}` {
		t.Errorf("registry after the kill: %+v, %v", a, err)
	}
}

func TestOpenTwiceLocked(t *testing.T) {
	dir := t.TempDir()
	b, err := sqlite.Open(t.Context(), sqlite.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	_, err = sqlite.Open(t.Context(), sqlite.Options{Dir: dir})
	if !errors.Is(err, sqlite.ErrLocked) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("second Open: %v, want ErrLocked naming %s", err, dir)
	}
	node := b.NodeID()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	// Close gives the directory back, and its node id stays.
	b2 := open(t, dir)
	if b2.NodeID() != node || !strings.HasPrefix(node, "local-") {
		t.Fatalf("node id %q after reopen, want %q", b2.NodeID(), node)
	}
}

// TestReopenAfterClose: a clean Close released the owners; generations,
// state and events carry on.
func TestReopenAfterClose(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	b, err := sqlite.Open(ctx, sqlite.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	a, err := b.Create(ctx, "room", []string{"r"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	o, err := b.Claim(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.Append(ctx, "e", json.RawMessage(`[]`)); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b2 := open(t, dir)
	o2, err := b2.Claim(ctx, a.ID)
	if err != nil || o2.Generation() != 2 {
		t.Fatalf("Claim after reopen: %v, generation %v", err, o2)
	}
	if ev, err := o2.Append(ctx, "e", json.RawMessage(`[]`)); err != nil || ev.Seq != 2 {
		t.Fatalf("Append after reopen: %+v, %v", ev, err)
	}
}

func TestOpenBadDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"", file, filepath.Join(file, "sub")} {
		if b, err := sqlite.Open(t.Context(), sqlite.Options{Dir: dir}); err == nil {
			b.Close()
			t.Errorf("Open(%q) succeeded", dir)
		}
	}
}

func TestClock(t *testing.T) {
	clock := quartz.NewMock(t)
	start := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	clock.Set(start)
	b, err := sqlite.Open(t.Context(), sqlite.Options{Dir: t.TempDir(), Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	a, err := b.Create(t.Context(), "room", nil, nil)
	if err != nil || !a.CreatedAt.Equal(start) {
		t.Fatalf("CreatedAt %v, %v; want %v", a.CreatedAt, err, start)
	}
	if l, err := b.Lookup(t.Context(), a.ID); err != nil || !l.CreatedAt.Equal(start) {
		t.Fatalf("stored CreatedAt %v, %v; want %v", l.CreatedAt, err, start)
	}
	clock.Advance(time.Hour)
	o, err := b.Claim(t.Context(), a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.Append(t.Context(), "e", nil); err != nil {
		t.Fatal(err)
	}
	evs, err := b.Events(t.Context(), a.ID, 0, 1)
	if err != nil || len(evs) != 1 || !evs[0].Time.Equal(start.Add(time.Hour)) {
		t.Fatalf("event time %+v, %v; want %v", evs, err, start.Add(time.Hour))
	}
}

// syncBuffer: see internal/testutil/syncbuf.
type syncBuffer = syncbuf.Buffer

// TestSlowSubscriber: a subscriber that does not keep up has its queue
// fill, then misses messages; the publisher never waits for it (Publish
// returns while the subscriber is blocked), and one warning is logged per
// overflow.
func TestSlowSubscriber(t *testing.T) {
	var logs syncBuffer
	b, err := sqlite.Open(t.Context(), sqlite.Options{
		Dir:             t.TempDir(),
		Logger:          slog.New(slog.NewTextHandler(&logs, nil)),
		SubscriberQueue: 4,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	entered, unblock := make(chan struct{}), make(chan struct{})
	got := make(chan string, 64)
	var once sync.Once
	stopSlow, err := b.Bus().Subscribe("a", func(msg []byte) {
		once.Do(func() {
			close(entered)
			<-unblock
		})
		got <- string(msg)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stopSlow()
	publish := func(msg string) {
		t.Helper()
		if err := b.Bus().Publish(ctx, "a", []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	publish("m0")
	select {
	case <-entered: // m0 is being delivered, the queue is empty
	case <-ctx.Done():
		t.Fatal("m0 was never delivered")
	}
	for i := 1; i <= 10; i++ { // m1..m4 fill the queue, m5..m10 are dropped
		publish(fmt.Sprint("m", i))
	}
	close(unblock)
	next := func() string {
		t.Helper()
		select {
		case m := <-got:
			return m
		case <-ctx.Done():
			t.Fatal("the slow subscriber stopped getting messages")
			return ""
		}
	}
	var slow []string
	for range 5 {
		slow = append(slow, next())
	}
	// The queue is empty again: the next message gets through, and proves
	// that the dropped ones are not coming.
	publish("end")
	slow = append(slow, next())
	if want := []string{"m0", "m1", "m2", "m3", "m4", "end"}; fmt.Sprint(slow) != fmt.Sprint(want) {
		t.Errorf("slow subscriber got %v, want %v", slow, want)
	}
	if n := strings.Count(logs.String(), "slow subscriber"); n != 1 {
		t.Errorf("%d warnings for one overflow, want 1:\n%s", n, logs.String())
	}
}

// TestCloseWhileWriting: writes racing Close either land or fail with
// ErrClosed/ErrFenced; nothing panics or hangs.
func TestCloseWhileWriting(t *testing.T) {
	b, err := sqlite.Open(t.Context(), sqlite.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	a, err := b.Create(ctx, "room", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	o, err := b.Claim(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	started := make(chan struct{}, 4)
	for range 4 {
		wg.Go(func() {
			started <- struct{}{}
			for {
				_, err := o.Append(ctx, "e", json.RawMessage(`[]`))
				if errors.Is(err, backend.ErrClosed) || errors.Is(err, backend.ErrFenced) {
					return
				}
				if err != nil {
					t.Errorf("Append racing Close: %v", err)
					return
				}
			}
		})
	}
	for range 4 {
		<-started
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
}

func BenchmarkAppend(b *testing.B) {
	backendtest.BenchmarkAppend(b, open(b, b.TempDir()))
}

func BenchmarkSaveState(b *testing.B) {
	backendtest.BenchmarkSaveState(b, open(b, b.TempDir()))
}
