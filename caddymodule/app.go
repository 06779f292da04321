// Package caddymodule plugs piivault into Caddy: the pii_vault app that owns the vault
// store, the http.handlers.pii_vault handler, the store modules, the Caddyfile syntax and
// the `caddy pii` subcommands. The work itself is done by the proxy, rules and vault
// packages; this package only configures them.
package caddymodule

import (
	"encoding/json"
	"fmt"

	"github.com/caddyserver/caddy/v2"

	"github.com/piivault/piivault/vault"
)

func init() {
	caddy.RegisterModule(App{})
}

// App is the pii_vault app: the vault store that every pii_vault handler of the
// configuration shares. Without it, handlers use the local store with its defaults.
type App struct {
	// StoreRaw is the store module, in the pii_vault.stores namespace. Default: local.
	StoreRaw json.RawMessage `json:"store,omitempty" caddy:"namespace=pii_vault.stores inline_key=module"`

	store StoreModule
}

// StoreModule is a module of the pii_vault.stores namespace.
type StoreModule interface {
	caddy.Module

	// Store returns the provisioned store.
	Store() vault.Store
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "pii_vault",
		New: func() caddy.Module { return new(App) },
	}
}

// Provision loads the store module, or the local store with its defaults.
func (a *App) Provision(ctx caddy.Context) error {
	if a.StoreRaw == nil {
		a.StoreRaw = json.RawMessage(`{"module":"local"}`)
	}
	mod, err := ctx.LoadModule(a, "StoreRaw")
	if err != nil {
		return fmt.Errorf("loading vault store: %w", err)
	}

	store, ok := mod.(StoreModule)
	if !ok {
		return fmt.Errorf("module %T is not a vault store", mod)
	}
	a.store = store
	return nil
}

// Store returns the vault store of the app.
func (a *App) Store() vault.Store { return a.store.Store() }

// Start opens the store, for stores that open at start rather than at provision time,
// so that `caddy validate` does not open them.
func (a *App) Start() error {
	if s, ok := a.store.(starter); ok {
		return s.Start()
	}
	return nil
}

// Stop implements caddy.App. Stores close in their Cleanup, after the configuration that
// replaces this one has opened its own, so that reloads share one open store.
func (a *App) Stop() error { return nil }

// Interface guards
var (
	_ caddy.App         = (*App)(nil)
	_ caddy.Provisioner = (*App)(nil)
)
