#!/usr/bin/env bash
# The image without a Docker engine: an OCI image layout built with umoci (a Debian
# package) from the parts the Dockerfile uses, in the distroless layout it runs: the runtime
# tree of scripts/build-runtime-tree.sh in /app, Node 24's binary from npm (the one `make
# test` runs) in /nodejs/bin, the Debian libraries that binary links (libc6, libgcc-s1,
# libstdc++6, extracted from their packages), and a passwd naming UID 65532. No shell, no
# package manager; the same user, environment, entrypoint and command as the Dockerfile's image.
#   scripts/build-image-oci.sh LAYOUT_DIR [TAG]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
layout=${1:?usage: build-image-oci.sh LAYOUT_DIR [TAG]}
version=$(node -p "require('$root/package.json').version")
tag=${2:-$version}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs

"$root/scripts/build-runtime-tree.sh" "$rootfs/app"
mkdir -p "$rootfs/nodejs/bin" "$rootfs/etc" "$rootfs/tmp"
install -m 0755 "$(node -p process.execPath)" "$rootfs/nodejs/bin/node"
chmod 1777 "$rootfs/tmp"
# The C and C++ runtime the official Node binary links, as Debian ships them.
# (The package lists are read first if this machine has none yet.)
download() { (cd "$work" && apt-get download -qq -o APT::Sandbox::User=root libc6 libgcc-s1 libstdc++6 >/dev/null); }
download || { apt-get update -qq && download; }
for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$rootfs"; done
rm -rf "$rootfs/usr/share/doc" "$rootfs/usr/share/lintian" "$rootfs/usr/share/locale"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$rootfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$rootfs/etc/group"

# The runtime stage's environment, as the Dockerfile's ENV lines set it.
env_args=()
for pair in $(awk '/^FROM /{env=""} /^ENV /{env=env" "$2} END{print env}' "$root/Dockerfile"); do env_args+=(--config.env "$pair"); done

rm -rf "$layout"
umoci init --layout "$layout"
umoci new --image "$layout:$tag"
umoci unpack --image "$layout:$tag" "$work/bundle" >/dev/null
cp -a "$rootfs/." "$work/bundle/rootfs/"
chown -R 0:0 "$work/bundle/rootfs"
umoci repack --image "$layout:$tag" "$work/bundle"
umoci config --image "$layout:$tag" \
  --config.user 65532:65532 --config.workingdir /app "${env_args[@]}" \
  --config.entrypoint /nodejs/bin/node --config.entrypoint /app/dist/sidecar.js \
  --config.cmd serve --config.cmd --config --config.cmd /etc/trusted-proxy-sidecar/config/sidecar.yaml \
  --config.exposedports 8080/tcp --config.exposedports 9090/tcp \
  --config.label org.opencontainers.image.title=trusted-proxy-sidecar \
  --config.label "org.opencontainers.image.version=$version" \
  --config.label org.opencontainers.image.licenses=Apache-2.0
umoci gc --layout "$layout"
echo "built $layout:$tag"
