#!/usr/bin/env bash
# Build helm (v3) from the Go module proxy into a versioned cache, for the chart's tests.
#
# Usage: hack/build-helm.sh   prints the helm binary's path on the last stdout line; without Go
#        it prints nothing and exits 0 (2 when CI=true) so the chart's e2e tests can skip.
# Env:   RK_HELM_VERSION (v3.22.0), RK_HELM_CACHE (~/.cache/rolekeeper/helm)
# Progress goes to stderr so callers can take the path from stdout. Modelled on
# hack/build-envtest.sh (same cache layout, lock, checksum-database fallback).
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "$0")/lib.sh"

HELM_VERSION=${RK_HELM_VERSION:-v3.22.0}
CACHE_ROOT=${RK_HELM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rolekeeper/helm}
DEST="$CACHE_ROOT/${HELM_VERSION#v}"
STAMP="$DEST/.complete"
WANT_STAMP="helm=$HELM_VERSION"
MODULE=helm.sh/helm/v3

log() { printf '[build-helm %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

cache_complete() {
  [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT_STAMP" && -x "$DEST/helm" ]]
}


# What helm's own Makefile stamps in: its version, and the Kubernetes version `helm lint` and
# `helm template` assume (.Capabilities.KubeVersion) — client-go v0.Y.Z means Kubernetes 1.Y.
helm_ldflags() {
  local gomod client_go minor flags="-s -w"
  gomod=$(go_sumdb_fallback go mod download -json "$MODULE@$HELM_VERSION" \
    | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
  [[ -f "$gomod" ]] || { log "cannot read go.mod of $MODULE@$HELM_VERSION"; exit 1; }
  client_go=$(awk '$1 == "k8s.io/client-go" {print $2; exit}' "$gomod")
  [[ "$client_go" =~ ^v0\.([0-9]+)\. ]] || { log "no k8s.io/client-go in $gomod"; exit 1; }
  minor=${BASH_REMATCH[1]}
  flags+=" -X $MODULE/internal/version.version=$HELM_VERSION"
  flags+=" -X $MODULE/internal/version.gitTreeState=clean"
  for pkg in pkg/lint/rules pkg/chartutil; do
    flags+=" -X $MODULE/$pkg.k8sVersionMajor=1 -X $MODULE/$pkg.k8sVersionMinor=$minor"
  done
  echo "$flags"
}

main() {
  cached_or_locked "${HELM_VERSION#v}" "$DEST/helm" \
    "cannot build helm; set RK_HELM or install Go" && return
  local start ldflags
  # Global, because the EXIT trap runs after main's locals are gone.
  WORK_DIR=$(mktemp -d "$CACHE_ROOT/.build-XXXXXX")
  trap 'rc=$?; rm -rf "$WORK_DIR"; exit "$rc"' EXIT
  start=$SECONDS
  log "building $MODULE/cmd/helm@$HELM_VERSION with $(go version)"
  ldflags=$(helm_ldflags)
  # helm's go.mod has no replace directives, so `go install module@version` builds it as
  # released (its own go.sum), outside any module of ours.
  mkdir -p "$WORK_DIR/out"
  GOBIN="$WORK_DIR/out" CGO_ENABLED=0 go_sumdb_fallback \
    go install -trimpath -ldflags "$ldflags" "$MODULE/cmd/helm@$HELM_VERSION" >&2
  "$WORK_DIR/out/helm" version >&2
  echo "$WANT_STAMP" >"$WORK_DIR/out/.complete"
  # Swap in atomically-ish: the stamp only exists in a fully built directory.
  rm -rf "$DEST"
  mv "$WORK_DIR/out" "$DEST"
  log "done in $((SECONDS - start))s: $DEST"
  echo "$DEST/helm"
}

main "$@"
