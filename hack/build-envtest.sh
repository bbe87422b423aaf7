#!/usr/bin/env bash
# Build kube-apiserver, kubectl and etcd from the Go module proxy into a versioned cache.
#
# Usage: hack/build-envtest.sh   prints the binary directory on the last stdout line; without Go
#        it prints nothing and exits 0 (2 when CI=true) so `make test` can skip the e2e tier.
# Env:   RK_K8S_VERSION (v1.34.4), RK_ETCD_VERSION (v3.6.16),
#        RK_ENVTEST_CACHE (~/.cache/rolekeeper/envtest)
# Progress goes to stderr so callers can take the directory from stdout.
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "$0")/lib.sh"

K8S_VERSION=${RK_K8S_VERSION:-v1.34.4}
ETCD_VERSION=${RK_ETCD_VERSION:-v3.6.16}
CACHE_ROOT=${RK_ENVTEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rolekeeper/envtest}
DEST="$CACHE_ROOT/${K8S_VERSION#v}"
STAMP="$DEST/.complete"
WANT_STAMP="k8s=$K8S_VERSION etcd=$ETCD_VERSION"
BINARIES=(kube-apiserver kubectl etcd)

log() { printf '[build-envtest %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

cache_complete() {
  [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT_STAMP" ]] || return 1
  local b
  for b in "${BINARIES[@]}"; do [[ -x "$DEST/$b" ]] || return 1; done
}


# Staging modules (k8s.io/api, ...) are replaced by ./staging paths in k8s.io/kubernetes's own
# go.mod, which a dependent module cannot use; point each at its published v0.Y.Z instead.
write_k8s_gomod() {
  local dir=$1 upstream_mod staging_version
  # go mod download -json prints one object; its "GoMod" field is the cached go.mod path.
  upstream_mod=$(go_sumdb_fallback go mod download -json "k8s.io/kubernetes@$K8S_VERSION" \
    | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
  [[ -f "$upstream_mod" ]] || { log "cannot read go.mod of k8s.io/kubernetes@$K8S_VERSION"; exit 1; }
  staging_version="v0.${K8S_VERSION#v1.}"
  {
    echo "module rolekeeper.local/envtest-k8s"
    echo
    grep -E '^go [0-9]' "$upstream_mod"
    # godebug may be a single line or a block; copy it verbatim either way.
    awk '/^godebug \(/{b=1} b{print} b&&/^\)/{b=0} /^godebug [^(]/{print}' "$upstream_mod"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    grep -oE '^\s*k8s\.io/[A-Za-z0-9._-]+ => \./staging/' "$upstream_mod" \
      | awk -v v="$staging_version" '{print "\t" $1 " => " $1 " " v}'
    echo ")"
  } >"$dir/go.mod"
  log "k8s go.mod: $(grep -c '=>' "$dir/go.mod") staging replaces at $staging_version"
}

k8s_ldflags() {
  local minor date pkg flags="-s -w"
  minor=$(cut -d. -f2 <<<"${K8S_VERSION#v}")
  date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date"
  done
  echo "$flags"
}

build_k8s() {
  local work=$1 out=$2 beat
  mkdir -p "$work/k8s"
  write_k8s_gomod "$work/k8s"
  log "downloading k8s.io/kubernetes $K8S_VERSION and its dependencies"
  go_sumdb_fallback go -C "$work/k8s" mod download
  log "compiling kube-apiserver and kubectl (the slow part: 10-20 min cold on 2 cores)"
  heartbeat 9>&- & beat=$!
  CGO_ENABLED=0 go -C "$work/k8s" build -mod=mod -trimpath -tags=selinux,notest,grpcnotrace \
    -ldflags "$(k8s_ldflags)" -o "$out/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl >&2
  kill "$beat" 2>/dev/null || true
}

# go build is silent while compiling; show that a long cold build is still alive.
heartbeat() {
  local start=$SECONDS sleeper=
  # Take the sleep down too: an orphaned sleep would hold the caller's stderr pipe open.
  trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM
  while true; do
    sleep 60 & sleeper=$!
    wait "$sleeper"
    log "still compiling ($((SECONDS - start))s)"
  done
}

build_etcd() {
  local work=$1 out=$2
  mkdir -p "$work/etcd"
  log "resolving go.etcd.io/etcd/server/v3 $ETCD_VERSION"
  go -C "$work/etcd" mod init rolekeeper.local/envtest-etcd 2>/dev/null
  go_sumdb_fallback go -C "$work/etcd" get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  log "compiling etcd"
  CGO_ENABLED=0 go -C "$work/etcd" build -mod=mod -trimpath -ldflags "-s -w" \
    -o "$out/etcd" go.etcd.io/etcd/server/v3 >&2
}

main() {
  cached_or_locked "${K8S_VERSION#v}" "$DEST" \
    "cannot build; set KUBEBUILDER_ASSETS or install Go" && return
  local work start
  # Global, because the EXIT trap runs after main's locals are gone.
  WORK_DIR=$(mktemp -d "$CACHE_ROOT/.build-XXXXXX")
  work=$WORK_DIR
  # Cleans up the temp dir and any heartbeat on failure, Ctrl-C or success alike.
  trap 'rc=$?; rm -rf "$WORK_DIR"; jobs -p | xargs -r kill 2>/dev/null || true; exit "$rc"' EXIT
  start=$SECONDS
  log "building $WANT_STAMP with $(go version) into $work"
  mkdir -p "$work/out"
  build_etcd "$work" "$work/out"
  build_k8s "$work" "$work/out"
  "$work/out/kube-apiserver" --version >&2
  "$work/out/etcd" --version >&2
  echo "$WANT_STAMP" >"$work/out/.complete"
  # Swap in atomically-ish: the stamp only exists in a fully built directory.
  rm -rf "$DEST"
  mv "$work/out" "$DEST"
  log "done in $((SECONDS - start))s: $DEST"
  echo "$DEST"
}

main "$@"
