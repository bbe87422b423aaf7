"""A real etcd + kube-apiserver on 127.0.0.1 (the envtest approach) for tests, demo and bench."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.harness.util import Timeout, free_port, until

# Must match hack/build-envtest.sh, which honours the same override.
K8S_VERSION = os.environ.get("RK_K8S_VERSION", "v1.34.4")
REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "hack" / "build-envtest.sh"
BINARIES = ("etcd", "kube-apiserver", "kubectl")
ADMIN_USER = "rolekeeper-admin"
SERVICE_CIDR = "10.0.0.0/24"
START_TIMEOUT = 90.0
STOP_TIMEOUT = 15.0

# Every control plane still running, so an interpreter exit never leaks etcd/apiserver.
_LIVE: set[ControlPlane] = set()


class BinariesUnavailable(RuntimeError):
    """No binaries found and none can be built (no Go toolchain)."""


class ControlPlaneError(RuntimeError):
    """A process failed to start or never became ready."""


class KubectlError(subprocess.CalledProcessError):
    """kubectl failed; unlike CalledProcessError, str() includes kubectl's stderr."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstderr: {self.stderr}"


# --------------------------------------------------------------------------- binaries


def cache_dir() -> Path:
    """Versioned cache that hack/build-envtest.sh fills (same defaults as the script)."""
    root = os.environ.get("RK_ENVTEST_CACHE")
    if root is None:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = str(Path(xdg) / "rolekeeper" / "envtest")
    return Path(root) / K8S_VERSION.removeprefix("v")


def _has_binaries(directory: Path) -> bool:
    return all(os.access(directory / name, os.X_OK) for name in BINARIES)


def find_binaries() -> Path | None:
    """Directory holding etcd, kube-apiserver, kubectl: KUBEBUILDER_ASSETS, else the cache."""
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets:
        # An explicit setting that is wrong must not silently fall through to something else.
        if not _has_binaries(Path(assets)):
            raise BinariesUnavailable(f"KUBEBUILDER_ASSETS={assets} lacks one of {BINARIES}")
        return Path(assets)
    cached = cache_dir()
    # The script writes .complete last, so its presence means a finished build.
    if (cached / ".complete").is_file() and _has_binaries(cached):
        return cached
    return None


def can_build() -> bool:
    """Whether hack/build-envtest.sh can run here."""
    return shutil.which("go") is not None and BUILD_SCRIPT.is_file()


def build_binaries() -> Path:
    """Run hack/build-envtest.sh (progress streams to stderr) and return its directory."""
    if not can_build():
        raise BinariesUnavailable("no Go toolchain on PATH to build kube-apiserver and etcd")
    done = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True, check=True
    )
    lines = done.stdout.strip().splitlines()
    if not lines:
        raise BinariesUnavailable(f"{BUILD_SCRIPT} printed no directory")
    return Path(lines[-1])


def ensure_binaries() -> Path:
    """Find the binaries, building them once into the cache when Go is available."""
    return find_binaries() or build_binaries()


# --------------------------------------------------------------------------- helpers


def write_private_key(path: Path) -> None:
    """RSA key the apiserver both signs and verifies service-account tokens with."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def write_kubeconfig(path: Path, server: str, ca_file: Path, token: str, user: str) -> None:
    """kubectl reads JSON kubeconfigs, which spares a YAML dependency here."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "envtest",
                "cluster": {"server": server, "certificate-authority": str(ca_file)},
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "envtest", "context": {"cluster": "envtest", "user": user}}],
        "current-context": "envtest",
    }
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)


def _no_proxy_env() -> dict[str, str]:
    # Webhook calls from the apiserver to 127.0.0.1 must never go through a sandbox proxy.
    env = dict(os.environ)
    for name in ("NO_PROXY", "no_proxy"):
        env[name] = ",".join(filter(None, [env.get(name), "127.0.0.1", "localhost"]))
    return env


@dataclass
class _Process:
    """One child process in its own session, logging to a file, stopped by process group."""

    name: str
    argv: list[str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        self._log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=_no_proxy_env(),
        )

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self) -> None:
        if self.popen is not None:
            self._signal_group(signal.SIGTERM)
            try:
                self.popen.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.popen.wait(STOP_TIMEOUT)
            self.popen = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def _signal_group(self, sig: signal.Signals) -> None:
        assert self.popen is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------- clusters


