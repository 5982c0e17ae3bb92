"""kubectl against each backend: apply the CRD and a Gizmo, get with printer columns and as JSON.

Skipped when no kubectl binary is on PATH (or at /usr/bin/kubectl).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

CRD_FILE = Path(__file__).with_name("conformance_crd.yaml")
KUBECTL = shutil.which("kubectl") or (
    "/usr/bin/kubectl" if Path("/usr/bin/kubectl").exists() else None
)

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="no kubectl binary on PATH")


def kubectl(kubeconfig: Path, *args: str) -> str:
    assert KUBECTL is not None
    result = subprocess.run(
        [KUBECTL, "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"kubectl {' '.join(args)} failed: {result.stderr}"
    return result.stdout


def test_kubectl_apply_get_describe(
    cluster: Any,
    namespace: str,
    tmp_path: Path,
    crd: Any,
    gizmo_body: Callable[..., dict[str, Any]],
) -> None:
    config = cluster.kubeconfig
    applied = kubectl(config, "apply", "-f", str(CRD_FILE))
    assert "gizmos.conformance.extraction.dev" in applied
    manifest = tmp_path / "gizmo.yaml"
    manifest.write_text(yaml.safe_dump(gizmo_body("cli-run")))
    assert "created" in kubectl(config, "apply", "-n", namespace, "-f", str(manifest))
    # A second apply of the same manifest changes nothing on the server.
    before = json.loads(kubectl(config, "get", "gz", "cli-run", "-n", namespace, "-o", "json"))
    kubectl(config, "apply", "-n", namespace, "-f", str(manifest))
    after = json.loads(kubectl(config, "get", "gz", "cli-run", "-n", namespace, "-o", "json"))
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert after["kind"] == "Gizmo"
    assert after["spec"]["parallelism"] == 4

    cluster.custom.patch_namespaced_custom_object_status(
        "conformance.extraction.dev",
        "v1",
        namespace,
        "gizmos",
        "cli-run",
        {"status": {"phase": "Running", "progress": "0/1", "message": "hello"}},
    )
    table = kubectl(config, "get", "gz", "-n", namespace).splitlines()
    assert table[0].split() == ["NAME", "PHASE", "PROGRESS", "AGE"]
    assert table[1].split()[:3] == ["cli-run", "Running", "0/1"]
    wide = kubectl(config, "get", "gz", "-n", namespace, "-o", "wide").splitlines()
    assert wide[0].split() == ["NAME", "PHASE", "PROGRESS", "MESSAGE", "AGE"]

    modified = gizmo_body("cli-run", parallelism=2)
    manifest.write_text(yaml.safe_dump(modified))
    assert "configured" in kubectl(config, "apply", "-n", namespace, "-f", str(manifest))
    changed = json.loads(kubectl(config, "get", "gz", "cli-run", "-n", namespace, "-o", "json"))
    assert changed["spec"]["parallelism"] == 2
    assert changed["metadata"]["generation"] == 2

    described = kubectl(config, "describe", "gz", "cli-run", "-n", namespace)
    assert "Name:" in described
    assert "cli-run" in described
    assert "cli-run" in kubectl(config, "get", "conformance", "-n", namespace)  # by category
