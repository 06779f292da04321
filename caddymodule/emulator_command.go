package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/piivault/piivault/vault/emulator"
	"github.com/piivault/piivault/vault/local"
)

func emulatorCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "emulator --listen <addr> --api-key <key>",
		Short: "Serve the WorkOS Vault HTTP API from an embedded store",
		Long: `
Serves the WorkOS Vault HTTP API (objects and data keys) from an embedded local
store, for development and tests of the workos store without a WorkOS account.
Point the workos store's endpoint at it, for example http://127.0.0.1:8081.`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().String("listen", "127.0.0.1:8081", "address to listen on")
	cmd.Flags().String("api-key", "", "API key that clients must send as a bearer token (required)")
	cmd.Flags().String("path", "",
		"store file; default pii_vault/emulator.db under Caddy's data directory, with its key in emulator.key beside it")
	cmd.RunE = caddycmd.WrapCommandFuncForCobra(runEmulator)
	return cmd
}

func runEmulator(fl caddycmd.Flags) (int, error) {
	apiKey := fl.String("api-key")
	if apiKey == "" {
		return caddy.ExitCodeFailedStartup, errors.New("--api-key is required")
	}
	path := fl.String("path")
	if path == "" {
		path = filepath.Join(caddy.AppDataDir(), "pii_vault", "emulator.db")
	}

	key, _, err := local.LoadOrCreateKeyFile(filepath.Join(filepath.Dir(path), "emulator.key"))
	if err != nil {
		return caddy.ExitCodeFailedStartup, fmt.Errorf("emulator key: %w", err)
	}
	store, err := local.Open(path, key, local.Options{})
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	defer store.Close()

	ln, err := net.Listen("tcp", fl.String("listen"))
	if err != nil {
		return caddy.ExitCodeFailedStartup, fmt.Errorf("listening: %w", err)
	}
	caddy.Log().Info("serving the WorkOS Vault emulator",
		zap.String("address", ln.Addr().String()), zap.String("store", path))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := emulator.Serve(ctx, ln, emulator.New(store, apiKey)); err != nil {
		return caddy.ExitCodeFailedQuit, err
	}
	return caddy.ExitCodeSuccess, nil
}
