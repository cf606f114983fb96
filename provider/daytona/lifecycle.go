package daytona

import (
	"context"
	"fmt"
	"net/http"

	"github.com/sandbox-agent-go/sandbox-agent/provider/internal/remote"
)

// settle polls the sandbox until done says so, bounded by ctx and
// CreateTimeout, as Daytona's SDK waits for a state. "error" and
// "build_failed" end the wait with the sandbox's errorReason; a 404 is
// *sandboxagent.SandboxDestroyedError.
func (p *Provider) settle(ctx context.Context, id, want string, done func(context.Context, sandbox) (bool, error)) (sandbox, error) {
	ctx, cancel := context.WithTimeout(ctx, p.o.CreateTimeout)
	defer cancel()
	var pl remote.Poll // Daytona SDK's schedule: 100 ms, ×1.1 after 10 checks, ≤ 1 s
	for {
		sb, err := p.cp.get(ctx, id)
		if err != nil {
			return sb, err
		}
		if sb.State == stateError || sb.State == stateBuildFailed {
			return sb, fmt.Errorf("daytona: sandbox %s is in state %s: %s", id, sb.State, sb.ErrorReason)
		}
		ok, err := done(ctx, sb)
		if ok || err != nil {
			return sb, err
		}
		if err := pl.Wait(ctx); err != nil {
			return sb, fmt.Errorf("daytona: sandbox %s did not become %s (state %s): %w", id, want, sb.State, err)
		}
	}
}

// ensureStarted brings the sandbox to "started": it waits for a boot or
// another transition, and starts it if Daytona stopped, archived or
// paused it (auto-stop).
func (p *Provider) ensureStarted(ctx context.Context, id string) (sandbox, error) {
	return p.settle(ctx, id, stateStarted, func(ctx context.Context, sb sandbox) (bool, error) {
		switch sb.State {
		case stateStarted:
			return true, nil
		case stateStopped, stateArchived, statePaused:
			p.o.Logger.Info("daytona: starting the sandbox", "sandboxId", id, "state", sb.State)
			// 409: another transition got there first; keep polling.
			if err := p.cp.lifecycle(ctx, id, "start sandbox", "start"); err != nil && !isStatus(err, http.StatusConflict) {
				return false, err
			}
			p.previews.forget(id)
		}
		return false, nil
	})
}

// Pause stops the sandbox (POST /stop) and waits until it is "stopped".
// Daytona keeps its filesystem but not its processes; EnsureServer (or
// Start with its id) starts it and the server again. Daytona's /pause
// exists only for some sandbox classes, so it is not used.
func (p *Provider) Pause(ctx context.Context, id string) error {
	if err := p.cp.lifecycle(ctx, id, "stop sandbox", "stop"); err != nil && !isStatus(err, http.StatusConflict) {
		return err
	}
	p.previews.forget(id)
	_, err := p.settle(ctx, id, stateStopped, func(_ context.Context, sb sandbox) (bool, error) {
		return sb.State == stateStopped, nil
	})
	return err
}
