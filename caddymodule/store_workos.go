package caddymodule

import (
	"errors"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/piivault/piivault/vault"
	"github.com/piivault/piivault/vault/workos"
)

func init() {
	caddy.RegisterModule(WorkOSStore{})
}

// WorkOSStore keeps objects in WorkOS Vault. The sidecar then holds no state, so it
// scales out with the application.
type WorkOSStore struct {
	// APIKey is the WorkOS API key; placeholders such as {env.WORKOS_API_KEY} are
	// expanded. Required.
	APIKey string `json:"api_key,omitempty"`

	// Endpoint is the base URL of the WorkOS API. Default https://api.workos.com. Plain
	// http is accepted for loopback hosts only, such as `caddy pii emulator`.
	Endpoint string `json:"endpoint,omitempty"`

	// Timeout bounds each vault call with its retries. Default 10s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// Rate is the number of calls per second sent at most. Default 90, under WorkOS's
	// 6,000 calls per minute per API key; sidecars that share a key share that limit.
	Rate float64 `json:"rate,omitempty"`

	// MaxConcurrency is the number of calls of one request in flight at once. Default 20.
	MaxConcurrency int `json:"max_concurrency,omitempty"`

	// MetadataCacheSize is the number of objects whose metadata (never values) is
	// cached. Default 10,000; negative disables the cache.
	MetadataCacheSize int `json:"metadata_cache_size,omitempty"`

	store *workos.Store
}

// CaddyModule returns the Caddy module information.
func (WorkOSStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "pii_vault.stores.workos",
		New: func() caddy.Module { return new(WorkOSStore) },
	}
}

// Provision sets up the client. It makes no call, so `caddy validate` works offline.
func (s *WorkOSStore) Provision(ctx caddy.Context) error {
	repl := caddy.NewReplacer()
	key := repl.ReplaceKnown(s.APIKey, "")
	if key == "" {
		return errors.New("workos store: api_key is empty: set it, for example to {env.WORKOS_API_KEY}")
	}

	store, err := workos.New(workos.Config{
		APIKey:            key,
		Endpoint:          repl.ReplaceKnown(s.Endpoint, ""),
		Timeout:           time.Duration(s.Timeout),
		Rate:              s.Rate,
		MaxConcurrency:    s.MaxConcurrency,
		MetadataCacheSize: s.MetadataCacheSize,
		Logger:            ctx.Logger(),
	})
	if err != nil {
		return fmt.Errorf("workos store: %w", err)
	}
	s.store = store
	return nil
}

// Store returns the store.
func (s *WorkOSStore) Store() vault.Store { return s.store }

// Cleanup waits for calls that outlive their request, such as deletes of failed
// creates.
func (s *WorkOSStore) Cleanup() error {
	if s.store == nil {
		return nil
	}
	return s.store.Close()
}

// UnmarshalCaddyfile sets up the WorkOS store from Caddyfile tokens. Syntax:
//
//	store workos {
//		api_key             <key>      # such as {env.WORKOS_API_KEY}
//		endpoint            <url>
//		timeout             <duration>
//		rate                <calls per second>
//		max_concurrency     <n>
//		metadata_cache_size <n>
//	}
func (s *WorkOSStore) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // module name
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "api_key":
			err = parseString(d, &s.APIKey)
		case "endpoint":
			err = parseString(d, &s.Endpoint)
		case "timeout":
			err = parseDuration(d, &s.Timeout)
		case "rate":
			err = parseFloat(d, &s.Rate)
		case "max_concurrency":
			err = parseInt(d, &s.MaxConcurrency)
		case "metadata_cache_size":
			err = parseInt(d, &s.MetadataCacheSize)
		default:
			err = d.Errf("unrecognized workos store option: %s", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Interface guards
var (
	_ StoreModule           = (*WorkOSStore)(nil)
	_ caddy.Provisioner     = (*WorkOSStore)(nil)
	_ caddy.CleanerUpper    = (*WorkOSStore)(nil)
	_ caddyfile.Unmarshaler = (*WorkOSStore)(nil)
)
