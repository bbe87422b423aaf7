#!/usr/bin/env bash
# Build rolekeeper's sdist and wheel into OUT (default: dist/ of the checkout): `make dist`.
#
#   ci/build-dist.sh [OUT]
#
# Supply chain, as in the Dockerfile: the build backend is the hash-locked setuptools of
# requirements-build.lock (installed with --require-hashes into a throwaway venv), called without
# build isolation, so no unpinned file is fetched. The sources are copied first (pyproject.toml,
# README.md, controller/, crds/), so a build/ or *.egg-info left in the checkout never leaks into
# the package. The wheel is built from the sdist, as `python -m build` does, which proves the
# sdist is complete. controller/crds is a symlink to ../crds: both are copied, and the packages
# carry the YAML behind it (pyproject package-data), which `rolekeeper crds` reads.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$root/dist}
python=${PYTHON:-python3}
work=$(mktemp -d "${TMPDIR:-/tmp}/rolekeeper-dist.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Timestamps inside the wheel: the last commit's time when in a git checkout, else 1980-01-01
# (the earliest a zip can hold), so the same tree gives a byte-identical wheel. The sdist is
# not reproducible: setuptools stamps the files it generates (PKG-INFO …) with the build time.
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git -C "$root" log -1 --format=%ct 2>/dev/null || echo 315532800)
  export SOURCE_DATE_EPOCH
fi

"$python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
  --require-hashes --no-deps -r "$root/requirements-build.lock"

mkdir "$work/src" "$work/sdist"
tar -C "$root" --exclude=__pycache__ --exclude='*.pyc' -cf - \
  pyproject.toml README.md controller crds | tar -C "$work/src" -xf -

backend() {  # backend DIR HOOK OUTDIR: one PEP 517 hook of setuptools, run in DIR; prints
  # the file name it made. setuptools' chatter goes to a log, shown only when the hook fails.
  if ! (cd "$1" && "$work/venv/bin/python" -c "$hook" "$2" "$3" 2>>"$work/build.log"); then
    cat "$work/build.log" >&2
    echo "build-dist: $2 failed" >&2
    return 1
  fi
}
hook='
import contextlib, sys
from setuptools import build_meta
with contextlib.redirect_stdout(sys.stderr):
    name = getattr(build_meta, sys.argv[1])(sys.argv[2])
print(name)
'

sdist=$(backend "$work/src" build_sdist "$work/sdist")
tar -C "$work/sdist" -xzf "$work/sdist/$sdist"
wheel=$(backend "$work/sdist/${sdist%.tar.gz}" build_wheel "$work/sdist")

mkdir -p "$out"
cp "$work/sdist/$sdist" "$work/sdist/$wheel" "$out/"
(cd "$out" && sha256sum "$sdist" "$wheel")
