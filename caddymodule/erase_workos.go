package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	"github.com/piivault/piivault/proxy"
	"github.com/piivault/piivault/vault"
)

// workosStoreFromConfig returns the workos store that config configures, or nil when
// its pii_vault store is another one.
func workosStoreFromConfig(config, adapter string) (*WorkOSStore, error) {
	raw, _, _, err := caddycmd.LoadConfig(config, adapter)
	if err != nil {
		return nil, err
	}
	var cfg struct {
		Apps struct {
			PIIVault *App `json:"pii_vault"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("reading %s: %w", config, err)
	}
	app := cfg.Apps.PIIVault
	if app == nil || app.StoreRaw == nil {
		return nil, nil
	}

	var store struct {
		Module string `json:"module"`
		WorkOSStore
	}
	if err := json.Unmarshal(app.StoreRaw, &store); err != nil {
		return nil, fmt.Errorf("reading the pii_vault store of %s: %w", config, err)
	}
	if store.Module != "workos" {
		return nil, nil
	}
	return &store.WorkOSStore, nil
}

// runEraseWorkOS erases one object, or every object that piivault created for a key
// context, from WorkOS Vault. WorkOS has no tenant keys, so a tenant is erased object
// by object, found by the name prefix that piivault gives them.
func runEraseWorkOS(ws *WorkOSStore, id string, kc vault.KeyContext, dryRun bool, out io.Writer) (int, error) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := ws.Provision(ctx); err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	defer ws.Cleanup()
	store := ws.Store()

	ids := []string{id}
	if kc != nil {
		var err error
		if ids, err = tenantObjects(ctx, store, kc); err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
	}
	if dryRun {
		fmt.Fprintf(out, "would delete %d objects\n", len(ids))
		return caddy.ExitCodeSuccess, nil
	}

	deleted := 0
	for _, id := range ids {
		err := store.Delete(ctx, id)
		switch {
		case errors.Is(err, vault.ErrNotFound) && kc != nil:
			// deleted by someone else since the listing
		case err != nil:
			fmt.Fprintf(out, "deleted %d objects before an error\n", deleted)
			return caddy.ExitCodeFailedStartup, err
		default:
			deleted++
		}
	}
	fmt.Fprintf(out, "deleted %d objects\n", deleted)
	return caddy.ExitCodeSuccess, nil
}

// tenantObjects lists the objects that piivault created for kc. The name prefix finds
// them, and the context check keeps out the objects of a tenant whose context value
// only starts with kc's, such as org_1:x for org_1.
func tenantObjects(ctx context.Context, store vault.Store, kc vault.KeyContext) ([]string, error) {
	metas, err := store.List(ctx, proxy.ObjectNamePrefix(kc))
	if err != nil {
		return nil, fmt.Errorf("listing the tenant's objects: %w", err)
	}
	var ids []string
	for _, m := range metas {
		if m.Context.Equal(kc) {
			ids = append(ids, m.ID)
		}
	}
	return ids, nil
}
