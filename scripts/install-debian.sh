#!/usr/bin/env bash
# Debian packages the tests drive for real (front proxies, promtool, browser, netns tools,
# openssl for test certificates, gcc for kine's SQLite, umoci and runc for the image built
# without Docker, util-linux's taskset for the benchmark's pinned rounds; for the node
# suite's real node, containerd, the CNI plugins, and iptables and conntrack for
# kube-proxy, with gcc's static libc for the pause image). Idempotent: apt
# runs only when something is missing. Kubernetes, kubectl and Helm are built by scripts/install-peers.sh.
set -euo pipefail
packages=(
  caddy nginx prometheus wrk chromium iproute2 curl openssl gcc libc6-dev umoci runc util-linux
  containerd containernetworking-plugins iptables conntrack
)
missing=()
for p in "${packages[@]}"; do
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
