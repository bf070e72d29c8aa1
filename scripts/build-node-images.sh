#!/usr/bin/env bash
# The images the node suite's containerd runs, built here (no registry is reachable) as OCI
# archives that `ctr images import` takes, under the names the chart and the manifests use:
#   pause.tar      the pod sandbox (tools/pause/pause.c, static), for containerd's sandbox_image
#   sidecar.tar    this checkout's sidecar image (scripts/build-image-oci.sh, as `make image-oci`)
#   openclaw.tar   the OpenClaw gateway from its npm package (scripts/install-openclaw.sh), laid
#                  out as its image is: /app with openclaw.mjs, Node 24 in /usr/local/bin, user
#                  node (1000), command `node openclaw.mjs gateway --allow-unconfigured`
# The pause and OpenClaw images depend on nothing of the checkout's code and are kept per
# machine while their inputs are unchanged; the sidecar's is built on every run.
#   scripts/build-node-images.sh OUT_DIR
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: build-node-images.sh OUT_DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# image LAYOUT TAG ROOTFS CONFIG-ARGS...: a one-layer OCI image of ROOTFS.
image() {
  local layout=$1 tag=$2 rootfs=$3
  shift 3
  rm -rf "$layout"
  umoci init --layout "$layout"
  umoci new --image "$layout:$tag"
  umoci unpack --image "$layout:$tag" "$work/bundle" >/dev/null
  cp -a "$rootfs/." "$work/bundle/rootfs/"
  umoci repack --image "$layout:$tag" "$work/bundle"
  rm -rf "$work/bundle"
  umoci config --image "$layout:$tag" "$@"
  umoci gc --layout "$layout"
}

# archive LAYOUT OUT.tar: the layout as the tar stream ctr imports.
archive() { tar -C "$1" -cf "$2.tmp" . && mv "$2.tmp" "$2"; }

# The pause and OpenClaw images are kept per machine, under a digest of their inputs, so a
# fresh clone (CI's) does not build them again: OUT_DIR holds links to them.
cache=${TPS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/trusted-proxy-sidecar}/node-images
mkdir -p "$cache"

# cached NAME INPUTS...: true, with OUT_DIR/NAME.tar linked to it, when the machine holds
# NAME built from exactly these inputs; otherwise $target is where the build writes it.
cached() {
  local name=$1
  shift
  target=$cache/$name-$(cat "$@" | sha256sum | cut -c1-16).tar
  [ -f "$target" ] && ln -sfn "$target" "$out/$name.tar"
}
# keep NAME: links OUT_DIR/NAME.tar to the image just written to $target.
keep() { ln -sfn "$target" "$out/$1.tar"; }

if ! cached pause "$root/tools/pause/pause.c" "$0"; then
  mkdir -p "$work/pause"
  gcc -static -Os -o "$work/pause/pause" "$root/tools/pause/pause.c"
  strip "$work/pause/pause"
  image "$work/pause-layout" 1 "$work/pause" --config.entrypoint /pause --config.user 65535:65535
  archive "$work/pause-layout" "$target"
  keep pause
fi

"$root/scripts/build-image-oci.sh" "$work/sidecar-layout" >/dev/null
archive "$work/sidecar-layout" "$out/sidecar.tar"

openclaw=$root/.cache/openclaw
if ! cached openclaw "$openclaw/package-lock.json" "$(command -v node)" "$0"; then
  rootfs=$work/openclaw
  mkdir -p "$rootfs/app" "$rootfs/usr/local/bin" "$rootfs/etc" "$rootfs/tmp" "$rootfs/home/node"
  cp -a "$openclaw/node_modules/openclaw/." "$rootfs/app/"
  # Its dependencies, installed beside it by npm, where the image has them.
  mkdir -p "$rootfs/app/node_modules"
  for dep in "$openclaw"/node_modules/* "$openclaw"/node_modules/.bin; do
    [ "$(basename "$dep")" = openclaw ] || cp -a "$dep" "$rootfs/app/node_modules/"
  done
  install -m 0755 "$(node -p process.execPath)" "$rootfs/usr/local/bin/node"
  chmod 1777 "$rootfs/tmp"
  # The C and C++ runtime Node links, from Debian's packages (as the sidecar's image has it).
  (cd "$work" && apt-get download -qq -o APT::Sandbox::User=root libc6 libgcc-s1 libstdc++6 >/dev/null)
  for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$rootfs"; done
  rm -f "$work"/*.deb
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnode:x:1000:1000:node:/home/node:/sbin/nologin\n' > "$rootfs/etc/passwd"
  printf 'root:x:0:\nnode:x:1000:\n' > "$rootfs/etc/group"
  chown -R 1000:1000 "$rootfs/home/node"
  version=$(node -p "require('$openclaw/node_modules/openclaw/package.json').version")
  image "$work/openclaw-layout" "$version" "$rootfs" \
    --config.user 1000:1000 --config.workingdir /app \
    --config.env PATH=/usr/local/bin:/usr/bin:/bin --config.env HOME=/home/node --config.env NODE_ENV=production \
    --config.cmd node --config.cmd openclaw.mjs --config.cmd gateway --config.cmd --allow-unconfigured
  archive "$work/openclaw-layout" "$target"
  keep openclaw
fi
echo "images in $out: $(cd "$out" && ls *.tar | tr '\n' ' ')"
