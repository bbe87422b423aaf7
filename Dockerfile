# syntax=docker/dockerfile:1
# Rolekeeper operator image: `docker build -t rolekeeper:0.1.0 .` (docs/deploy.md).
#
# Two stages: the first installs rolekeeper and its dependencies into a virtualenv (every
# dependency ships wheels for linux amd64/arm64, so no compiler is needed even there); the
# final image is the slim Python base plus that virtualenv: no pip, no build tools, no source
# tree; it runs as an unprivileged user and needs no writable root filesystem.
#
# Supply chain: every third-party file is pinned by hash. The base image by digest (a tag can be
# moved); dependencies from requirements.lock and the build backend from requirements-build.lock,
# both installed with --require-hashes (pip refuses any file whose sha256 is not listed, and any
# package not listed at all). Regenerate the locks with the commands in their headers
# (pip-tools), after a change to pyproject.toml.
#
# Python 3.11 is the version the test suite runs on. The digest below is the multi-arch index of
# python:3.11.10-slim-bookworm as published in a public Dockerfile (not re-verified when it was
# written here: no registry access). Refresh it, and verify it, before building:
#   docker buildx imagetools inspect python:3.11-slim-bookworm   # "Digest:" of the index
#   crane digest python:3.11-slim-bookworm                        # the same, without Docker
# then set the tag to the exact patch release and the digest to what the registry returns
# (or let Renovate/Dependabot maintain this line: both update pinned digests).
ARG PYTHON_IMAGE=python:3.11.10-slim-bookworm@sha256:5148c0e4bbb64271bca1d3322360ebf4bfb7564507ae32dd639322e4952a6b16

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
# A virtualenv without pip: the system pip of this stage installs into it (pip --python), so
# the copied environment holds only what the operator imports.
RUN python -m venv --without-pip /opt/rolekeeper
WORKDIR /src
# Dependencies first (their layer is cached until a lock changes), exactly as locked.
COPY requirements.lock requirements-build.lock ./
RUN pip --python /opt/rolekeeper/bin/python install --require-hashes --no-deps --only-binary=:all: \
      --compile -r requirements.lock \
 && pip install --require-hashes --no-deps -r requirements-build.lock
COPY pyproject.toml README.md ./
COPY controller/ controller/
# controller/crds is a symlink to ../crds; the wheel packages the YAML behind it
# (pyproject package-data), so `rolekeeper crds` works in the image.
COPY crds/ crds/
# Rolekeeper itself: a wheel built here with the hash-locked setuptools (no build isolation, so
# pip fetches no unpinned build backend), then installed without dependencies and without an
# index: everything it imports came from the lock above. Byte-compiled here, because the final
# root filesystem is read-only. The smoke test runs the installed entry point, CRDs included.
RUN pip wheel --no-deps --no-build-isolation --no-index --wheel-dir /tmp/wheels . \
 && pip --python /opt/rolekeeper/bin/python install --no-deps --no-index --compile \
      /tmp/wheels/rolekeeper-*.whl \
 && pip --python /opt/rolekeeper/bin/python check \
 && cd / && /opt/rolekeeper/bin/rolekeeper version \
 && /opt/rolekeeper/bin/rolekeeper crds | grep -q "name: iamroles.iam.rolekeeper.dev"

FROM ${PYTHON_IMAGE}
# Drop the base image's own pip/setuptools too: nothing in the final image can install code.
RUN python -m pip uninstall --yes --quiet pip setuptools wheel 2>/dev/null || true \
 && groupadd --system --gid 65532 rolekeeper \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /tmp \
      --shell /usr/sbin/nologin rolekeeper
COPY --from=build /opt/rolekeeper /opt/rolekeeper
ENV PATH=/opt/rolekeeper/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
# Numeric, so `runAsNonRoot: true` can verify it without reading /etc/passwd.
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["rolekeeper"]
CMD ["run", "--all-namespaces", "--liveness=http://0.0.0.0:8080/healthz", "--metrics-port=9090"]
