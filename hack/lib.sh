# shellcheck shell=bash
# Shared by hack/build-*.sh (sourced, never run). Each script first defines `log` (its own
# prefix), `cache_complete` (whether its binaries are all in place), DEST and CACHE_ROOT.

# The checksum database may be unreachable in sandboxes; the proxy still serves the modules (and
# go.sum pins their hashes), so retry once without it rather than failing the whole build.
# stdout passes through.
go_sumdb_fallback() {
  local err rc=0
  err=$(mktemp)
  "$@" 2>"$err" || rc=$?
  cat "$err" >&2
  if ((rc != 0)) && [[ "${GOSUMDB:-}" != off ]] \
    && grep -qiE 'sum\.golang\.org|verifying|checksum database|GOSUMDB' "$err"; then
    log "checksum database unreachable; retrying with GOSUMDB=off"
    export GOSUMDB=off
    rc=0
    "$@" || rc=$?
  fi
  rm -f "$err"
  return "$rc"
}

# cached_or_locked LOCK RESULT HINT: print RESULT and return 0 when the cache is complete (now,
# or once a concurrent build holding LOCK has finished); without Go, say HINT and exit (2 when
# CI=true: CI must never silently lose what needs the binary, else 0 so local runs skip with a
# hint). Otherwise return 1 holding LOCK on fd 9, with the Go toolchain pinned: build now.
cached_or_locked() {
  local lock=$1 result=$2 hint=$3
  if cache_complete; then
    log "cache complete: $DEST"
    echo "$result"
    return 0
  fi
  if ! command -v go >/dev/null; then
    log "no Go toolchain on PATH: $hint"
    [[ "${CI:-}" == true ]] && exit 2
    exit 0
  fi
  mkdir -p "$CACHE_ROOT"
  exec 9>"$CACHE_ROOT/.$lock.lock"
  if ! flock -n 9; then
    log "another build holds $CACHE_ROOT/.$lock.lock; waiting"
    flock 9
  fi
  if cache_complete; then
    log "cache completed by another build: $DEST"
    echo "$result"
    return 0
  fi
  # Never let a newer toolchain be downloaded behind our back.
  export GOTOOLCHAIN=local GOFLAGS="${GOFLAGS:-} -buildvcs=false"
  return 1
}
