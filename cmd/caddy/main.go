// Command caddy is Caddy with the piivault modules plugged in, the same binary that
// `xcaddy build --with github.com/piivault/piivault` produces.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// plug in Caddy's standard modules and piivault's
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/piivault/piivault/caddymodule"
)

func main() {
	caddycmd.Main()
}
