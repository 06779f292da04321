package caddymodule

import (
	"errors"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

func emulatorCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "emulator --listen <addr> --api-key <key>",
		Short: "Serve the WorkOS Vault HTTP API from an embedded store",
		Args:  cobra.NoArgs,
	}
	cmd.Flags().String("listen", "127.0.0.1:8081", "address to listen on")
	cmd.Flags().String("api-key", "", "API key that clients must send as a bearer token")
	cmd.Flags().String("path", "", "store file; default pii_vault/emulator.db under Caddy's data directory")
	cmd.RunE = caddycmd.WrapCommandFuncForCobra(runEmulator)
	return cmd
}

func runEmulator(fl caddycmd.Flags) (int, error) {
	// TODO: serve vault/emulator once it lands.
	return caddy.ExitCodeFailedStartup, errors.New("the emulator is not built yet")
}
