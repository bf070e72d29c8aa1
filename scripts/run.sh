#!/usr/bin/env bash
# `make run`: the sidecar on the embedded example config in front of the demo gateway.
# Ports: PORT (data, 8080), ADMIN_PORT (9090) and GATEWAY_PORT (18789), e.g.
# `make run PORT=8081`. Each is checked before anything starts, the banner is printed only
# once both processes answer, and Ctrl-C or TERM stops both and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
port=${PORT:-8080}
admin_port=${ADMIN_PORT:-9090}
gateway_port=${GATEWAY_PORT:-18789}

taken=()
for p in "$port" "$admin_port" "$gateway_port"; do
  if ! node -e 'const s = require("net").createServer(); s.once("error", () => process.exit(1)); s.listen(+process.argv[1], "127.0.0.1", () => s.close())' "$p"; then
    taken+=("$p")
  fi
done
if [ ${#taken[@]} -gt 0 ]; then
  echo "make run: port ${taken[*]} on 127.0.0.1 is in use; choose others, e.g. make run PORT=18080 ADMIN_PORT=19090 GATEWAY_PORT=28789" >&2
  exit 2
fi

keys=.run/keys
if [ ! -f "$keys/dev" ]; then
  node dist/sidecar.js keygen --keys-dir "$keys" --kid dev >/dev/null
  printf '\n\033[1;33m!!! WARNING: generated a DEVELOPMENT signing key in %s/dev.\n!!! It is for this demo only; never use it in a real deployment.\033[0m\n\n' "$keys"
fi
# The example config with this run's ports.
config=.run/sidecar.yaml
node -e '
  const fs = require("fs"), { parseDocument } = require("yaml");
  const [from, to, port, admin, gateway] = process.argv.slice(1);
  const doc = parseDocument(fs.readFileSync(from, "utf8"));
  doc.setIn(["listen", "port"], +port);
  doc.setIn(["admin", "port"], +admin);
  doc.setIn(["upstream", "url"], `http://127.0.0.1:${gateway}`);
  fs.writeFileSync(to, String(doc));
' examples/dev/sidecar.yaml "$config" "$port" "$admin_port" "$gateway_port"

gateway=
sidecar=
stop() {
  kill $sidecar $gateway 2>/dev/null || true
  wait 2>/dev/null || true
}
trap 'stop; exit 0' INT TERM
trap stop EXIT
node dist/demo/gateway.js "$keys" "$gateway_port" &
gateway=$!
node dist/sidecar.js serve --config "$config" &
sidecar=$!

# Ready means both answer: the sidecar's /readyz checks that the gateway accepts connections.
ready=
for _ in $(seq 100); do
  if ! kill -0 $gateway 2>/dev/null || ! kill -0 $sidecar 2>/dev/null; then break; fi
  if curl -fs "http://127.0.0.1:$admin_port/readyz" >/dev/null 2>&1; then ready=1; break; fi
  sleep 0.1
done
if [ -z "$ready" ]; then
  echo "make run: the sidecar or the demo gateway did not come up (see above)" >&2
  exit 1
fi
cat <<MSG

trusted-proxy-sidecar is running: data on http://127.0.0.1:$port, admin on http://127.0.0.1:$admin_port

  Allowed (a trusted proxy's identity headers, verified by the demo gateway):
    curl -s http://127.0.0.1:$port/hello -H 'X-Auth-Request-Email: alice@example.com' -H 'X-Auth-Request-Groups: readers'

  Refused (an identity header sent twice: 401 identity_duplicated):
    curl -si http://127.0.0.1:$port/hello -H 'X-Auth-Request-Email: alice@example.com' -H 'X-Auth-Request-Email: admin@example.com'

  Metrics: curl -s http://127.0.0.1:$admin_port/metrics | grep trusted_proxy_decisions

Ctrl-C stops both.
MSG
# Either process ending ends the run (wait -n: whichever first).
set +e
wait -n $sidecar $gateway
status=$?
echo "make run: $( kill -0 $sidecar 2>/dev/null && echo 'the demo gateway' || echo 'the sidecar') stopped (exit $status)" >&2
exit 1
