"""`make dist`: the sdist and wheel hold what `rolekeeper` needs, and the wheel installs and runs.

ci/build-dist.sh (what `make dist` runs) builds both into a temporary directory; the wheel is
then installed the way the CI step installs a released wheel (`ci/rolekeeper-ci.sh install`
with RK_WHEEL and its sha256: a fresh venv, requirements.lock with --require-hashes from PyPI),
and its `rolekeeper version` and `rolekeeper crds` run from outside the checkout, so nothing
comes from the source tree. Needs PyPI (the locked setuptools and dependencies), as `make dist`
and the CI step do; about 20 s.
"""

from __future__ import annotations

import hashlib
import subprocess
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.harness import cirun

ROOT = cirun.ROOT
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
CRDS = sorted(p.name for p in (ROOT / "crds").glob("*.yaml"))


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run(
        ["bash", str(ROOT / "ci" / "build-dist.sh"), str(out)],
        env=cirun.clean_env({}), capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    # It prints each file's sha256, as a release page lists them.
    for line in built.stdout.splitlines():
        digest, name = line.split()
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest
    return out


def test_dist_builds_one_sdist_and_one_wheel(dist: Path) -> None:
    assert sorted(p.name for p in dist.iterdir()) == [
        f"rolekeeper-{VERSION}-py3-none-any.whl",
        f"rolekeeper-{VERSION}.tar.gz",
    ]


def test_the_wheel_carries_the_crds_and_nothing_of_the_checkout(dist: Path) -> None:
    with zipfile.ZipFile(dist / f"rolekeeper-{VERSION}-py3-none-any.whl") as wheel:
        names = set(wheel.namelist())
        for crd in CRDS:
            assert wheel.read(f"controller/crds/{crd}") == (ROOT / "crds" / crd).read_bytes()
        entry_points = wheel.read(f"rolekeeper-{VERSION}.dist-info/entry_points.txt").decode()
        metadata = wheel.read(f"rolekeeper-{VERSION}.dist-info/METADATA").decode()
    assert "controller/py.typed" in names
    assert "rolekeeper = controller.cli:main" in entry_points
    assert f"Version: {VERSION}\n" in metadata
    assert {n.split("/")[0] for n in names} == {"controller", f"rolekeeper-{VERSION}.dist-info"}
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    # Every module of the package is in it.
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "controller").rglob("*.py")}
    assert modules <= names


def test_the_sdist_is_complete(dist: Path) -> None:
    with tarfile.open(dist / f"rolekeeper-{VERSION}.tar.gz") as sdist:
        names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    assert {"pyproject.toml", "README.md", "PKG-INFO"} <= names
    assert {f"controller/crds/{crd}" for crd in CRDS} <= names
    assert not [n for n in names if n.startswith(("tests/", "bench/", ".venv"))]


def test_the_wheel_installs_pinned_and_runs(dist: Path, tmp_path: Path) -> None:
    wheel = dist / f"rolekeeper-{VERSION}-py3-none-any.whl"
    venv = tmp_path / "venv"
    env = cirun.clean_env({"RK_VENV": str(venv), "RK_WHEEL": str(wheel), "RUNNER_TEMP": str(tmp_path),
                           "RK_SHA256": hashlib.sha256(wheel.read_bytes()).hexdigest()})  # fmt: skip
    installed = subprocess.run(
        ["bash", str(ROOT / "ci" / "rolekeeper-ci.sh"), "install"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    assert f"rolekeeper {VERSION} installed in {venv}" in installed.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["venv"]  # its work dir is gone

    def run(*argv: str) -> str:
        done = subprocess.run(
            argv, cwd=tmp_path, env=cirun.clean_env({}), capture_output=True, text=True,
            timeout=120, check=True,
        )  # fmt: skip
        return done.stdout

    assert run(str(venv / "bin" / "rolekeeper"), "version") == f"rolekeeper {VERSION}\n"
    where = run(str(venv / "bin" / "python"), "-c", "import controller; print(controller.__file__)")
    assert where.startswith(str(venv)), where
    crds = run(str(venv / "bin" / "rolekeeper"), "crds")
    expected = "---\n".join((ROOT / "crds" / name).read_text() for name in CRDS)
    assert crds == expected
    assert crds.count("kind: CustomResourceDefinition") == len(CRDS)
