#!/usr/bin/env bash
# Rolekeeper in CI: the one place holding the commands that the GitHub Action (action.yml) and
# the GitLab template (ci/gitlab/rolekeeper.gitlab-ci.yml) run. tests/unit/test_ci_action.py
# checks both call this script; tests/aws/test_ci_script.py runs it against a moto server.
#
#   rolekeeper-ci.sh install                 a venv with rolekeeper, every file pinned by hash
#   rolekeeper-ci.sh plan                    plan.md (Markdown) and its exit code
#   rolekeeper-ci.sh lint                    rolekeeper.sarif, codequality.json and its exit code
#   rolekeeper-ci.sh comment github|gitlab   post plan.md on the pull/merge request (edit ours)
#   rolekeeper-ci.sh verdict                 exit 1 when the plan or the lint says so
#
# Settings come from the environment only (RK_*, listed in docs/plan.md), never from arguments,
# so a CI expression is never pasted into a shell line (no injection through an input's value).
# `plan` and `lint` exit 0 when the tool ran, whatever it found, so that the comment and the
# SARIF upload still happen; `verdict` then fails the job on errors (plan exit 1), findings at
# or above RK_FAIL_ON (lint exit 1) or input that could not be linted (lint exit 2).
set -euo pipefail
set -f  # lists (RK_PATHS …) are split on blanks but never globbed

RK_HOME=${RK_HOME:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
tmp_root=${RUNNER_TEMP:-${TMPDIR:-/tmp}}
RK_VENV=${RK_VENV:-$tmp_root/rolekeeper-venv}
RK_OUT=${RK_OUT:-$tmp_root/rolekeeper}
SEVERITIES="critical high medium low info"

die() {
  echo "rolekeeper-ci: $*" >&2
  exit 1
}

output() {  # output NAME VALUE: a step output on GitHub (no-op elsewhere)
  if [ -n "${GITHUB_OUTPUT:-}" ]; then echo "$1=$2" >>"$GITHUB_OUTPUT"; fi
}

summary() {  # summary FILE: append to the GitHub job summary (its limit is 1 MiB a step)
  if [ -z "${GITHUB_STEP_SUMMARY:-}" ]; then return 0; fi
  if [ "$(wc -c <"$1")" -lt 1000000 ]; then
    cat "$1" >>"$GITHUB_STEP_SUMMARY"
  else
    echo "$(basename "$1") is too large for the job summary: see the step's log." \
      >>"$GITHUB_STEP_SUMMARY"
  fi
}

rolekeeper() {
  [ -x "$RK_VENV/bin/rolekeeper" ] || die "no rolekeeper in $RK_VENV: run 'install' first"
  "$RK_VENV/bin/rolekeeper" "$@"
}

common_args() {  # common_args ARRAY: the manifest paths, then --fail-on; each checked first
  local -n into=$1
  local p
  [ -n "${RK_PATHS:-}" ] || die "RK_PATHS is empty: name the manifest files or directories"
  for p in $RK_PATHS; do
    case "$p" in -*) die "RK_PATHS: '$p' is not a path (it starts with -)" ;; esac
    into+=("$p")
  done
  # Checked here because argparse refuses a bad choice with exit 2, which `plan` uses for
  # "changes".
  if [ -n "${RK_FAIL_ON:-}" ]; then
    case " $SEVERITIES " in
      *" $RK_FAIL_ON "*) into+=(--fail-on "$RK_FAIL_ON") ;;
      *) die "RK_FAIL_ON: '$RK_FAIL_ON' is not one of: $SEVERITIES" ;;
    esac
  fi
}