class Cluster:
    """What tests need from any cluster: a kubeconfig, kubectl, fresh namespaces."""

    def __init__(self, kubeconfig: Path, kubectl_path: Path) -> None:
        self.kubeconfig = kubeconfig
        self.kubectl_path = kubectl_path

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run the real kubectl against this cluster; raises KubectlError when check fails."""
        argv = [str(self.kubectl_path), "--kubeconfig", str(self.kubeconfig), *args]
        done = subprocess.run(
            argv, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and done.returncode != 0:
            raise KubectlError(done.returncode, argv, done.stdout, done.stderr)
        return done

    def create_namespace(self, prefix: str = "rk-test") -> str:
        """A fresh namespace; nothing deletes it (no controller-manager would finish that)."""
        name = f"{_dns_label(prefix, 50)}-{secrets.token_hex(4)}"
        self.kubectl("create", "namespace", name)
        return name

    def service_account_token(self, namespace: str, name: str, duration: str = "1h") -> str:
        """Create the ServiceAccount if needed and return a bound token for it (TokenRequest)."""
        created = self.kubectl("create", "serviceaccount", name, "-n", namespace, check=False)
        if created.returncode != 0 and "already exists" not in created.stderr.lower():
            raise KubectlError(created.returncode, created.args, created.stdout, created.stderr)
        return self.kubectl(
            "create", "token", name, "-n", namespace, f"--duration={duration}"
        ).stdout.strip()

    def kubeconfig_for_token(self, token: str, path: Path, user: str = "token-user") -> Path:
        """A kubeconfig for the same server and CA, authenticating with another token."""
        cluster = json.loads(
            self.kubectl("config", "view", "--raw", "--minify", "-o", "json").stdout
        )
        entry = cluster["clusters"][0]["cluster"]
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "c", "cluster": entry}],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": user}}],
            "current-context": "c",
        }
        path.write_text(json.dumps(config, indent=2))
        path.chmod(0o600)
        return path


def _dns_label(text: str, limit: int) -> str:
    cleaned = "".join(ch if ch.isalnum() else "-" for ch in text.lower())
    return "-".join(filter(None, cleaned.split("-")))[:limit].strip("-") or "ns"


class ExternalCluster(Cluster):
    """An existing cluster named by a kubeconfig (RK_E2E_KUBECONFIG); nothing is started."""

    def __init__(self, kubeconfig: Path, kubectl_path: Path | None = None) -> None:
        found = kubectl_path or _any_kubectl()
        super().__init__(kubeconfig, found)


def _any_kubectl() -> Path:
    with contextlib.suppress(BinariesUnavailable):
        binaries = find_binaries()
        if binaries:
            return binaries / "kubectl"
    on_path = shutil.which("kubectl")
    if on_path is None:
        raise BinariesUnavailable("no kubectl: set KUBEBUILDER_ASSETS or put kubectl on PATH")
    return Path(on_path)


@dataclass(frozen=True)
class StaticToken:
    """One line of the apiserver's --token-auth-file."""

    token: str
    user: str
    uid: str
    groups: tuple[str, ...] = ()

    def csv_line(self) -> str:
        return f'{self.token},{self.user},{self.uid},"{",".join(self.groups)}"'


