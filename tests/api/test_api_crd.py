"""The generated CRD: committed copy is current, schema is structural (the API server would accept
it), names and printer columns are as documented, and every CEL rule's cost is bounded."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from extraction_operator.api.crd import (
    SPEC_RULES,
    STAGES_RULES,
    SchemaError,
    _structural,
    generate_crd,
    render_crd_yaml,
)
from extraction_operator.api.immutability import ROOT_RULES

REPO = Path(__file__).resolve().parents[2]
COMMITTED_CRD = REPO / "crds" / "extractionruns.yaml"
KUBERNETES_VERSION = "1.33"

JSON = dict[str, Any]
# JSON-schema keywords a structural schema must not use (or, for anyOf, only as int-or-string).
# A field access in a CEL rule: `.name`, not followed by `(` as a macro such as `.all(` is.
FIELD_ACCESS = re.compile(r"\.(\w+)\b(?!\s*\()")
FORBIDDEN = {"$ref", "oneOf", "allOf", "not", "propertyNames", "patternProperties", "definitions"}


@pytest.fixture(scope="module")
def crd() -> JSON:
    return generate_crd()


@pytest.fixture(scope="module")
def version(crd: JSON) -> JSON:
    (only,) = crd["spec"]["versions"]
    return dict(only)


@pytest.fixture(scope="module")
def root_schema(version: JSON) -> JSON:
    return dict(version["schema"]["openAPIV3Schema"])


def walk(schema: JSON, path: str = "") -> Iterator[tuple[str, JSON]]:
    """Every schema node with its path: `.spec.stages[].name`, `.spec.circuitBreakers{}`."""
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from walk(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from walk(schema["additionalProperties"], f"{path}{{}}")


# -------------------------------------------------------------------------------- committed copy


def test_committed_crd_is_current() -> None:
    assert COMMITTED_CRD.read_text() == render_crd_yaml(), (
        "crds/extractionruns.yaml is out of date with the models: run `make crds` and commit it"
    )


def test_committed_crd_parses_to_the_generated_document(crd: JSON) -> None:
    assert yaml.safe_load(COMMITTED_CRD.read_text()) == crd


def test_crd_validates_against_apiextensions_v1() -> None:
    document = yaml.safe_load(COMMITTED_CRD.read_text())
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_apiextensions_validation_is_not_vacuous(crd: JSON) -> None:
    broken = yaml.safe_load(yaml.safe_dump(crd))
    broken["spec"]["versions"][0]["servd"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


# ------------------------------------------------------------------------------------ structural


def test_every_node_is_typed_or_int_or_string(root_schema: JSON) -> None:
    untyped = [
        path or "<root>"
        for path, node in walk(root_schema)
        if "type" not in node and not node.get("x-kubernetes-int-or-string")
    ]
    assert untyped == []


def test_no_forbidden_keywords(root_schema: JSON) -> None:
    found = [f"{path}: {key}" for path, node in walk(root_schema) for key in FORBIDDEN & set(node)]
    assert found == []


def test_any_of_only_in_int_or_string_form(root_schema: JSON) -> None:
    for path, node in walk(root_schema):
        if "anyOf" in node:
            assert node.get("x-kubernetes-int-or-string") is True, path
            assert "type" not in node, path
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path


def test_no_additional_properties_beside_properties(root_schema: JSON) -> None:
    both = [p for p, n in walk(root_schema) if "properties" in n and "additionalProperties" in n]
    assert both == []
    boolean = [p for p, n in walk(root_schema) if isinstance(n.get("additionalProperties"), bool)]
    assert boolean == []


def test_metadata_is_left_to_the_api_server(root_schema: JSON) -> None:
    assert root_schema["properties"]["metadata"] == {"type": "object"}


def test_defaults_are_scalars_that_satisfy_their_own_schema(root_schema: JSON) -> None:
    for path, node in walk(root_schema):
        if "default" not in node or path == ".status":
            continue
        default = node["default"]
        expected: dict[str, type | tuple[type, ...]] = {
            "string": str,
            "integer": int,
            "number": (int, float),
            "boolean": bool,
        }
        assert isinstance(default, expected[node["type"]]), path
        if "enum" in node:
            assert default in node["enum"], path
        if "minimum" in node:
            assert default >= node["minimum"], path
        if "maximum" in node:
            assert default <= node["maximum"], path


def test_converter_rejects_unions_that_are_not_structural() -> None:
    with pytest.raises(SchemaError, match="unions"):
        _structural({"anyOf": [{"type": "string"}, {"type": "integer"}]}, {}, "spec.x")


def test_converter_rejects_untyped_nodes() -> None:
    with pytest.raises(SchemaError, match="type"):
        _structural({"description": "anything"}, {}, "spec.x")


def test_converter_rejects_unknown_keywords() -> None:
    with pytest.raises(SchemaError, match="oneOf"):
        _structural({"type": "object", "oneOf": []}, {}, "spec.x")


# ------------------------------------------------------------------------------ names and columns


def test_names_and_scope(crd: JSON) -> None:
    spec = crd["spec"]
    assert crd["metadata"]["name"] == "extractionruns.extraction.dev"
    assert spec["group"] == "extraction.dev"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == "ExtractionRun"
    assert spec["names"]["plural"] == "extractionruns"
    assert spec["names"]["singular"] == "extractionrun"
    assert spec["names"]["shortNames"] == ["xrun"]


def test_single_served_storage_version_with_status_subresource(version: JSON) -> None:
    assert version["name"] == "v1alpha1"
    assert version["served"] is True
    assert version["storage"] is True
    assert version["subresources"] == {"status": {}}


def test_printer_columns(version: JSON) -> None:
    columns = [
        (c["name"], c["type"], c["jsonPath"], c.get("priority", 0))
        for c in version["additionalPrinterColumns"]
    ]
    assert columns == [
        ("Phase", "string", ".status.phase", 0),
        ("Progress", "string", ".status.progress", 0),
        ("Message", "string", ".status.message", 1),
        ("Circuits", "string", ".status.circuitSummary", 1),
        ("Age", "date", ".metadata.creationTimestamp", 0),
    ]


def test_printer_columns_point_at_fields_that_exist(root_schema: JSON, version: JSON) -> None:
    paths = {path for path, _ in walk(root_schema)}
    for column in version["additionalPrinterColumns"]:
        if column["jsonPath"].startswith(".status"):
            assert column["jsonPath"] in paths


def test_stages_is_a_map_list_keyed_by_name(root_schema: JSON) -> None:
    stages = root_schema["properties"]["spec"]["properties"]["stages"]
    assert stages["x-kubernetes-list-type"] == "map"
    assert stages["x-kubernetes-list-map-keys"] == ["name"]
    # A map-list key must be required, or the API server rejects the CRD.
    assert "name" in stages["items"]["required"]


def test_every_map_list_key_is_required(root_schema: JSON) -> None:
    for path, node in walk(root_schema):
        if node.get("x-kubernetes-list-type") == "map":
            for key in node["x-kubernetes-list-map-keys"]:
                assert key in node["items"].get("required", []), f"{path}: key {key} not required"


def test_spec_is_required_and_status_is_not(root_schema: JSON) -> None:
    assert root_schema["required"] == ["spec"]
    assert "status" in root_schema["properties"]


def test_documented_bounds_are_in_the_schema(root_schema: JSON) -> None:
    nodes = dict(walk(root_schema))
    assert nodes[".spec.stages"]["maxItems"] == 100
    assert nodes[".spec.stages[].name"]["maxLength"] == 40
    assert nodes[".spec.stages[].shards"]["minimum"] == 1
    assert nodes[".spec.stages[].shards"]["maximum"] == 500
    assert nodes[".spec.stages[].timeoutSeconds"]["exclusiveMinimum"] is True
    assert nodes[".spec.stages[].timeoutSeconds"]["minimum"] == 0
    assert nodes[".spec.retry.limit"]["maximum"] == 20
    assert nodes[".spec.retry.backoff.factor"]["minimum"] == 1


# -------------------------------------------------------------------------- CEL cost is bounded


def _rules_with_scope(root_schema: JSON) -> Iterator[tuple[str, str, JSON]]:
    """(rule, path of the node it sits on, that node) for every x-kubernetes-validations rule."""
    for path, node in walk(root_schema):
        for rule in node.get("x-kubernetes-validations", []):
            yield rule["rule"], path, node


def _unbounded(node: JSON) -> str | None:
    kind = node.get("type")
    if kind == "array" and "maxItems" not in node:
        return "array without maxItems"
    # Timestamps have a fixed length (the API server bounds `format: date-time` itself).
    fixed_length = "enum" in node or node.get("format") in ("date-time", "date")
    if kind == "string" and "maxLength" not in node and not fixed_length:
        return "string without maxLength"
    if node.get("x-kubernetes-int-or-string") and "maxLength" not in node:
        return "int-or-string without maxLength"
    if kind == "object" and "additionalProperties" in node and "maxProperties" not in node:
        return "map without maxProperties"
    return None


def test_the_rules_are_on_the_documented_nodes(root_schema: JSON) -> None:
    placed = {(path, rule) for rule, path, _ in _rules_with_scope(root_schema)}
    expected = {(".spec", r["rule"]) for r in SPEC_RULES}
    expected |= {(".spec.stages", r["rule"]) for r in STAGES_RULES}
    expected |= {("", r["rule"]) for r in ROOT_RULES}  # identity fields: api/immutability.py
    assert placed == expected


def test_fields_named_in_rules_exist_in_the_schema(root_schema: JSON) -> None:
    """The API server type-checks rules against the schema; a typo would reject the whole CRD."""
    for rule, scope, node in _rules_with_scope(root_schema):
        names = {name for path, _ in walk(node) for name in re.findall(r"\w+", path)}
        for field in FIELD_ACCESS.findall(rule):
            assert field in names, f"{scope}: rule {rule!r} names unknown field {field!r}"


def test_every_value_a_rule_walks_is_bounded(root_schema: JSON) -> None:
    """The API server estimates each rule's worst-case cost from maxItems/maxLength/maxProperties
    and rejects the CRD when an unbounded list or string makes it too high. `self == oldSelf`
    compares every value under its node; the other rules walk the fields they name."""
    problems = []
    for rule, scope, node in _rules_with_scope(root_schema):
        named = set(FIELD_ACCESS.findall(rule))
        for path, sub in walk(node, scope):
            leaf = (re.findall(r"\w+", path) or [""])[-1]  # "" at the root
            # `self == oldSelf` compares everything under its node; other rules (transition
            # rules naming fields included) walk the fields they name.
            walked = rule.strip() == "self == oldSelf" or path == scope or leaf in named
            reason = _unbounded(sub) if walked else None
            if reason:
                problems.append(f"{path}: {reason} (walked by {rule!r})")
    assert not problems, "unbounded values under CEL rules:\n" + "\n".join(problems)


def test_a_status_nobody_wrote_reads_as_generation_zero_observed(root_schema: JSON) -> None:
    """kstatus (Flux) reads a custom resource without conditions as Current: without this
    default a run the operator has not seen yet would look done (tests/gitops)."""
    status = root_schema["properties"]["status"]
    assert status["default"] == {"observedGeneration": 0}
    assert status["properties"]["observedGeneration"]["type"] == "integer"
    assert not [path for path, node in walk(status) if "default" in node and path]
