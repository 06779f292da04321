#!/usr/bin/env bash
# Runs every test: the Go packages with the race detector, and with them the Node SDK
# tests against the WorkOS Vault emulator when npm can install the SDK.
set -euo pipefail
cd "$(dirname "$0")/.."

nodetest=vault/emulator/nodetest
if [ -f "$nodetest/package.json" ] && command -v npm >/dev/null; then
	npm ci --prefix "$nodetest" --no-audit --no-fund --loglevel=error
fi

go test -race "$@" ./...
