"""The example manifests: valid for the operator, shaped as documented, copies kept identical."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from extraction_operator.api.validation import parse_spec

REPO = Path(__file__).resolve().parents[2]
PACKAGE_MANIFESTS = REPO / "operator" / "extraction_operator" / "examples" / "manifests"
REPO_MANIFESTS = REPO / "manifests" / "examples"
NAMES = ["extraction-pipeline.yaml", "minimal.yaml", "fanout-flaky.yaml"]


def load_all(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((PACKAGE_MANIFESTS / name).read_text()) if doc]


def load(name: str) -> dict[str, Any]:
    """The one ExtractionRun of an example file."""
    [run] = [doc for doc in load_all(name) if doc["kind"] == "ExtractionRun"]
    return run


@pytest.mark.parametrize("name", NAMES)
def test_repo_copy_is_identical_to_the_packaged_one(name: str) -> None:
    assert (REPO_MANIFESTS / name).read_bytes() == (PACKAGE_MANIFESTS / name).read_bytes()


@pytest.mark.parametrize("name", NAMES)
def test_manifest_parses_without_problems(name: str) -> None:
    document = load(name)
    assert document["apiVersion"] == "extraction.dev/v1alpha1"
    assert document["kind"] == "ExtractionRun"
    assert document["metadata"]["namespace"] == "default"
    spec, problems = parse_spec(document["spec"])
    assert problems == []
    assert spec is not None


STAGE_ACCOUNT = REPO / "manifests" / "stage" / "serviceaccount.yaml"


def test_examples_with_circuits_run_as_the_stage_service_account() -> None:
    """The stage SDK keeps breakers on the run: with the namespace's `default` account every
    breaker call is a 403 on a real cluster and the breaker silently fails open."""
    account = yaml.safe_load(STAGE_ACCOUNT.read_text())["metadata"]["name"]
    guarded = {
        name: load(name)["spec"]
        for name in NAMES
        if any(stage.get("circuits") for stage in load(name)["spec"]["stages"])
    }
    assert guarded, "the examples show a circuit breaker somewhere"
    for name, spec in guarded.items():
        assert spec.get("serviceAccountName") == account, name


def test_pipeline_is_the_six_stage_example() -> None:
    spec, _ = parse_spec(load("extraction-pipeline.yaml")["spec"])
    assert spec is not None
    assert spec.image == "ghcr.io/extraction-dev/extraction-operator:0.1.0"
    assert spec.parallelism == 3
    assert [(s.name, s.depends_on) for s in spec.stages] == [
        ("chunk", []),
        ("mentions", ["chunk"]),
        ("entities", ["mentions"]),
        ("relations", ["entities"]),
        ("assemble", ["relations"]),
        ("resolve", ["assemble"]),
    ]
    for stage in spec.stages:
        assert stage.command == ["python", "-m", f"extraction_operator.examples.{stage.name}"]
    stages = {stage.name: stage for stage in spec.stages}
    assert stages["mentions"].shards == 3
    assert stages["mentions"].circuits == ["llm"]
    assert [(e.name, e.value) for e in stages["entities"].env] == [("FLAKY_FAILURES", "1")]
    assert all(not s.env for name, s in stages.items() if name != "entities")
    assert (spec.retry.backoff.initial_seconds, spec.retry.backoff.max_seconds) == (1, 5)
    assert spec.retry.non_retryable_exit_codes == [2]
    assert "llm" in spec.circuit_breakers
    assert spec.workspace is not None
    assert spec.workspace.persistent_volume_claim is not None
    assert spec.workspace.persistent_volume_claim.claim_name == "corpus-data"
    assert spec.workspace.mount_path == "/workspace"


def test_every_example_stage_module_exists() -> None:
    spec, _ = parse_spec(load("extraction-pipeline.yaml")["spec"])
    assert spec is not None
    examples = REPO / "operator" / "extraction_operator" / "examples"
    for stage in spec.stages:
        assert stage.command is not None
        module = stage.command[2].rsplit(".", 1)[1]
        assert (examples / f"{module}.py").is_file()


@pytest.mark.parametrize("name", ["extraction-pipeline.yaml", "fanout-flaky.yaml"])
def test_examples_with_a_workspace_bring_their_claim(name: str) -> None:
    run = load(name)
    claim = run["spec"]["workspace"]["persistentVolumeClaim"]["claimName"]
    claims = [doc for doc in load_all(name) if doc["kind"] == "PersistentVolumeClaim"]
    assert [(c["metadata"]["name"], c["metadata"]["namespace"]) for c in claims] == [
        (claim, run["metadata"]["namespace"])
    ]
