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

// ShutdownTimeout bounds the whole graceful shutdown.
const ShutdownTimeout = 10 * time.Second

// Serve serves h on ln until ctx ends, then shuts down gracefully: stop
// accepting, end every stream (request contexts are cancelled), close the
// capabilities (killing their process groups) and wait for handlers.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger, closers ...Closer) error {
	baseCtx, cancelBase := context.WithCancelCause(context.Background())
	defer cancelBase(ErrShuttingDown)
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
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
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	// Stop accepting first, then end streams so Shutdown does not wait on them.
	shutdownErr := make(chan error, 1)
	go func() { shutdownErr <- srv.Shutdown(sctx) }()
	cancelBase(ErrShuttingDown)
	var errs []error
	for _, c := range closers {
		if err := c.Close(sctx); err != nil {
			errs = append(errs, err)
		}
	}
	if err := <-shutdownErr; err != nil {
		errs = append(errs, err)
		_ = srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
