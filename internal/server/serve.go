package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Closer is a capability that owns long-lived resources (agent processes,
// user processes, open streams) and must release them on shutdown.
type Closer interface {
	Close(ctx context.Context) error
}

// ErrShuttingDown is the cause of every request context's cancellation at
// shutdown (see ShuttingDown).
var ErrShuttingDown = errors.New("server shutting down")

// ShuttingDown reports whether ctx (a request's context or one derived from
// it) ended because the server is shutting down, so a handler can answer
// 503 server_shutting_down instead of treating it as a client that left.
func ShuttingDown(ctx context.Context) bool {
	return errors.Is(context.Cause(ctx), ErrShuttingDown)
}

// Shutdown bounds. A client that stopped reading (a stalled SSE or
// WebSocket reader, a body that never arrives) must not hold the exit:
// handlers get shutdownGrace to answer, then every connection still open
// is closed under them; capabilities get closeTimeout to stop their
// process groups. Together they keep SIGTERM-to-exit under two seconds.
const (
	shutdownGrace = time.Second
	closeTimeout  = 1500 * time.Millisecond
)

// Timeouts are the connection-level bounds of Serve.
type Timeouts struct {
	// ReadHeader bounds reading a request's headers (default 30 s).
	ReadHeader time.Duration
	// Idle closes a keep-alive connection that sends no new request
	// (default DefaultIdleTimeout).
	Idle time.Duration
}

// DefaultIdleTimeout is how long an idle keep-alive connection stays open.
const DefaultIdleTimeout = 60 * time.Second

// Serve serves h on ln until ctx ends, then shuts down gracefully: stop
// accepting, end every stream (request contexts are cancelled with
// ErrShuttingDown), close the capabilities (killing their process groups),
// give handlers shutdownGrace to answer and close what is left.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger, to Timeouts, closers ...Closer) error {
	if to.ReadHeader <= 0 {
		to.ReadHeader = 30 * time.Second
	}
	if to.Idle <= 0 {
		to.Idle = DefaultIdleTimeout
	}
	baseCtx, cancelBase := context.WithCancelCause(context.Background())
	defer cancelBase(ErrShuttingDown)
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: to.ReadHeader,
		IdleTimeout:       to.Idle,
		BaseContext:       func(net.Listener) context.Context { return baseCtx },
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	// Stop accepting first, then end streams so Shutdown does not wait on them.
	gctx, cancelGrace := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancelGrace()
	shutdownErr := make(chan error, 1)
	go func() { shutdownErr <- srv.Shutdown(gctx) }()
	cancelBase(ErrShuttingDown)
	cctx, cancelClose := context.WithTimeout(context.Background(), closeTimeout)
	defer cancelClose()
	var errs []error
	for _, c := range closers {
		if err := c.Close(cctx); err != nil {
			errs = append(errs, err)
		}
	}
	if err := <-shutdownErr; err != nil {
		// Expected with a client that stopped reading: not a failed exit.
		log.Warn("closing connections still open after the shutdown grace", "grace", shutdownGrace, "error", err)
		_ = srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