install() {
  local python=${RK_PYTHON:-python3} pin sha256=${RK_SHA256:-} wheel version
  if [ -e "$RK_VENV" ]; then die "$RK_VENV exists: install makes a new venv (set RK_VENV)"; fi
  if [ -n "${RK_WHEEL:-}${RK_VERSION:-}" ] && ! [[ $sha256 =~ ^[0-9a-f]{64}$ ]]; then
    die "RK_SHA256 must be the sha256 (64 hex digits) of the wheel RK_WHEEL or RK_VERSION names"
  fi
  work=$(mktemp -d "$tmp_root/rolekeeper-install.XXXXXX")  # global: the EXIT trap reads it
  trap 'rm -rf "$work"' EXIT
  if [ -n "${RK_WHEEL:-}" ]; then
    case "$RK_WHEEL" in
      https://*) pin="rolekeeper @ $RK_WHEEL" ;;
      *://*) die "RK_WHEEL: only an https:// URL or a local file" ;;
      *) [ -f "$RK_WHEEL" ] || die "RK_WHEEL: no such file: $RK_WHEEL"
         # pip checks it too; checked here first so a wrong file fails before any download.
         [ "$(sha256sum "$RK_WHEEL" | cut -d' ' -f1)" = "$sha256" ] ||
           die "RK_WHEEL: $RK_WHEEL does not have the sha256 RK_SHA256 names"
         pin="rolekeeper @ file://$(cd "$(dirname "$RK_WHEEL")" && pwd)/$(basename "$RK_WHEEL")" ;;
    esac
  elif [ -n "${RK_VERSION:-}" ]; then
    [[ $RK_VERSION =~ ^[0-9A-Za-z.+!-]+$ ]] || die "RK_VERSION: '$RK_VERSION' is not a version"
    pin="rolekeeper==$RK_VERSION"
  else
    # Neither: the checkout this script belongs to (the action's pinned commit), built as
    # `make dist` builds it, and pinned to the hash of the wheel just built.
    bash "$RK_HOME/ci/build-dist.sh" "$work/dist" >/dev/null
    wheel=$(find "$work/dist" -name "rolekeeper-*.whl")
    sha256=$(sha256sum "$wheel" | cut -d' ' -f1)
    pin="rolekeeper @ file://$wheel"
  fi
  echo "$pin --hash=sha256:$sha256" >"$work/rolekeeper.txt"
  "$python" -m venv "$RK_VENV"
  # Everything exactly as pinned: pip refuses a file whose sha256 is not listed, and any
  # package not listed at all; the dependencies as requirements.lock has them, wheels only.
  "$RK_VENV/bin/python" -m pip --quiet --disable-pip-version-check --no-input install \
    --require-hashes --no-deps --only-binary=:all: --no-compile \
    -r "$work/rolekeeper.txt" -r "$RK_HOME/requirements.lock"
  rm -rf "$work"
  "$RK_VENV/bin/python" -m pip --quiet --disable-pip-version-check check
  version=$(rolekeeper version)
  if [ -n "${RK_VERSION:-}" ] && [ "$version" != "rolekeeper $RK_VERSION" ]; then
    die "asked for rolekeeper $RK_VERSION, installed $version"
  fi
  echo "$version installed in $RK_VENV"
}

plan() {
  local args=(plan --format markdown --detailed-exitcode) code=0 item snapshot_dir=""
  common_args args
  if [ -n "${RK_NAMESPACE:-}" ]; then args+=(--namespace "$RK_NAMESPACE"); fi
  for item in ${RK_PRUNE_SCOPE:-}; do args+=(--prune-scope "$item"); done
  for item in ${RK_GUARDRAILS:-}; do args+=(--guardrails "$item"); done
  for item in ${RK_ACCOUNTS:-}; do args+=(--accounts "$item"); done
  if [ -n "${RK_CLUSTER_ID:-}" ]; then args+=(--cluster-id "$RK_CLUSTER_ID"); fi
  # The operator's own --oidc-issuer and --ignore-tags, so the plan is what it will do.
  if [ -n "${RK_OIDC_ISSUER:-}" ]; then args+=(--oidc-issuer "$RK_OIDC_ISSUER"); fi
  if [ -n "${RK_IGNORE_TAGS:-}" ]; then args+=(--ignore-tags "$RK_IGNORE_TAGS"); fi
  mkdir -p "$RK_OUT"
  if [ -n "${RK_WEB_IDENTITY_TOKEN:-}" ]; then
    # A CI ID token (GitLab id_tokens) handed to boto3 as a web identity token file: private,
    # outside RK_OUT (never an artifact), removed when this command ends.
    snapshot_dir=$(mktemp -d "$tmp_root/rolekeeper-plan.XXXXXX")
    (umask 077 && printf '%s' "$RK_WEB_IDENTITY_TOKEN" >"$snapshot_dir/token")
    export AWS_WEB_IDENTITY_TOKEN_FILE="$snapshot_dir/token"
    unset RK_WEB_IDENTITY_TOKEN
  fi
  case "${RK_SNAPSHOT:-}" in
    "") ;;
    take)
      # The account snapshot is taken here and never leaves this command (docs/plan.md: it
      # holds every policy document of the account, so it is never an artifact).
      snapshot_dir=${snapshot_dir:-$(mktemp -d "$tmp_root/rolekeeper-plan.XXXXXX")}
      if rolekeeper snapshot -o "$snapshot_dir/account.json"; then
        args+=(--snapshot "$snapshot_dir/account.json")
      else
        code=1
      fi ;;
    *) args+=(--snapshot "$RK_SNAPSHOT") ;;
  esac
  if [ "$code" = 0 ]; then
    rolekeeper "${args[@]}" >"$RK_OUT/plan.md" || code=$?
  else
    : >"$RK_OUT/plan.md"
  fi
  if [ -n "$snapshot_dir" ]; then rm -rf "$snapshot_dir"; fi
  # A plan with changes always says so in Markdown; an exit 2 with no output is argparse
  # refusing the arguments, an error.
  if [ "$code" = 2 ] && [ ! -s "$RK_OUT/plan.md" ]; then code=1; fi
  echo "$code" >"$RK_OUT/plan.exitcode"
  summary "$RK_OUT/plan.md"
  output exitcode "$code"
  output file "$RK_OUT/plan.md"
  echo "rolekeeper plan: exit $code (0 nothing changes, 2 changes, 1 errors); $RK_OUT/plan.md"
}

