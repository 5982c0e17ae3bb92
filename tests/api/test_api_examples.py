"""The example ExtractionRuns in manifests/examples/ are valid three ways: against the CRD's
openAPIV3Schema (what the API server checks), against its CEL rules, and against `parse_spec`
(what the operator checks). An example that only one of them accepts would confuse every user
who starts from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import celpy
import jsonschema
import pytest
import yaml
from celpy.adapter import json_to_cel

from extraction_operator.api.constants import API_VERSION, KIND
from extraction_operator.api.crd import generate_crd
from extraction_operator.api.validation import parse_spec

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "manifests" / "examples"
JSON = dict[str, Any]


def example_runs() -> list[tuple[str, JSON]]:
    runs = []
    for path in sorted(EXAMPLES.glob("**/*.y*ml")):
        for index, document in enumerate(yaml.safe_load_all(path.read_text())):
            if isinstance(document, dict) and document.get("kind") == KIND:
                runs.append((f"{path.relative_to(REPO)}#{index}", document))
    return runs


RUNS = example_runs()
needs_examples = pytest.mark.skipif(not RUNS, reason="no ExtractionRun in manifests/examples/ yet")


def to_json_schema(node: Any) -> Any:
    """OpenAPI v3.0 as the API server reads it, as draft 2020-12 that `jsonschema` reads.

    `minimum: n, exclusiveMinimum: true` becomes `exclusiveMinimum: n`. Objects with declared
    properties get `additionalProperties: false`: the API server would silently prune an unknown
    field, which in an example is a typo that a user copies, so here it is an error."""
    if isinstance(node, list):
        return [to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {
        key: to_json_schema(value)
        for key, value in node.items()
        if not key.startswith("x-kubernetes-")
    }
    if out.get("exclusiveMinimum") is True:
        out["exclusiveMinimum"] = out.pop("minimum")
    if out.get("exclusiveMaximum") is True:
        out["exclusiveMaximum"] = out.pop("maximum")
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    if node.get("x-kubernetes-preserve-unknown-fields"):
        out.pop("additionalProperties", None)
    return out


@pytest.fixture(scope="module")
def crd_validator() -> jsonschema.Draft202012Validator:
    crd = generate_crd()
    schema = to_json_schema(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    schema["properties"]["metadata"] = {
        "type": "object",
        "required": ["name"],
        "properties": {"name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"}},
    }
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_converted_schema_rejects_what_the_api_server_would(
    crd_validator: jsonschema.Draft202012Validator,
) -> None:
    """Guards the conversion itself: an exclusive bound and a typo must still be caught."""
    run: JSON = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": "x"},
        "spec": {"image": "x", "stages": [{"name": "a", "timeoutSeconds": 0}]},
    }
    assert not crd_validator.is_valid(run)
    run["spec"]["stages"][0] = {"name": "a", "dependOn": []}
    assert not crd_validator.is_valid(run)
    run["spec"]["stages"][0] = {"name": "a", "timeoutSeconds": 1}
    assert crd_validator.is_valid(run)


@needs_examples
@pytest.mark.parametrize(("where", "run"), RUNS, ids=[where for where, _ in RUNS])
def test_example_matches_the_crd_schema(
    where: str, run: JSON, crd_validator: jsonschema.Draft202012Validator
) -> None:
    errors = [
        f"{'.'.join(map(str, error.absolute_path))}: {error.message}"
        for error in crd_validator.iter_errors(run)
    ]
    assert errors == [], where
    assert run["apiVersion"] == API_VERSION


@needs_examples
@pytest.mark.parametrize(("where", "run"), RUNS, ids=[where for where, _ in RUNS])
def test_example_passes_the_cel_rules(where: str, run: JSON) -> None:
    env = celpy.Environment()
    spec_schema = generate_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][
        "spec"
    ]
    for rule in spec_schema["x-kubernetes-validations"]:
        program = env.program(env.compile(rule["rule"]))
        assert program.evaluate({"self": json_to_cel(run["spec"])}), (where, rule["rule"])


@needs_examples
@pytest.mark.parametrize(("where", "run"), RUNS, ids=[where for where, _ in RUNS])
def test_example_parses_without_problems(where: str, run: JSON) -> None:
    spec, problems = parse_spec(run["spec"])
    assert [str(p) for p in problems] == [], where
    assert spec is not None


@needs_examples
def test_some_example_is_the_six_stage_dag_with_a_fan_out() -> None:
    """The issue asks for at least one 6+-stage pipeline with a fan-out stage among the examples."""
    specs = [parse_spec(run["spec"])[0] for _, run in RUNS]
    assert any(
        spec is not None and len(spec.stages) >= 6 and any(s.shards > 1 for s in spec.stages)
        for spec in specs
    )
