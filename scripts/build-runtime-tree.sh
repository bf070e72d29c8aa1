#!/usr/bin/env bash
# Builds the sidecar's runtime tree into OUT: compiled dist/ with the command's bundle
# (dist/sidecar.js), package.json and the production node_modules only. The Dockerfile
# runs this same script in its build stage, and `make test` starts the sidecar from its
# output, so both use one recipe.
#   scripts/build-runtime-tree.sh OUT
set -euo pipefail
out=${1:?usage: build-runtime-tree.sh OUT}
root=$(cd "$(dirname "$0")/.." && pwd)
rm -rf "$out"
mkdir -p "$out"
out=$(cd "$out" && pwd)
# tsc and esbuild come from the build's own (dev) dependencies.
"$root/node_modules/.bin/tsc" -p "$root/tsconfig.build.json" --outDir "$out/dist" --declaration false --sourceMap false
cp "$root/package.json" "$root/package-lock.json" "$out/"
cd "$out"
# The committed lock decides every version; dev dependencies and install scripts stay out.
npm install --omit=dev --ignore-scripts --no-save --no-audit --no-fund --prefer-offline --loglevel=error
# Bundled from the very packages the tree ships.
node "$root/scripts/bundle.mjs" "$out/dist"
rm -f package-lock.json node_modules/.package-lock.json