lint() {
  local args=(lint) code=0
  common_args args
  if [ -n "${RK_ACCOUNT_ID:-}" ]; then args+=(--account-id "$RK_ACCOUNT_ID"); fi
  mkdir -p "$RK_OUT"
  # Text for people (the log and the job summary), SARIF for code scanning; both offline.
  rolekeeper "${args[@]}" --format text >"$RK_OUT/lint.txt" || true
  cat "$RK_OUT/lint.txt"
  rolekeeper "${args[@]}" --format sarif >"$RK_OUT/rolekeeper.sarif" || code=$?
  echo "$code" >"$RK_OUT/lint.exitcode"
  "$RK_VENV/bin/python" "$RK_HOME/ci/codequality.py" "$RK_OUT/rolekeeper.sarif" \
    >"$RK_OUT/codequality.json"
  if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
    { echo "### Rolekeeper lint"; echo; echo '```'; cat "$RK_OUT/lint.txt"; echo '```'; } \
      >"$RK_OUT/lint-summary.md"
    summary "$RK_OUT/lint-summary.md"
  fi
  output exitcode "$code"
  output sarif "$RK_OUT/rolekeeper.sarif"
  echo "rolekeeper lint: exit $code (0 clean, 1 findings at or above RK_FAIL_ON, 2 unreadable" \
    "input); $RK_OUT/rolekeeper.sarif"
}

comment() {
  case "${1:-}" in
    github | gitlab) ;;
    *) die "comment: say github or gitlab" ;;
  esac
  "$RK_VENV/bin/python" "$RK_HOME/ci/post_comment.py" "$1" "$RK_OUT/plan.md"
}

verdict() {
  local failed=0 ran=0 code
  if [ -f "$RK_OUT/plan.exitcode" ]; then
    ran=1
    code=$(cat "$RK_OUT/plan.exitcode")
    case "$code" in
      0 | 2) ;;
      *) echo "rolekeeper plan failed (exit $code): errors, conflicts, refusals or invalid" \
           "specs are listed in the plan and the plan step's log"; failed=1 ;;
    esac
  fi
  if [ -f "$RK_OUT/lint.exitcode" ]; then
    ran=1
    code=$(cat "$RK_OUT/lint.exitcode")
    case "$code" in
      0) ;;
      1) echo "rolekeeper lint: unsuppressed findings at or above --fail-on ${RK_FAIL_ON:-}"
         failed=1 ;;
      *) echo "rolekeeper lint: input that could not be linted (exit $code)"; failed=1 ;;
    esac
  fi
  [ "$ran" = 1 ] || die "verdict: neither plan nor lint ran (no exit code in $RK_OUT)"
  return "$failed"
}

case "${1:-}" in
  install | plan | lint | verdict) "$1" ;;
  comment) comment "${2:-}" ;;
  *) die "usage: rolekeeper-ci.sh install|plan|lint|comment github|gitlab|verdict" ;;
esac
