package emulator

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"
)

// shutdownTimeout bounds how long Serve waits for calls in flight when ctx is done.
const shutdownTimeout = 5 * time.Second

// Serve serves e on ln until ctx is done, then releases hung calls, waits up to five
// seconds for calls in flight and returns nil. It returns the error that ends serving
// otherwise. It is what `caddy pii emulator --listen 127.0.0.1:PORT --api-key KEY` runs.
func Serve(ctx context.Context, ln net.Listener, e *Emulator) error {
	srv := &http.Server{
		Handler:           e,
		ReadHeaderTimeout: 10 * time.Second,
	}

	// also stop the shutdown goroutine when serving fails on its own
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		e.Close()
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	}()

	err := srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		<-stopped
		return nil
	}
	return err
}
