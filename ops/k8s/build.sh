#!/usr/bin/env bash
# Builds the Kubernetes parts the chart tests run against, from the Go module proxy, into .cache/:
#   .cache/bin/etcd, .cache/bin/kube-apiserver, .cache/bin/kubectl   (version-stamped)
#   .cache/k8s/crds/prometheus-operator-<v>/*.yaml                    (generated with controller-gen)
#   .cache/k8s/crds/keda-<v>/*.yaml                                   (KEDA's published CRDs)
#   .cache/k8s/keda-source/kafka_scaler.go                            (the trigger keys KEDA reads)
# Idempotent: every step is skipped when its output already exists with the right version, so a warm
# machine pays nothing. `go install pkg@version` refuses etcd and kubernetes (their go.mod has replace
# directives), hence the tiny wrapper modules under .cache/k8s/build/.
# Go's module and build caches live under .cache/go so `make clean` is a true reset.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
CACHE="${CACHE_DIR:-$ROOT/.cache}"
BIN="$CACHE/bin"
WORK="$CACHE/k8s/build"
CRDS="$CACHE/k8s/crds"

ETCD_VERSION=v3.6.16
K8S_VERSION=1.37.2
PROMETHEUS_OPERATOR_VERSION=v0.95.2
CONTROLLER_GEN_VERSION=v0.23.0
KEDA_VERSION=v2.21.0

command -v go >/dev/null || { echo "ops/k8s/build.sh: go is needed to build etcd and kube-apiserver"; exit 1; }
export GOMODCACHE="$CACHE/go/mod" GOCACHE="$CACHE/go/build" GOFLAGS="-modcacherw -buildvcs=false" GOTOOLCHAIN=local
mkdir -p "$BIN" "$WORK" "$CRDS"
# One build at a time per cache (parallel `make test` runs on one machine share .cache).
if command -v flock >/dev/null; then exec 9>"$CACHE/k8s/.build.lock" && flock 9; fi

log() { echo "ops/k8s/build.sh: [${SECONDS}s] $*"; }

# True when $1 exists and its version output (the command in $3, default --version) contains $2.
# (grep reads all of it: `grep -q` would stop at the first match, and under pipefail the writer's SIGPIPE
# would make a present tool look missing.)
have() { [ -x "$1" ] && "$1" ${3:---version} 2>/dev/null | grep -F -- "$2" >/dev/null; }

build_etcd() {
  if have "$BIN/etcd" "etcd Version: ${ETCD_VERSION#v}"; then return; fi
  log "building etcd $ETCD_VERSION"
  local dir="$WORK/etcd"
  rm -rf "$dir" && mkdir -p "$dir"
  cat >"$dir/go.mod" <<EOF
module attentive-connector/k8s-tools/etcd

go 1.24
EOF
  cat >"$dir/tools.go" <<'EOF'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
EOF
  (cd "$dir" && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" && go mod tidy \
    && go build -trimpath -o "$BIN/etcd.tmp" go.etcd.io/etcd/server/v3)
  mv "$BIN/etcd.tmp" "$BIN/etcd"
}

build_kubernetes() {
  if have "$BIN/kube-apiserver" "v$K8S_VERSION" && have "$BIN/kubectl" "v$K8S_VERSION" "version --client"; then return; fi
  log "building kube-apiserver and kubectl $K8S_VERSION"
  local dir="$WORK/kubernetes"
  rm -rf "$dir" && mkdir -p "$dir"
  # kubernetes' go.mod points every k8s.io/<x> at ./staging/...: point them at the published v0.x modules.
  local mod
  mod="$(cd "$dir" && go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  {
    printf 'module attentive-connector/k8s-tools/kubernetes\n\ngo 1.24\n\nrequire k8s.io/kubernetes v%s\n\nreplace (\n' "$K8S_VERSION"
    sed -n "s#^[[:space:]]*\(k8s.io/[^ ]*\) => ./staging/.*#\t\1 => \1 v0.${K8S_VERSION#1.}#p" "$mod"
    printf ')\n'
  } >"$dir/go.mod"
  cat >"$dir/tools.go" <<'EOF'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
EOF
  local minor="${K8S_VERSION#1.}"
  minor="${minor%%.*}"
  local ldflags="-s -w -X k8s.io/component-base/version.gitVersion=v$K8S_VERSION"
  ldflags+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
  ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
  ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=v$K8S_VERSION"
  ldflags+=" -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  (
    cd "$dir"
    go mod tidy
    for cmd in kube-apiserver kubectl; do
      go build -trimpath -ldflags "$ldflags" -o "$BIN/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd"
    done
  )
  mv "$BIN/kube-apiserver.tmp" "$BIN/kube-apiserver"
  mv "$BIN/kubectl.tmp" "$BIN/kubectl"
}

