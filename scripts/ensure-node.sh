#!/usr/bin/env bash
# Installs Node 24 from the npm registry into .tools/node when the system Node is older.
# Idempotent: does nothing when a suitable Node is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
want=24.21.0
local_node=.tools/node/node_modules/.bin/node
if [ -x "$local_node" ] && [ "$("$local_node" --version)" = "v$want" ]; then exit 0; fi
system_major=$(node --version 2>/dev/null | sed -E 's/^v([0-9]+).*/\1/' || echo 0)
if [ "${system_major:-0}" -ge 24 ]; then exit 0; fi
echo "system Node is v${system_major:-none}; installing Node $want from the npm registry into .tools/node"
npm install --prefix .tools/node --no-audit --no-fund --loglevel=error "node@$want"
