#!/usr/bin/env bash
# Debian packages the tests drive for real (front proxies, promtool, browser, netns tools,
# the chart renderer). Idempotent: apt runs only when something is missing.
set -euo pipefail
packages=(
  caddy nginx prometheus wrk chromium iproute2 curl
  golang-go golang-github-masterminds-sprig-dev kubernetes-client
)
missing=()
for p in "${packages[@]}"; do
  # kubernetes-client is wanted only for `kubectl kustomize`; some machines already ship a
  # newer kubectl from another package that owns /usr/bin/kubectl, and the two conflict.
  [ "$p" = kubernetes-client ] && command -v kubectl >/dev/null && continue
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${missing[*]} (run as root, or install them)" >&2
  exit 1
fi
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
