#!/usr/bin/env bash
# The real Kubernetes parts the tests drive, built from the Go module proxy at pinned
# versions: kube-apiserver and kubectl (through the wrapper module in tools/kube), kine (the
# API server's storage, on SQLite), Helm 3 and Helm 4; and the CRDs Traefik and the
# Prometheus Operator publish, taken from their modules. Built once per machine into a
# shared cache (so every checkout on the machine reuses them) and linked into .tools.
# Idempotent: a binary already built at its version is not built again.
set -euo pipefail
cd "$(dirname "$0")/.."

KUBE_VERSION=v1.35.4
KINE_VERSION=v0.17.5
HELM3_VERSION=v3.22.0
HELM4_VERSION=v4.3.1
TRAEFIK_VERSION=v3.6.12
PROMETHEUS_OPERATOR_VERSION=v0.85.0

export PATH=/usr/local/go/bin:$PATH
command -v go >/dev/null || { echo "Go is needed (the project's machines carry it at /usr/local/go)" >&2; exit 1; }
cache=${TPS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/trusted-proxy-sidecar}
export GOMODCACHE=$cache/go/mod GOCACHE=$cache/go/build GOFLAGS=-modcacherw CGO_ENABLED=1
bin=$cache/bin
mkdir -p "$bin" .tools/bin .tools/crds

# build NAME VERSION COMMAND...: runs COMMAND (which writes $out) unless that binary exists;
# its name holds the version and a digest of the recipe, so a changed recipe builds anew.
build() {
  local name=$1 version=$2
  shift 2
  out=$bin/$name-$version-$(printf '%s\n' "$@" "$kube_ldflags" | sha256sum | cut -c1-8)
  if [ ! -x "$out" ]; then
    echo "building $name $version from the Go module proxy (once per machine)"
    local started=$SECONDS
    "$@"
    echo "built $name $version in $((SECONDS - started)) s"
  fi
  ln -sfn "$out" ".tools/bin/$name"
}

kube_ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=35 -X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION"
build_kube() {
  local cmd=$1
  (cd tools/kube && go build -trimpath -ldflags "$kube_ldflags" -o "$out.tmp" "k8s.io/kubernetes/cmd/$cmd") && mv "$out.tmp" "$out"
}
# go install into a folder of its own, then move: the command's own name is always `helm`.
go_install() {
  local pkg=$1 ldflags=$2 tmp
  tmp=$(mktemp -d)
  GOBIN=$tmp go install -trimpath -ldflags "$ldflags" "$pkg"
  mv "$tmp"/* "$out"
  rmdir "$tmp"
}

build kube-apiserver "$KUBE_VERSION" build_kube kube-apiserver
build kubectl "$KUBE_VERSION" build_kube kubectl
build kine "$KINE_VERSION" go_install "github.com/k3s-io/kine@$KINE_VERSION" "-s -w"
# Helm 3 learns the Kubernetes version it assumes offline from its release ldflags (its
# Makefile derives 1.37 from client-go v0.37); without them it assumes 1.20.
helm3_ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM3_VERSION"
for pkg in pkg/lint/rules pkg/chartutil; do
  helm3_ldflags+=" -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$pkg.k8sVersionMinor=37"
done
build helm3 "$HELM3_VERSION" go_install "helm.sh/helm/v3/cmd/helm@$HELM3_VERSION" "$helm3_ldflags"
build helm4 "$HELM4_VERSION" go_install "helm.sh/helm/v4/cmd/helm@$HELM4_VERSION" "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM4_VERSION"

# The CRDs as their projects publish them, for objects of the chart that use them.
module_dir() { go mod download -json "$1" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'; }
traefik=$(module_dir "github.com/traefik/traefik/v3@$TRAEFIK_VERSION")
cp "$traefik/docs/content/reference/dynamic-configuration/kubernetes-crd-definition-v1.yml" .tools/crds/traefik.yaml
operator=$(module_dir "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION")
for kind in servicemonitors prometheusrules; do
  cp "$operator/example/prometheus-operator-crd/monitoring.coreos.com_$kind.yaml" ".tools/crds/prometheus-operator-$kind.yaml"
done
