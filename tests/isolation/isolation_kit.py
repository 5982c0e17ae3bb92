"""Runs, stage pods and their output on the real tier, for the stage-isolation tests.

Stage pods here are real pods of real Jobs the installed operator launched, running this
checkout's scripts (`stage_attacks.py`, `stage_breaker.py`) as their command with the session's
Python; every request they make carries the pod's own bound ServiceAccount token. Their verdicts
come back on stdout (one JSON object per line), read from the node's log files on the project's
own tier and with `kubectl logs` elsewhere.
"""

from __future__ import annotations

import base64
import json
import ssl
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import yaml

from cluster_kit import Kubectl, wait_for

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
STAGE_ACCOUNT = "extraction-stage"
OTHER_ACCOUNT = "other-stage"
BREAKERS = "extraction.dev/circuit-breakers"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:5]}"


def script(name: str, *args: str) -> list[str]:
    """A stage command that runs one of this directory's scripts with the session's Python."""
    return [PYTHON, str(HERE / name), *args]


def sleeper(name: str = "hold", **extra: Any) -> dict[str, Any]:
    """A stage that stays in flight (its run non-terminal, its Job named in status)."""
    return {
        "name": name,
        "command": [PYTHON, "-c", "import time; time.sleep(900)"],
        "circuits": ["llm"],
        **extra,
    }


class Tenant:
    """One namespace with two stage ServiceAccounts, and the runs of one test module in it."""

    def __init__(self, kube: Kubectl, node: Any | None) -> None:
        self.kube = kube
        self.node = node
        self.namespace = unique("iso")

    def create(self) -> Tenant:
        self.kube.run("create", "namespace", self.namespace)
        for account in (STAGE_ACCOUNT, OTHER_ACCOUNT):
            self.kube.run("create", "serviceaccount", account, "-n", self.namespace)
        return self

    def delete(self) -> None:
        self.kube.run("delete", "namespace", self.namespace, "--wait=false", check=False)

    # ---------------------------------------------------------------------------------- runs

    def run_manifest(
        self, name: str, stages: list[dict[str, Any]], account: str = STAGE_ACCOUNT, **spec: Any
    ) -> dict[str, Any]:
        return {
            "apiVersion": "extraction.dev/v1alpha1",
            "kind": "ExtractionRun",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": {
                "image": "python:3.11-slim",
                "serviceAccountName": account,
                "retry": {"limit": 0},
                "circuitBreakers": {"llm": {"failureThreshold": 1000}},
                "stages": stages,
                **spec,
            },
        }

    def create_run(
        self, name: str, stages: list[dict[str, Any]], account: str = STAGE_ACCOUNT, **spec: Any
    ) -> str:
        self.kube.apply(self.run_manifest(name, stages, account, **spec))
        return name

    def get(self, name: str) -> dict[str, Any]:
        return self.kube.json("get", "xrun", name, "-n", self.namespace)

    def annotation(self, name: str) -> str | None:
        value: str | None = (self.get(name)["metadata"].get("annotations") or {}).get(BREAKERS)
        return value

    def set_annotation(self, name: str, value: str) -> None:
        patch = json.dumps({"metadata": {"annotations": {BREAKERS: value}}})
        self.kube.run("patch", "xrun", name, "-n", self.namespace, "--type=merge", "-p", patch)

    def node_status(self, run: str, node: str) -> dict[str, Any]:
        status: dict[str, Any] = (self.get(run).get("status") or {}).get("nodes", {}).get(node, {})
        return status

    def wait_node(self, run: str, node: str, phases: set[str], timeout: float = 120) -> dict:
        def reached() -> dict[str, Any] | None:
            status = self.node_status(run, node)
            return status if status.get("phase") in phases else None

        found: dict[str, Any] = wait_for(f"{run}/{node} in {sorted(phases)}", reached, timeout)
        return found

    def wait_phase(self, run: str, phases: set[str], timeout: float = 240) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            obj = self.get(run)
            return obj if (obj.get("status") or {}).get("phase") in phases else None

        found: dict[str, Any] = wait_for(f"{run} in {sorted(phases)}", reached, timeout)
        return found

    def delete_run(self, name: str) -> None:
        self.kube.run("delete", "xrun", name, "-n", self.namespace, "--wait=false", check=False)

    # ------------------------------------------------------------------------------- output

    def pods_of_job(self, job: str) -> list[str]:
        names = self.kube.names("pods", self.namespace, f"job-name={job}")
        return [name.split("/", 1)[1] for name in names]

    def logs(self, pod: str) -> str:
        if self.node is not None:
            text: str = self.node.logs(self.namespace, pod)
            return text
        return self.kube.run("logs", "-n", self.namespace, pod, check=False).stdout

    def records(self, job: str, tag: str, timeout: float = 60) -> list[dict[str, Any]]:
        """The JSON records a stage printed on lines starting with `tag`, once it printed
        `tag DONE`."""

        def finished() -> list[dict[str, Any]] | None:
            for pod in self.pods_of_job(job):
                lines = self.logs(pod).splitlines()
                if f"{tag} DONE" in lines:
                    prefix = f"{tag} "
                    return [
                        json.loads(line[len(prefix) :])
                        for line in lines
                        if line.startswith(prefix) and line != f"{tag} DONE"
                    ]
            return None

        found: list[dict[str, Any]] = wait_for(f"{tag} records of Job {job}", finished, timeout)
        return found


def pause(seconds: float) -> None:
    time.sleep(seconds)


def request_as(
    kube: Kubectl, token: str, method: str, path: str, body: Any = None
) -> tuple[int, str]:
    """One raw request with `token` as the only credential: (status, the Status message or '').
    (kubectl cannot do what a stage does: `kubectl patch` GETs the object first.)"""
    admin = yaml.safe_load(Path(kube.kubeconfig).read_text())
    context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])
    cluster = next(c for c in admin["clusters"] if c["name"] == context["context"]["cluster"])
    server = cluster["cluster"]["server"]
    authority = cluster["cluster"].get("certificate-authority-data")
    tls = (
        ssl.create_default_context(cadata=base64.b64decode(authority).decode())
        if authority
        else ssl.create_default_context(cafile=cluster["cluster"]["certificate-authority"])
    )
    data = None if body is None else json.dumps(body).encode()
    call = urllib.request.Request(server + path, data=data, method=method)
    call.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        patch = method == "PATCH"
        call.add_header(
            "Content-Type", "application/merge-patch+json" if patch else "application/json"
        )
    try:
        with urllib.request.urlopen(call, context=tls, timeout=30) as response:
            return response.status, ""
    except urllib.error.HTTPError as error:
        answer = json.loads(error.read() or b"{}")
        return error.code, str(answer.get("message", ""))


def pod_token(kube: Kubectl, namespace: str, account: str, pod: str) -> str:
    """A TokenRequest token of `account` bound to `pod`: the same pod-name/pod-uid extra as the
    token the node projects into the pod."""
    uid = kube.json("get", "pod", pod, "-n", namespace)["metadata"]["uid"]
    return kube.run(
        "create", "token", account, "-n", namespace,
        "--bound-object-kind=Pod", f"--bound-object-name={pod}", f"--bound-object-uid={uid}",
    ).stdout.strip()  # fmt: skip
