#!/usr/bin/env bash
# Runs the example legacy app on 127.0.0.1:9001 and piivault in front of it on
# 127.0.0.1:8080, with the embedded vault in ./data. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."

mkdir -p bin data
go build -o bin/caddy ./cmd/caddy
go build -o bin/legacyapp ./examples/legacyapp

bin/legacyapp -listen 127.0.0.1:9001 -data data/legacyapp.json &
app=$!
trap 'kill "$app" 2>/dev/null || true' EXIT

echo "piivault on http://127.0.0.1:8080, the app's storage in data/legacyapp.json"
bin/caddy run --config Caddyfile --adapter caddyfile
