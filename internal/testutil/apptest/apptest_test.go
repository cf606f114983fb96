package apptest_test

import (
	"net/http"
	"testing"

	"go.uber.org/goleak"

	"github.com/sandbox-agent-go/sandbox-agent/internal/testutil/apptest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func status(t *testing.T, s *apptest.Server, token string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "GET", s.URL+"/v1/agents", nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	res.Body.Close()
	return res.StatusCode
}

func TestStartKillRestart(t *testing.T) {
	s := apptest.Start(t, apptest.Options{Token: "tok"})
	if got := status(t, s, ""); got != http.StatusUnauthorized {
		t.Fatalf("without the token: %d, want 401", got)
	}
	if got := status(t, s, s.Token); got != http.StatusOK {
		t.Fatalf("with the token: %d, want 200", got)
	}
	s.Kill()
	if s.App() != nil {
		t.Fatal("App after Kill")
	}
	if got := status(t, s, s.Token); got != 0 {
		t.Fatalf("killed server answered %d", got)
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if got := status(t, s, s.Token); got != http.StatusOK {
		t.Fatalf("after Restart: %d, want 200 on the same URL", got)
	}
}
