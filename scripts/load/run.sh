#!/usr/bin/env bash
# Measures piivault against plain Caddy on this machine: builds bin/caddy and the load
# program, then runs every scenario against Caddy A (no pii_vault) and Caddy B (with it)
# on 127.0.0.1, and prints a Markdown report. Extra arguments go to the load program,
# such as -rounds 5 -duration 5s -scenarios nomatch,reveal10.
#
# Needs: Go (the version in go.mod) and Linux (/proc for CPU time and memory). The load
# generator is vegeta (github.com/tsenart/vegeta/v12), a Go module that the build
# fetches through the Go module proxy; nothing else is installed. With the defaults the
# run takes about five minutes after the build.
set -euo pipefail
cd "$(dirname "$0")/../.."

mkdir -p bin
go build -o bin/caddy ./cmd/caddy
go -C scripts/load build -o ../../bin/load .
exec bin/load -caddy bin/caddy "$@"