prometheus_operator_crds() {
  local out="$CRDS/prometheus-operator-$PROMETHEUS_OPERATOR_VERSION" tmp="$WORK/crds-prometheus-operator"
  if [ -f "$out/.done" ]; then return; fi
  log "generating prometheus-operator $PROMETHEUS_OPERATOR_VERSION CRDs with controller-gen $CONTROLLER_GEN_VERSION"
  local gen="$WORK/bin/controller-gen-$CONTROLLER_GEN_VERSION"
  if [ ! -x "$gen" ]; then
    GOBIN="$WORK/bin" go install "sigs.k8s.io/controller-tools/cmd/controller-gen@$CONTROLLER_GEN_VERSION"
    mv "$WORK/bin/controller-gen" "$gen"
  fi
  local dir="$WORK/prometheus-operator"
  rm -rf "$dir" "$tmp" && mkdir -p "$dir" "$tmp"
  local src
  src="$(cd "$dir" && go mod download -json \
    "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring@$PROMETHEUS_OPERATOR_VERSION" \
    | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
  # controller-gen loads the packages, so it runs inside the module (a writable copy of it).
  cp -r "$src/." "$dir/" && chmod -R u+w "$dir"
  (cd "$dir" && go mod download && "$gen" crd:crdVersions=v1,maxDescLen=0 paths=./v1 "output:crd:dir=$tmp")
  touch "$tmp/.done"
  rm -rf "$CRDS"/prometheus-operator-* && mv "$tmp" "$out"  # one version only: the tests load them all
}

keda_crds() {
  local out="$CRDS/keda-$KEDA_VERSION" tmp="$WORK/crds-keda"
  if [ -f "$out/.done" ] && [ -f "$CACHE/k8s/keda-source/$KEDA_VERSION" ]; then return; fi
  log "fetching KEDA $KEDA_VERSION CRDs"
  local src
  src="$(cd "$WORK" && go mod download -json "github.com/kedacore/keda/v2@$KEDA_VERSION" \
    | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
  rm -rf "$tmp" && mkdir -p "$tmp"
  cp "$src"/config/crd/bases/*.yaml "$tmp/"
  touch "$tmp/.done"
  rm -rf "$CRDS"/keda-* && mv "$tmp" "$out"
  rm -rf "$CACHE/k8s/keda-source" && mkdir -p "$CACHE/k8s/keda-source"
  cp "$src/pkg/scalers/kafka_scaler.go" "$CACHE/k8s/keda-source/"
  touch "$CACHE/k8s/keda-source/$KEDA_VERSION"
}

log "start"
build_etcd
build_kubernetes
prometheus_operator_crds
keda_crds
# First lines only, with sed reading everything: `head -n 1` exits early, and under `set -o pipefail` the
# writer's SIGPIPE failed the whole build (exit 141) on a fresh machine.
"$BIN/etcd" --version | sed -n 1p
"$BIN/kube-apiserver" --version
"$BIN/kubectl" version --client | sed -n 1p
log "done"
