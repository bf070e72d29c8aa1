#!/usr/bin/env bash
# The real peers the tests and the benchmark drive, built from the Go module proxy at pinned
# versions: kube-apiserver, kubectl, and a node's kube-controller-manager, kube-scheduler,
# kubelet and kube-proxy (through the wrapper module in tools/kube), kine (the
# API server's storage, on SQLite), Helm 3 and Helm 4, Traefik (through tools/traefik),
# oauth2-proxy and kube-rbac-proxy (through tools/kube-rbac-proxy); and the CRDs Traefik
# and the Prometheus Operator publish, taken from their modules. Built once per machine into
# a shared cache (every checkout on the machine reuses them) and linked into .tools/bin.
set -euo pipefail
cd "$(dirname "$0")/.."

KUBE_VERSION=v1.35.4
KINE_VERSION=v0.17.5
HELM3_VERSION=v3.22.0
HELM4_VERSION=v4.3.1
TRAEFIK_VERSION=v3.6.12
OAUTH2_PROXY_VERSION=v7.15.6
KUBE_RBAC_PROXY_VERSION=v0.19.1
PROMETHEUS_OPERATOR_VERSION=v0.85.0
GATEWAY_API_VERSION=v1.4.1

export PATH=/usr/local/go/bin:$PATH
command -v go >/dev/null || { echo "Go is needed (the project's machines carry it at /usr/local/go)" >&2; exit 1; }
cache=${TPS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/trusted-proxy-sidecar}
export GOMODCACHE=$cache/go/mod GOCACHE=$cache/go/build GOFLAGS=-modcacherw CGO_ENABLED=1
bin=$cache/bin
mkdir -p "$bin" .tools/bin

recipe() {
  printf '%s\n' "$@"
  for arg in "$@"; do [ ! -f "$arg/go.mod" ] || cat "$arg/go.mod"; done
}

# build NAME VERSION COMMAND...: runs COMMAND (which writes $out) unless that binary exists.
# Its file name holds the version and a digest of the recipe (the command, and the wrapper
# module's go.mod when there is one), so a changed recipe builds anew.
build() {
  local name=$1 version=$2
  shift 2
  out=$bin/$name-$version-$(recipe "$@" | sha256sum | cut -c1-8)
  if [ ! -x "$out" ]; then
    echo "building $name $version from the Go module proxy (once per machine)"
    local started=$SECONDS
    "$@"
    echo "built $name $version in $((SECONDS - started)) s"
  fi
  ln -sfn "$out" ".tools/bin/$name"
}

# wrapper_build PACKAGE LDFLAGS WRAPPER_DIR: builds a command of a module that `go install`
# refuses (its go.mod replaces or excludes modules) through the project's wrapper module.
wrapper_build() {
  local pkg=$1 ldflags=$2 dir=$3
  (cd "$dir" && go build -trimpath -ldflags "$ldflags" -o "$out.tmp" "$pkg") && mv "$out.tmp" "$out"
}

# go_install PACKAGE@VERSION LDFLAGS: into a folder of its own, then moved, since commands
# of different modules share names (both Helms are `helm`).
go_install() {
  local pkg=$1 ldflags=$2 tmp
  tmp=$(mktemp -d)
  GOBIN=$tmp go install -trimpath -ldflags "$ldflags" "$pkg"
  mv "$tmp"/* "$out"
  rmdir "$tmp"
}

# module_dir MODULE@VERSION: where the module's source lies in the module cache.
module_dir() { go mod download -json "$1" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'; }

kube_ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=35 -X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION"
for cmd in kube-apiserver kubectl kube-controller-manager kube-scheduler kubelet kube-proxy; do
  build "$cmd" "$KUBE_VERSION" wrapper_build "k8s.io/kubernetes/cmd/$cmd" "$kube_ldflags" tools/kube
done
build kine "$KINE_VERSION" go_install "github.com/k3s-io/kine@$KINE_VERSION" "-s -w"
# Helm 3 learns the Kubernetes version it assumes offline from its release ldflags (its
# Makefile derives 1.37 from client-go v0.37); without them it assumes 1.20.
helm3_ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM3_VERSION"
for pkg in pkg/lint/rules pkg/chartutil; do
  helm3_ldflags+=" -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$pkg.k8sVersionMinor=37"
done
build helm3 "$HELM3_VERSION" go_install "helm.sh/helm/v3/cmd/helm@$HELM3_VERSION" "$helm3_ldflags"
build helm4 "$HELM4_VERSION" go_install "helm.sh/helm/v4/cmd/helm@$HELM4_VERSION" "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM4_VERSION"
build traefik "$TRAEFIK_VERSION" wrapper_build github.com/traefik/traefik/v3/cmd/traefik \
  "-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=$TRAEFIK_VERSION" tools/traefik
build oauth2-proxy "$OAUTH2_PROXY_VERSION" go_install "github.com/oauth2-proxy/oauth2-proxy/v7@$OAUTH2_PROXY_VERSION" \
  "-s -w -X github.com/oauth2-proxy/oauth2-proxy/v7/pkg/version.VERSION=$OAUTH2_PROXY_VERSION"
build kube-rbac-proxy "$KUBE_RBAC_PROXY_VERSION" wrapper_build github.com/brancz/kube-rbac-proxy/cmd/kube-rbac-proxy \
  "-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_RBAC_PROXY_VERSION" tools/kube-rbac-proxy

# The CRDs as their projects publish them, for objects of the chart that use them, and the
# RBAC Traefik publishes for its Kubernetes CRD provider (the end-to-end suite runs Traefik
# with exactly those rights).
mkdir -p .tools/crds
traefik=$(module_dir "github.com/traefik/traefik/v3@$TRAEFIK_VERSION")
cp "$traefik/docs/content/reference/dynamic-configuration/kubernetes-crd-definition-v1.yml" .tools/crds/traefik.yaml
cp "$traefik/docs/content/reference/dynamic-configuration/kubernetes-crd-rbac.yml" .tools/traefik-rbac.yaml
operator=$(module_dir "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION")
for kind in servicemonitors podmonitors prometheusrules; do
  cp "$operator/example/prometheus-operator-crd/monitoring.coreos.com_$kind.yaml" ".tools/crds/prometheus-operator-$kind.yaml"
done
gateway_api=$(module_dir "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION")
cp "$gateway_api/config/crd/standard/gateway.networking.k8s.io_httproutes.yaml" .tools/crds/gateway-api-httproutes.yaml
