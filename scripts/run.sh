#!/usr/bin/env bash
# `make run`: the sidecar on the embedded example config in front of the demo gateway.
set -euo pipefail
cd "$(dirname "$0")/.."
keys=.run/keys
if [ ! -f "$keys/dev" ]; then
  node dist/sidecar.js keygen --keys-dir "$keys" --kid dev >/dev/null
  printf '\n\033[1;33m!!! WARNING: generated a DEVELOPMENT signing key in %s/dev.\n!!! It is for this demo only; never use it in a real deployment.\033[0m\n\n' "$keys"
fi
node dist/demo/gateway.js "$keys" 18789 &
gateway=$!
node dist/sidecar.js serve --config examples/dev/sidecar.yaml &
sidecar=$!
trap 'kill $sidecar $gateway 2>/dev/null; wait 2>/dev/null' EXIT INT TERM
for _ in $(seq 50); do curl -fs http://127.0.0.1:9090/readyz >/dev/null 2>&1 && break; sleep 0.1; done
cat <<MSG

trusted-proxy-sidecar is running: data on http://127.0.0.1:8080, admin on http://127.0.0.1:9090

  Allowed (a trusted proxy's identity headers, verified by the demo gateway):
    curl -s http://127.0.0.1:8080/hello -H 'X-Auth-Request-Email: alice@example.com' -H 'X-Auth-Request-Groups: readers'

  Refused (an identity header sent twice: 401 identity_duplicated):
    curl -si http://127.0.0.1:8080/hello -H 'X-Auth-Request-Email: alice@example.com' -H 'X-Auth-Request-Email: admin@example.com'

  Metrics: curl -s http://127.0.0.1:9090/metrics | grep trusted_proxy_decisions

Ctrl-C stops both.
MSG
wait $sidecar
