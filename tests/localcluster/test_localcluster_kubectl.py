"""kubectl against the emulator: apply the CRD and a run, get with printer columns, get as JSON.

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

REPO = Path(__file__).resolve().parents[2]
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
    run_body: Callable[..., dict[str, Any]],
) -> None:
    config = cluster.kubeconfig
    applied = kubectl(config, "apply", "-f", str(REPO / "crds" / "extractionruns.yaml"))
    assert "extractionruns.extraction.dev" in applied
    manifest = tmp_path / "run.yaml"
    manifest.write_text(yaml.safe_dump(run_body("cli-run")))
    assert "created" in kubectl(config, "apply", "-n", namespace, "-f", str(manifest))
    # A second apply of the same manifest changes nothing on the server.
    before = json.loads(kubectl(config, "get", "xrun", "cli-run", "-n", namespace, "-o", "json"))
    kubectl(config, "apply", "-n", namespace, "-f", str(manifest))
    after = json.loads(kubectl(config, "get", "xrun", "cli-run", "-n", namespace, "-o", "json"))
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert after["kind"] == "ExtractionRun"
    assert after["spec"]["parallelism"] == 4

    cluster.custom.patch_namespaced_custom_object_status(
        "extraction.dev",
        "v1alpha1",
        namespace,
        "extractionruns",
        "cli-run",
        {"status": {"phase": "Running", "progress": "0/1", "message": "hello"}},
    )
    table = kubectl(config, "get", "xrun", "-n", namespace).splitlines()
    assert table[0].split() == ["NAME", "PHASE", "PROGRESS", "AGE"]
    assert table[1].split()[:3] == ["cli-run", "Running", "0/1"]
    wide = kubectl(config, "get", "xrun", "-n", namespace, "-o", "wide").splitlines()
    assert wide[0].split() == ["NAME", "PHASE", "PROGRESS", "MESSAGE", "AGE"]

    modified = run_body("cli-run", parallelism=2)
    manifest.write_text(yaml.safe_dump(modified))
    assert "configured" in kubectl(config, "apply", "-n", namespace, "-f", str(manifest))
    changed = json.loads(kubectl(config, "get", "xrun", "cli-run", "-n", namespace, "-o", "json"))
    assert changed["spec"]["parallelism"] == 2
    assert changed["metadata"]["generation"] == 2

    described = kubectl(config, "describe", "xrun", "cli-run", "-n", namespace)
    assert "Name:" in described
    assert "cli-run" in described
    assert "cli-run" in kubectl(config, "get", "extraction", "-n", namespace)  # by category
