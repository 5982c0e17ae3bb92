"""The emulator serving the project's own CRD, crds/extractionruns.yaml: names, defaults, schema,
printer columns and CEL rules of ExtractionRun, as the operator, kubectl and users meet them.

These are claims about the ExtractionRun CRD rather than about Kubernetes, so they run against the
emulator only (`emulator_cluster`); the conformance suite checks the same machinery with its own
`Gizmo` CRD on both backends, where an ExtractionRun would collide with a running operator.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CRD_FILE = REPO / "crds" / "extractionruns.yaml"
GROUP, VERSION, PLURAL = "extraction.dev", "v1alpha1", "extractionruns"
RUNS = f"/apis/{GROUP}/{VERSION}"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
MERGE = "application/merge-patch+json"


@pytest.fixture(scope="module")
def cluster(emulator_cluster: Any) -> Any:
    return emulator_cluster


@pytest.fixture(scope="module")
def crd(cluster: Any, apply_crd: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    return apply_crd(cluster, yaml.safe_load(CRD_FILE.read_text()))


@pytest.fixture
def namespace(cluster: Any, make_namespace: Callable[[Any], Iterator[str]]) -> Iterator[str]:
    yield from make_namespace(cluster)


def run_body(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ExtractionRun",
        "metadata": {"name": name},
        "spec": {"image": "busybox", "stages": [{"name": "a", "command": ["true"]}], **spec},
    }


def runs_path(namespace: str, name: str = "") -> str:
    return f"{RUNS}/namespaces/{namespace}/{PLURAL}" + (f"/{name}" if name else "")


def make_run(cluster: Any, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    created: dict[str, Any] = cluster.custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, body
    )
    return created


def test_extractionrun_crd_is_established_with_its_names(cluster: Any, crd: Any) -> None:
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions["Established"] == "True"
    status, listing, _ = cluster.request("GET", RUNS)
    assert status == 200
    resources = {r["name"]: r for r in listing["resources"]}
    runs = resources[PLURAL]
    assert runs["kind"] == "ExtractionRun"
    assert runs["namespaced"] is True
    assert "xrun" in runs["shortNames"]
    assert "extraction" in runs["categories"]
    assert "extractionruns/status" in resources


def test_extractionrun_gets_its_schema_defaults_and_pruning(
    cluster: Any, crd: Any, namespace: str
) -> None:
    body = run_body("defaults")
    body["spec"]["notInSchema"] = "dropped"
    created = make_run(cluster, namespace, body)
    assert created["spec"]["parallelism"] == 4
    assert created["spec"]["failFast"] is True
    assert created["spec"]["stages"][0]["shards"] == 1
    assert "notInSchema" not in created["spec"]


def test_extractionrun_schema_rejects_a_non_object_spec_and_out_of_range_values(
    cluster: Any, crd: Any, namespace: str
) -> None:
    body = run_body("bad-spec")
    body["spec"] = "oops"
    status, error, _ = cluster.request("POST", runs_path(namespace), body)
    assert status == 422
    assert error["reason"] == "Invalid"
    assert "spec" in error["message"]
    status, error, _ = cluster.request("POST", runs_path(namespace), run_body("bad", parallelism=0))
    assert status == 422
    assert "spec.parallelism" in error["message"]


def test_extractionrun_printer_columns(cluster: Any, crd: Any, namespace: str) -> None:
    make_run(cluster, namespace, run_body("tabled"))
    cluster.custom.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        "tabled",
        {"status": {"phase": "Running", "progress": "1/3"}},
    )
    status, table, _ = cluster.request("GET", runs_path(namespace), headers={"Accept": TABLE})
    assert status == 200
    columns = [c["name"] for c in table["columnDefinitions"]]
    assert columns == ["Name", "Phase", "Progress", "Message", "Circuits", "Age"]
    for wide in ("Message", "Circuits"):  # shown with -o wide only
        assert next(c for c in table["columnDefinitions"] if c["name"] == wide)["priority"] == 1
    assert table["rows"][0]["cells"][:3] == ["tabled", "Running", "1/3"]


def test_extractionrun_cel_rules(cluster: Any, crd: Any, namespace: str) -> None:
    from extraction_operator.localcluster.apiserver import cel

    if not cel.available():
        pytest.skip("cel-python is not installed: the emulator skips CRD validation rules")
    body = run_body("cel")
    body["spec"]["stages"].append({"name": "b", "dependsOn": ["nope"]})
    status, error, _ = cluster.request("POST", runs_path(namespace), body)
    assert status == 422
    assert "spec.stages" in error["message"]
    assert "every stages[].dependsOn entry must be the name of a stage" in error["message"]
    make_run(cluster, namespace, run_body("frozen"))
    patch = {"spec": {"stages": [{"name": "other", "command": ["true"]}]}}
    status, error, _ = cluster.request(
        "PATCH", runs_path(namespace, "frozen"), patch, content_type=MERGE
    )
    assert status == 422
    assert "spec.stages is immutable" in error["message"]
