"""Start and stop a real Kubernetes control plane on loopback: etcd, kube-apiserver,
kube-controller-manager and kube-scheduler, as the real binaries built by `build.py`.

Everything a production control plane enforces is on: TLS with a fresh CA, client-certificate
identities per component, `Node,RBAC` authorization, the default admission chain plus
`NodeRestriction`, bound service-account tokens signed by the cluster's own key. Every listener is
bound to 127.0.0.1 on a free port picked at start, so several clusters can run side by side and
nothing leaves the machine; the in-cluster Service IP range exists only as data (no proxy routes
it), and the API server's endpoint reconciler is off because the Endpoints API refuses loopback
addresses.

`ControlPlane` is a context manager: it writes the PKI and kubeconfigs into its state directory,
starts the processes in dependency order, waits for `/readyz` and for the controllers' first
visible work (the `default` ServiceAccount), and on exit stops them in reverse order (SIGTERM, then
SIGKILL after a grace period) and removes the state unless asked to keep it. Each component's log
is a file in the state directory; a start that fails says which component and shows its log tail.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import yaml

from .build import Binaries
from .pki import SERVICE_NAMES, CertificateAuthority, KeyPair, write_signing_key

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
SERVICE_CIDR = "10.0.0.0/24"
SERVICE_IP = "10.0.0.1"  # the `kubernetes` Service's ClusterIP: data only, never dialled
ISSUER = "https://kubernetes.default.svc.cluster.local"
STOP_GRACE_SECONDS = 10.0


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def render_kubeconfig(
    server: str, ca: Path, *, user: str, cert: Path | None = None, key: Path | None = None,
    token_file: Path | None = None, namespace: str = "default",
) -> str:  # fmt: skip
    """A kubeconfig for one identity: a client certificate, or a token file (re-read by clients)."""
    credentials: dict[str, str] = {}
    if cert is not None and key is not None:
        credentials = {"client-certificate": str(cert), "client-key": str(key)}
    if token_file is not None:
        credentials["tokenFile"] = str(token_file)
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "extraction", "cluster": {"server": server,
                                                        "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": user, "context": {"cluster": "extraction", "user": user,
                                                "namespace": namespace}}],
        "current-context": user,
    }  # fmt: skip
    return yaml.safe_dump(doc, sort_keys=False)


def dies_with_parent(argv: list[str]) -> list[str]:
    """`argv` run so that the kernel kills it when the process that started it dies.

    A test session that is SIGKILLed (a CI timeout, a developer's ^C^C) never runs its teardown;
    without this its etcd and API server would live on, holding ports and memory. `setpriv
    --pdeathsig` (util-linux) sets PR_SET_PDEATHSIG and then execs the component, so nothing of
    ours runs in the child between fork and exec (a `preexec_fn` would, and is unsafe with
    threads). The signal follows the *thread* that started the component: start the control
    plane from a thread that outlives it (the main thread, as every caller here does). Without
    setpriv the component runs as before."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return list(argv)
    return [setpriv, "--pdeathsig", "KILL", "--", *argv]


class StartError(RuntimeError):
    """A component did not come up; the message names it and carries its log tail."""


@dataclass
class Component:
    """One running control-plane process and where its log goes."""

    name: str
    argv: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(
                dies_with_parent(self.argv), stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=grace)


@dataclass
class Identity:
    """A client identity of the cluster: its certificate and a kubeconfig that uses it."""

    name: str
    pair: KeyPair
    kubeconfig: Path


@dataclass
class ControlPlane:
    """A running control plane; `admin_kubeconfig` is cluster-admin (`system:masters`)."""

    binaries: Binaries
    state_dir: Path | None = None
    keep_state: bool = False
    components: list[Component] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._owns_state = self.state_dir is None
        self.state_dir = Path(self.state_dir or tempfile.mkdtemp(prefix="extraction-cp-"))
        self.pki_dir = self.state_dir / "pki"
        self.api_port = 0
        self.url = ""
        self.identities: dict[str, Identity] = {}

    @property
    def root(self) -> Path:
        assert self.state_dir is not None
        return self.state_dir

    @property
    def ca_cert(self) -> Path:
        return self.pki_dir / "ca.crt"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.identities["admin"].kubeconfig

    def issue_identity(self, name: str, user: str, group: str | None = None) -> Identity:
        """A client certificate for `user` (in `group`) and a kubeconfig that uses it."""
        pair = self._ca.issue(f"client-{name}", user, organization=group)
        path = self.root / f"{name}.kubeconfig"
        path.write_text(render_kubeconfig(self.url, self.ca_cert, user=user, cert=pair.cert,
                                          key=pair.key))  # fmt: skip
        identity = Identity(user, pair, path)
        self.identities[name] = identity
        return identity

    # -- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> ControlPlane:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        self.stop()

    def start(self, timeout: float = 120.0) -> None:
        started = time.monotonic()
        self._ca = CertificateAuthority(self.pki_dir)
        self.api_port = free_port()
        self.url = f"https://{LOOPBACK}:{self.api_port}"
        serving = self._ca.issue(
            "apiserver", "kube-apiserver", server_names=SERVICE_NAMES,
            server_ips=(LOOPBACK, SERVICE_IP),
        )  # fmt: skip
        signing = write_signing_key(self.pki_dir)
        self.issue_identity("admin", "extraction-admin", "system:masters")
        self.issue_identity("controller-manager", "system:kube-controller-manager")
        self.issue_identity("scheduler", "system:kube-scheduler")

        etcd_port, peer_port = free_port(), free_port()
        self._launch("etcd", [
            str(self.binaries.path("etcd")), f"--data-dir={self.root / 'etcd'}",
            f"--listen-client-url=http://{LOOPBACK}:{etcd_port}",
            f"--listen-peer-url=http://{LOOPBACK}:{peer_port}",
        ])  # fmt: skip
        self._wait_http(f"http://{LOOPBACK}:{etcd_port}/health", "etcd", timeout)
        self._launch("kube-apiserver", [
            str(self.binaries.path("kube-apiserver")),
            f"--etcd-servers=http://{LOOPBACK}:{etcd_port}",
            f"--bind-address={LOOPBACK}", f"--advertise-address={LOOPBACK}",
            f"--secure-port={self.api_port}", f"--cert-dir={self.pki_dir}",
            f"--tls-cert-file={serving.cert}", f"--tls-private-key-file={serving.key}",
            f"--client-ca-file={self.ca_cert}",
            # Front-proxy authentication is unused, but components read its CA from a ConfigMap
            # and log an error per second while it is empty; no certificate carries the name.
            f"--requestheader-client-ca-file={self.ca_cert}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--service-account-issuer={ISSUER}",
            f"--service-account-key-file={signing.cert}",
            f"--service-account-signing-key-file={signing.key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            "--endpoint-reconciler-type=none",
            "--profiling=false",
            "--v=1",
        ])  # fmt: skip
        self._wait_ready("kube-apiserver", self.url + "/readyz", timeout)
        for name, binary in (("controller-manager", "kube-controller-manager"),
                             ("scheduler", "kube-scheduler")):  # fmt: skip
            kubeconfig = self.identities[name].kubeconfig
            extra = (
                [f"--root-ca-file={self.ca_cert}", "--use-service-account-credentials=true",
                 f"--service-account-private-key-file={signing.key}"]
                if binary == "kube-controller-manager" else []
            )  # fmt: skip
            self._launch(binary, [
                str(self.binaries.path(binary)), f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                f"--bind-address={LOOPBACK}", f"--secure-port={free_port()}",
                "--leader-elect=false", "--v=1", *extra,
            ])  # fmt: skip
        self._wait_for_default_service_account(timeout)
        log.info("control plane %s up at %s in %.1f s", self.binaries.version, self.url,
                 time.monotonic() - started)  # fmt: skip

    def stop(self) -> None:
        for component in reversed(self.components):
            component.stop()
        self.components.clear()
        if self._owns_state and not self.keep_state:
            shutil.rmtree(self.root, ignore_errors=True)

    # -- helpers ---------------------------------------------------------------------------------

    def _launch(self, name: str, argv: list[str]) -> None:
        component = Component(name, argv, self.root / f"{name}.log")
        component.start()
        self.components.append(component)

    def component(self, name: str) -> Component:
        return next(c for c in self.components if c.name == name)

    def _check_alive(self) -> None:
        for component in self.components:
            if not component.alive():
                raise StartError(
                    f"{component.name} exited during start; last lines of {component.log_path}:"
                    f"\n{component.log_tail()}"
                )

    def _admin_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_cert))
        admin = self.identities["admin"].pair
        context.load_cert_chain(str(admin.cert), str(admin.key))
        return context

    def _wait_http(self, url: str, name: str, timeout: float) -> None:
        self._poll(name, timeout, lambda: self._get(url, None) is not None)

    def _wait_ready(self, name: str, url: str, timeout: float) -> None:
        context = self._admin_context()
        self._poll(name, timeout, lambda: self._get(url, context) is not None)

    def _wait_for_default_service_account(self, timeout: float) -> None:
        """The controller manager's first visible work: pods in `default` can be created now."""
        context = self._admin_context()
        url = self.url + "/api/v1/namespaces/default/serviceaccounts/default"
        self._poll("kube-controller-manager", timeout, lambda: self._get(url, context) is not None)

    def get_json(self, path: str) -> dict[str, object] | None:
        """GET `path` as the admin; None when it does not exist (or the server did not answer)."""
        body = self._get(self.url + path, self._admin_context())
        if body is None:
            return None
        doc: dict[str, object] = json.loads(body)
        return doc

    @staticmethod
    def _get(url: str, context: ssl.SSLContext | None) -> bytes | None:
        try:
            with urllib.request.urlopen(url, context=context, timeout=5) as response:
                body: bytes = response.read()
                return body
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def _poll(self, name: str, timeout: float, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            if ready():
                return
            time.sleep(0.2)
        self._check_alive()
        component = next((c for c in self.components if c.name.endswith(name)), None)
        tail = component.log_tail() if component else ""
        raise StartError(f"{name} was not ready within {timeout:.0f} s\n{tail}")
