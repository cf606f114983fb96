package sandboxagent

import (
	"bytes"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestHTTPAPI(t *testing.T) {
	srv := startTestServer(t)
	c := connectTest(t, srv, nil)
	ctx := t.Context()

	if h, err := c.GetHealth(ctx); err != nil || h.Status != "ok" {
		t.Fatalf("health %+v %v", h, err)
	}
	agents, err := c.ListAgents(ctx, AgentQuery{})
	if err != nil || len(agents) == 0 || agents[len(agents)-1].ID != "mock" {
		t.Fatalf("agents %v %v", agents, err)
	}
	mock, err := c.GetAgent(ctx, "mock", AgentQuery{Config: true})
	if err != nil || len(mock.ConfigOptions) == 0 {
		t.Fatalf("mock %+v %v", mock, err)
	}
	_, err = c.GetAgent(ctx, "nope", AgentQuery{})
	var apiErr *Error
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest || apiErr.Problem == nil ||
		apiErr.Problem.Type != "urn:sandbox-agent:error:unsupported_agent" {
		t.Fatalf("unsupported agent: %#v", err)
	}

	dir := t.TempDir()
	f := filepath.Join(dir, "a", "b.txt")
	w, err := c.WriteFile(ctx, f, strings.NewReader("hello"))
	if err != nil || w.BytesWritten != 5 {
		t.Fatalf("write %+v %v", w, err)
	}
	var buf bytes.Buffer
	if n, err := c.ReadFile(ctx, f, &buf); err != nil || n != 5 || buf.String() != "hello" {
		t.Fatalf("read %d %q %v", n, buf.String(), err)
	}
	st, err := c.Stat(ctx, f)
	if err != nil || st.EntryType != "file" || st.Size != 5 {
		t.Fatalf("stat %+v %v", st, err)
	}
	if _, err := c.Mkdir(ctx, filepath.Join(dir, "m")); err != nil {
		t.Fatal(err)
	}
	if err := c.Move(ctx, f, filepath.Join(dir, "m", "c.txt"), MoveOptions{}); err != nil {
		t.Fatal(err)
	}
	ents, err := c.ListEntries(ctx, filepath.Join(dir, "m"))
	if err != nil || len(ents) != 1 || ents[0].Name != "c.txt" {
		t.Fatalf("entries %+v %v", ents, err)
	}
	if err := c.DeleteEntry(ctx, filepath.Join(dir, "m"), DeleteEntryOptions{Recursive: true}); err != nil {
		t.Fatal(err)
	}

	run, err := c.RunProcess(ctx, RunProcessRequest{Command: "sh", Args: []string{"-c", "echo out; exit 3"}})
	if err != nil || run.ExitCode == nil || *run.ExitCode != 3 || run.Stdout != "out\n" {
		t.Fatalf("run %+v %v", run, err)
	}
	p, err := c.CreateProcess(ctx, CreateProcessRequest{Command: "sh", Args: []string{"-c", "echo one; echo two"}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for e, err := range c.FollowProcessLogs(ctx, p.ID, ProcessLogsQuery{}) {
		if err != nil {
			t.Fatal(err)
		}
		b, _ := e.Bytes()
		got = append(got, string(b))
		if strings.Contains(strings.Join(got, ""), "two") {
			break
		}
	}
	if s := strings.Join(got, ""); s != "one\ntwo\n" {
		t.Fatalf("logs %q", s)
	}

	tty, err := c.CreateProcess(ctx, CreateProcessRequest{Command: "cat", TTY: true, Interactive: true})
	if err != nil {
		t.Fatal(err)
	}
	term, err := c.ConnectProcessTerminal(ctx, tty.ID)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := term.Read(ctx)
	if err != nil || ev.Type != "ready" {
		t.Fatalf("first frame %+v %v", ev, err)
	}
	if err := term.Write(ctx, []byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for ev, err := range term.Events(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		out.Write(ev.Data)
		if strings.Contains(out.String(), "ping") {
			break
		}
	}
	_ = term.Close()
	if _, err := c.KillProcess(ctx, tty.ID, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteProcess(ctx, tty.ID); err != nil {
		t.Fatal(err)
	}
	procs, err := c.ListProcesses(ctx, "")
	if err != nil || len(procs) != 1 {
		t.Fatalf("processes %+v %v", procs, err)
	}
	if _, err := c.ListAcpServers(ctx); err != nil {
		t.Fatal(err)
	}
}
