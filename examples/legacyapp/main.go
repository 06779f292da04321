// Command legacyapp runs the example users API that piivault protects in the demos.
//
// It stores whatever JSON it receives, per organization, in one JSON file, so that
// anyone can open the file and see what the app holds: behind piivault, object IDs.
//
//	go run ./examples/legacyapp -listen 127.0.0.1:9001 -data ./data/legacyapp.json
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/piivault/piivault/examples/legacyapp/app"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9001", "TCP address (host:port) to listen on")
	dataPath := flag.String("data", "./data/legacyapp.json",
		"path of the JSON data file; its directory is created if missing")
	flag.Parse()

	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if err := run(ctx, logger, *listen, *dataPath); err != nil {
		logger.Error("legacyapp failed", "error", err)
		os.Exit(1)
	}
}

// run serves the app until ctx is done, then shuts down gracefully.
func run(ctx context.Context, logger *slog.Logger, listen, dataPath string) error {
	users, err := app.New(dataPath, app.WithLogger(logger))
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", listen, err)
	}
	srv := &http.Server{
		Handler:           users,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	logger.Info("legacyapp started", "address", ln.Addr().String(), "data_file", users.DataPath())

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	select {
	case err := <-served:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}

	// let requests in flight finish, so that their writes reach the file
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutting down: %w", err)
	}
	logger.Info("legacyapp stopped")
	return nil
}
