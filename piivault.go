// Package piivault plugs the piivault modules into a Caddy build. Import it, or build
// with `xcaddy build --with github.com/piivault/piivault`, to get the pii_vault app, the
// http.handlers.pii_vault handler, the vault stores and the `caddy pii` subcommands.
//
// The modules live in package caddymodule; the work is done by packages proxy, rules
// and vault.
package piivault

import (
	// register the Caddy modules
	_ "github.com/piivault/piivault/caddymodule"
)
