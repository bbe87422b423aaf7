# syntax=docker/dockerfile:1
# Rolekeeper operator image: `docker build -t rolekeeper:0.1.0 .` (docs/deploy.md).
#
# Two stages: the first installs rolekeeper and its dependencies into a virtualenv (every
# dependency ships wheels for linux amd64/arm64, so no compiler is needed even there); the
# final image is the slim Python base plus that virtualenv: no pip, no build tools, no source
# tree; it runs as an unprivileged user and needs no writable root filesystem.
# Python 3.11 is the version the test suite runs on; pin the base by digest in your registry.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
# A virtualenv without pip: the system pip of this stage installs into it (pip --python), so
# the copied environment holds only what the operator imports.
RUN python -m venv --without-pip /opt/rolekeeper
WORKDIR /src
COPY pyproject.toml README.md ./
COPY controller/ controller/
# controller/crds is a symlink to ../crds; the wheel packages the YAML behind it
# (pyproject package-data), so `rolekeeper crds` works in the image.
COPY crds/ crds/
# Non-editable install; byte-compiled here, because the final root filesystem is read-only.
# The smoke test runs the installed entry point (not ./controller), CRDs included.
RUN pip --python /opt/rolekeeper/bin/python install --compile . \
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
