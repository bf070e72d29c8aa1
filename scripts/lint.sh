#!/usr/bin/env bash
# The style and the rules no review should have to check: prettier's format (.prettierrc.json)
# and typescript-eslint's rules with types (eslint.config.mjs). `make lint` runs it; so does
# `make test`, first. To fix the format: npx prettier --write "**/*.{ts,mts,mjs,js}".
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PWD/node_modules/.bin:$PATH
prettier --check --log-level warn "**/*.{ts,mts,mjs,js}"
eslint src test harness bench
