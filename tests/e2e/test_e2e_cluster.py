"""End-to-end tests on a real cluster (kind), run by `make e2e`.

Prerequisites (README "Install on a real cluster"): the operator image loaded into the cluster and
`kubectl apply -k manifests/` done. The tests use `$EXTRACTION_E2E_KUBECONFIG`, else `$KUBECONFIG`,
else `~/.kube/config`, and skip with the reason when kubectl, the cluster or the operator is
missing, so they are harmless on a machine without Docker.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.e2e

KUBECTL = shutil.which("kubectl")


def _kubeconfig() -> str:
    for candidate in (
        os.environ.get("EXTRACTION_E2E_KUBECONFIG"),
        os.environ.get("KUBECONFIG"),
        str(Path.home() / ".kube" / "config"),
    ):
        if candidate and Path(candidate).exists():
            return candidate
    pytest.skip("no kubeconfig: set EXTRACTION_E2E_KUBECONFIG to a kind cluster's kubeconfig")


def kubectl(
    *args: str, check: bool = True, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    assert KUBECTL is not None
    return subprocess.run(
        [KUBECTL, "--kubeconfig", _kubeconfig(), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=check,
    )


@pytest.fixture(scope="module", autouse=True)
def _cluster_with_operator() -> None:
    if KUBECTL is None:
        pytest.skip("kubectl is not installed")
    reachable = kubectl("version", "--request-timeout=5s", check=False, timeout=15)
    if reachable.returncode != 0:
        pytest.skip(f"no Kubernetes cluster reachable: {reachable.stderr.strip()[:200]}")
    installed = kubectl(
        "get", "deployment", "extraction-operator", "-n", "extraction-system", check=False
    )
    if installed.returncode != 0:
        pytest.skip("the operator is not installed: follow README 'Install on a real cluster'")
    kubectl(
        "wait", "deployment/extraction-operator", "-n", "extraction-system",
        "--for=condition=Available", "--timeout=120s", timeout=130,
    )  # fmt: skip


def _apply(manifest: dict[str, Any]) -> None:
    assert KUBECTL is not None
    subprocess.run(
        [KUBECTL, "--kubeconfig", _kubeconfig(), "apply", "-f", "-"],
        input=yaml.safe_dump(manifest),
        text=True,
        check=True,
        capture_output=True,
        timeout=60,
    )


def _run(name: str, stages: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "extraction.dev/v1alpha1",
        "kind": "ExtractionRun",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "image": "python:3.11-slim",
            "serviceAccountName": "extraction-stage",
            "retry": {"limit": 2, "backoff": {"initialSeconds": 2, "maxSeconds": 5}},
            "stages": stages,
        },
    }


def _get(name: str) -> dict[str, Any]:
    return dict(json.loads(kubectl("get", "xrun", name, "-n", "default", "-o", "json").stdout))


def test_a_fan_out_run_becomes_ready_with_one_job_per_attempt() -> None:
    name = f"e2e-{uuid.uuid4().hex[:6]}"
    flaky = "import os, sys; sys.exit(1 if os.environ['EXTRACTION_ATTEMPT'] == '1' else 0)"
    _apply(
        _run(
            name,
            [
                {"name": "chunk", "command": ["python", "-c", "print('chunk')"]},
                {
                    "name": "mentions",
                    "command": ["python", "-c", "import os; print(os.environ['SHARD_INDEX'])"],
                    "dependsOn": ["chunk"],
                    "shards": 3,
                },
                {"name": "entities", "command": ["python", "-c", flaky], "dependsOn": ["mentions"]},
            ],
        )
    )
    try:
        kubectl(
            "wait", f"xrun/{name}", "-n", "default", "--for=condition=Ready", "--timeout=300s",
            timeout=320,
        )  # fmt: skip
        run = _get(name)
        nodes = run["status"]["nodes"]
        assert {n["phase"] for n in nodes.values()} == {"Succeeded"}
        assert nodes["entities"]["attempts"] == 2
        jobs = json.loads(
            kubectl(
                "get", "jobs", "-n", "default", "-l", f"extraction.dev/run={name}", "-o", "json"
            ).stdout
        )["items"]
        assert len(jobs) == sum(n["attempts"] for n in nodes.values())
        printed = kubectl("get", "xrun", name, "-n", "default").stdout
        assert "Succeeded" in printed
        assert "5/5" in printed
    finally:
        kubectl("delete", "xrun", name, "-n", "default", "--wait=false", check=False)


def test_deleting_a_run_deletes_its_jobs() -> None:
    name = f"e2e-{uuid.uuid4().hex[:6]}"
    _apply(
        _run(name, [{"name": "sleep", "command": ["python", "-c", "import time; time.sleep(600)"]}])
    )
    deadline = time.monotonic() + 120
    selector = f"extraction.dev/run={name}"
    while time.monotonic() < deadline:
        if kubectl("get", "jobs", "-n", "default", "-l", selector, "-o", "name").stdout.strip():
            break
        time.sleep(2)
    else:
        pytest.fail("the run's Job never appeared")
    kubectl("delete", "xrun", name, "-n", "default", "--wait=true", timeout=120)
    while time.monotonic() < deadline + 60:
        if not kubectl("get", "jobs", "-n", "default", "-l", selector, "-o", "name").stdout.strip():
            return
        time.sleep(2)
    pytest.fail("Jobs of a deleted run were not garbage-collected")