class ControlPlane(Cluster):
    """etcd + kube-apiserver on free 127.0.0.1 ports; a context manager that always cleans up.

    Attributes once started: kubeconfig (admin, system:masters), server (https URL),
    ca_file, admin_token, workdir, etcd_url, etcd / apiserver (`_Process`, with .pid).
    """

    def __init__(self, binaries: Path | None = None, workdir: Path | None = None) -> None:
        self.binaries = binaries or ensure_binaries()
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="rk-envtest-"))
        super().__init__(self.workdir / "kubeconfig", self.binaries / "kubectl")
        self.admin_token = secrets.token_urlsafe(32)
        self.tokens = [StaticToken(self.admin_token, ADMIN_USER, "1", ("system:masters",))]
        etcd_client, etcd_peer, apiserver_port = free_port(), free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{etcd_client}"
        self.server = f"https://127.0.0.1:{apiserver_port}"
        self.ca_file = self.workdir / "certs" / "apiserver.crt"
        self.etcd = _Process("etcd", self._etcd_argv(etcd_peer), self.workdir / "etcd.log")
        self.apiserver = _Process(
            "kube-apiserver", self._apiserver_argv(apiserver_port), self.workdir / "apiserver.log"
        )

    # ----- lifecycle

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start etcd then the apiserver and wait until both are ready; cleans up on failure."""
        _LIVE.add(self)
        try:
            (self.workdir / "certs").mkdir(parents=True, exist_ok=True)
            write_private_key(self.workdir / "sa.key")
            self._write_token_file()
            self._start_etcd()
            self._start_apiserver()
            write_kubeconfig(
                self.kubeconfig, self.server, self.ca_file, self.admin_token, ADMIN_USER
            )
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the apiserver, then etcd, by process group; remove an owned workdir."""
        self.apiserver.stop()
        self.etcd.stop()
        _LIVE.discard(self)
        if self._own_workdir and os.environ.get("RK_ENVTEST_KEEP") != "1":
            shutil.rmtree(self.workdir, ignore_errors=True)

    def restart_apiserver(self) -> None:
        """Stop and start kube-apiserver with the same port, certs and etcd."""
        self.apiserver.stop()
        self._start_apiserver()

    def restart_etcd(self) -> None:
        """Stop and start etcd on the same ports and data dir; waits for the apiserver too."""
        self.etcd.stop()
        self._start_etcd()
        self._wait_ready(self.apiserver, self._apiserver_ready)

    def add_token(self, user: str, groups: Sequence[str] = (), token: str | None = None) -> str:
        """Add a static token user; restarts the apiserver, which reads the file only at start.

        For ServiceAccount identities prefer service_account_token(), which needs no restart.
        """
        new = StaticToken(token or secrets.token_urlsafe(32), user, f"u-{user}", tuple(groups))
        self.tokens.append(new)
        self._write_token_file()
        if self.apiserver.alive():
            self.restart_apiserver()
        return new.token

    # ----- processes

    def _etcd_argv(self, peer_port: int) -> list[str]:
        peer = f"http://127.0.0.1:{peer_port}"
        return [
            str(self.binaries / "etcd"),
            "--name=default",
            f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={self.etcd_url}",
            f"--advertise-client-urls={self.etcd_url}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=default={peer}",
            # Tests never need durability; fsync dominates etcd latency on shared disks.
            "--unsafe-no-fsync",
            "--log-level=warn",
        ]

    def _apiserver_argv(self, port: int) -> list[str]:
        sa_key = self.workdir / "sa.key"
        return [
            str(self.binaries / "kube-apiserver"),
            f"--etcd-servers={self.etcd_url}",
            f"--secure-port={port}",
            # Without an explicit address the apiserver looks for a default route and fails.
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            # No --tls-cert-file: the apiserver writes a self-signed cert here; it is our CA.
            f"--cert-dir={self.workdir / 'certs'}",
            f"--service-account-key-file={sa_key}",
            f"--service-account-signing-key-file={sa_key}",
            f"--service-account-issuer={self.server}",
            "--authorization-mode=RBAC",
            f"--token-auth-file={self.workdir / 'tokens.csv'}",
            # No controller-manager creates default ServiceAccounts, so pods etc. would be refused.
            "--disable-admission-plugins=ServiceAccount",
            # Nothing but us may write the kubernetes Service endpoints (no real node IPs).
            "--endpoint-reconciler-type=none",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--allow-privileged=true",
        ]

    def _write_token_file(self) -> None:
        path = self.workdir / "tokens.csv"
        path.write_text("".join(t.csv_line() + "\n" for t in self.tokens))
        path.chmod(0o600)

    def _start_etcd(self) -> None:
        self.etcd.start()
        self._wait_ready(self.etcd, self._etcd_ready)

    def _start_apiserver(self) -> None:
        self.apiserver.start()
        self._wait_ready(self.apiserver, self._apiserver_ready)

    def _wait_ready(self, process: _Process, probe: Callable[[], bool]) -> None:
        def ready() -> bool:
            if not process.alive():
                raise ControlPlaneError(f"{process.name} exited:\n{process.log_tail()}")
            return probe()

        try:
            until(ready, START_TIMEOUT, process.name, every=0.2)
        except Timeout:
            raise ControlPlaneError(
                f"{process.name} not ready after {START_TIMEOUT}s:\n{process.log_tail()}"
            ) from None

    # ----- readiness probes

    def _etcd_ready(self) -> bool:
        return _http_ok(urllib.request.Request(f"{self.etcd_url}/health"), None)

    def _apiserver_ready(self) -> bool:
        if not self.ca_file.is_file():
            return False
        request = urllib.request.Request(
            f"{self.server}/readyz", headers={"Authorization": f"Bearer {self.admin_token}"}
        )
        return _http_ok(request, _ssl_context(self.ca_file))


def _ssl_context(ca_file: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca_file))
    # The apiserver's self-signed cert lacks extensions that X509_STRICT (Python 3.13+) demands.
    context.verify_flags &= ~getattr(ssl, "VERIFY_X509_STRICT", 0)
    return context


def _http_ok(request: urllib.request.Request, context: ssl.SSLContext | None) -> bool:
    # An empty ProxyHandler: 127.0.0.1 probes must not be sent to an HTTP(S)_PROXY.
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(request, timeout=2) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError, ssl.SSLError):
        return False


@atexit.register
def _stop_all() -> None:
    for plane in list(_LIVE):
        plane.stop()


# --------------------------------------------------------------------------- CLI


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    # SIGTERM (make, CI, systemd) should unwind through the context manager like Ctrl-C does.
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m tests.harness.envtest up`: run a control plane until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m tests.harness.envtest")
    parser.add_argument("command", choices=["up"])
    parser.parse_args(argv)
    with _sigterm_as_interrupt(), contextlib.suppress(KeyboardInterrupt):
        started = time.monotonic()
        with ControlPlane() as plane:
            print(f"# control plane ready in {time.monotonic() - started:.1f}s", file=sys.stderr)
            print(f"export KUBECONFIG={plane.kubeconfig}", flush=True)
            signal.pause()
    return 0


if __name__ == "__main__":
    sys.exit(main())
