#!/usr/bin/env bash
# Installs the real OpenClaw gateway (pinned) into .cache/openclaw for the end-to-end suite,
# with the Node 24 it needs. Idempotent: does nothing when the pinned version is there, so
# test runs never touch the network.
set -euo pipefail
cd "$(dirname "$0")/.."
version=2026.9.6
prefix=.cache/openclaw
pkg="$prefix/node_modules/openclaw/package.json"
if [ -f "$pkg" ] && grep -q "\"version\": \"$version\"" "$pkg"; then exit 0; fi
scripts/ensure-node.sh
# Keep the system npm's global npmrc (CA bundle, registry) when Node 24 runs npm (see Makefile).
npm_config_globalconfig="${npm_config_globalconfig:-$(npm config get globalconfig 2>/dev/null)}"
export npm_config_globalconfig
export PATH="$PWD/.tools/node/node_modules/.bin:$PATH"
echo "installing openclaw@$version into $prefix (about 95 MB)"
mkdir -p "$prefix"
npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error "openclaw@$version"
