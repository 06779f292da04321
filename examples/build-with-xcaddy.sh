#!/usr/bin/env bash
# Build the custom Caddy with piivault the way users build it: xcaddy, a pinned Caddy
# release, and this source tree as the piivault module. The Dockerfile and .ci/run both
# run this script, so the command is tested in CI, which has no Docker engine.
#
# Usage: examples/build-with-xcaddy.sh OUTPUT [SOURCE_DIR]
#   OUTPUT      path of the binary to write
#   SOURCE_DIR  the piivault module; default: the repository that contains this script
#
# xcaddy v0.4.5 is used from PATH when it is that version, and through `go run`
# otherwise. Set GOOS or GOARCH to cross-compile; the module check at the end is then
# skipped because the binary cannot run here.
set -euo pipefail

readonly xcaddy_version=v0.4.5
readonly caddy_version=v2.11.9
readonly local_version=v0.0.0-00010101000000-000000000000

usage="usage: $0 OUTPUT [SOURCE_DIR]"
output=${1:?$usage}
src=${2:-$(dirname "$0")/..}

# xcaddy builds in a temporary module, so both paths are made absolute
src=$(cd "$src" && pwd)
case $output in
/*) ;;
*) output=$PWD/$output ;;
esac

if command -v xcaddy >/dev/null && [[ $(xcaddy version) == "$xcaddy_version"* ]]; then
	xcaddy=(xcaddy)
else
	xcaddy=(go run "github.com/caddyserver/xcaddy/cmd/xcaddy@$xcaddy_version")
fi

# The zero pseudo-version pins piivault to the replacement, so that `go get` resolves it
# without asking a module proxy for its versions: piivault may not be published, and a
# proxy that answers for an unknown module with an error other than 404 or 410 fails
# the build.
# xcaddy imports the package at the module root, which imports ./caddymodule.
"${xcaddy[@]}" build "$caddy_version" \
	--output "$output" \
	--with "github.com/piivault/piivault@$local_version=$src"

if [[ -z ${GOOS:-} && -z ${GOARCH:-} ]]; then
	# read the whole list first: grep -q could exit early and fail the pipeline
	modules=$("$output" list-modules)
	if ! grep -qx 'http.handlers.pii_vault' <<<"$modules"; then
		echo "$0: $output does not contain the http.handlers.pii_vault module;" \
			"check that the package at the module root imports ./caddymodule" >&2
		exit 1
	fi
fi
echo "built $output"
