#!/usr/bin/env bash
# Build kube-apiserver, kubectl and etcd at pinned versions from the Go module proxy into
# a cache directory outside the repository (nothing built is ever committed).
#
#   scripts/k8s-binaries.sh            # build what is missing, print the directory
#   KUBEBUILDER_ASSETS=DIR scripts/k8s-binaries.sh   # use DIR as it is (envtest convention)
#
# Environment: K8S_VERSION (default 1.34.2), ETCD_VERSION (default 3.6.5),
# LBCTL_K8S_CACHE (default ~/.cache/lbctl/k8s).
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.34.2}"
ETCD_VERSION="${ETCD_VERSION:-3.6.5}"
CACHE_ROOT="${LBCTL_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lbctl/k8s}"

if [[ -n "${KUBEBUILDER_ASSETS:-}" ]]; then
    for b in kube-apiserver etcd; do
        [[ -x "$KUBEBUILDER_ASSETS/$b" ]] || { echo "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS has no $b" >&2; exit 1; }
    done
    echo "$KUBEBUILDER_ASSETS"
    exit 0
fi

command -v go >/dev/null || { echo "go is not installed: cannot build kube-apiserver" >&2; exit 3; }

OUT="$CACHE_ROOT/v$K8S_VERSION"
mkdir -p "$OUT"
export GOMODCACHE="$CACHE_ROOT/gomod" GOCACHE="$CACHE_ROOT/gocache" GOFLAGS=-buildvcs=false
export CGO_ENABLED=0

minor="${K8S_VERSION#*.}"; minor="${minor%%.*}"
patch="${K8S_VERSION##*.}"
staging_version="v0.$minor.$patch"

build_k8s() {  # $1 = command name (kube-apiserver | kubectl)
    local cmd="$1"
    [[ -x "$OUT/$cmd" ]] && return 0
    local work; work="$(mktemp -d)"
    (
        cd "$work"
        go mod init local/kubebin >/dev/null 2>&1
        gomod="$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
        # Every staging module the release pins at v0.0.0 is replaced by its published twin.
        for m in $(sed -n 's#^\s*k8s.io/\([a-z0-9-]*\) v0.0.0$#\1#p' "$gomod" | sort -u); do
            go mod edit -replace="k8s.io/$m=k8s.io/$m@$staging_version"
        done
        go get "k8s.io/kubernetes/cmd/$cmd@v$K8S_VERSION" >/dev/null 2>&1
        go build -trimpath -ldflags "-s -w \
            -X k8s.io/component-base/version.gitVersion=v$K8S_VERSION \
            -X k8s.io/component-base/version.gitMajor=1 \
            -X k8s.io/component-base/version.gitMinor=$minor" \
            -o "$OUT/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd"
        mv "$OUT/$cmd.tmp" "$OUT/$cmd"
    )
    rm -rf "$work"
}

build_etcd() {
    [[ -x "$OUT/etcd" ]] && return 0
    local work; work="$(mktemp -d)"
    (
        cd "$work"
        go mod init local/etcdbin >/dev/null 2>&1
        go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" >/dev/null 2>&1
        go build -trimpath -ldflags "-s -w" -o "$OUT/etcd.tmp" go.etcd.io/etcd/server/v3
        mv "$OUT/etcd.tmp" "$OUT/etcd"
    )
    rm -rf "$work"
}

build_etcd
build_k8s kube-apiserver
build_k8s kubectl
echo "$OUT"
