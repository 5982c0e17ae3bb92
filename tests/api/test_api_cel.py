"""The CRD's CEL rules compile and decide valid and invalid specs the way the operator's own
graph check does, evaluated with cel-python (the API server uses cel-go; the language is the same).

The rules are read from the generated CRD, not from `crd.py`'s constants, so a rule that is lost or
mangled on the way into the document fails here."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import celpy
import pytest
from celpy.adapter import json_to_cel

from extraction_operator.api.crd import generate_crd
from extraction_operator.api.validation import parse_spec

JSON = dict[str, Any]
ENV = celpy.Environment()


def _rules(schema: JSON) -> Iterator[tuple[str, JSON]]:
    for rule in schema.get("x-kubernetes-validations", []):
        yield rule["rule"], rule


def _spec_schema() -> JSON:
    crd = generate_crd()
    spec: JSON = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return spec


SPEC_SCHEMA = _spec_schema()
SPEC_RULES = dict(_rules(SPEC_SCHEMA))
STAGES_RULES = dict(_rules(SPEC_SCHEMA["properties"]["stages"]))


def _rule_containing(text: str) -> str:
    (rule,) = [r for r in SPEC_RULES if text in r]
    return rule


DEPENDS_ON_RULE = _rule_containing("dependsOn")
CIRCUITS_RULE = _rule_containing("circuitBreakers")
IMAGE_RULE = _rule_containing("has(self.image)")


def evaluate(rule: str, **bindings: Any) -> bool:
    program = ENV.program(ENV.compile(rule))
    result = program.evaluate({name: json_to_cel(value) for name, value in bindings.items()})
    assert isinstance(result, celpy.celtypes.BoolType), f"{rule!r} returned {result!r}"
    return bool(result)


def test_there_are_exactly_the_documented_rules() -> None:
    assert len(SPEC_RULES) == 3
    assert list(STAGES_RULES) == ["self == oldSelf"]


@pytest.mark.parametrize("rule", [*SPEC_RULES, *STAGES_RULES])
def test_every_rule_compiles(rule: str) -> None:
    ENV.compile(rule)


@pytest.mark.parametrize("rule", [*SPEC_RULES, *STAGES_RULES])
def test_every_rule_has_a_message_naming_the_field(rule: str) -> None:
    details = {**SPEC_RULES, **STAGES_RULES}[rule]
    assert "spec." in details["message"] or "stages[]" in details["message"]


@pytest.mark.parametrize("rule", list(SPEC_RULES))
def test_valid_specs_pass_every_rule(rule: str, design_spec: JSON, minimal_spec: JSON) -> None:
    assert evaluate(rule, self=design_spec)
    assert evaluate(rule, self=minimal_spec)


def test_unknown_dependency_fails(design_spec: JSON) -> None:
    design_spec["stages"][3]["dependsOn"] = ["mentions", "entity"]
    assert not evaluate(DEPENDS_ON_RULE, self=design_spec)


def test_stage_without_depends_on_field_passes(minimal_spec: JSON) -> None:
    minimal_spec["stages"] = [{"name": "a"}, {"name": "b", "dependsOn": ["a"]}]
    assert evaluate(DEPENDS_ON_RULE, self=minimal_spec)


def test_undeclared_circuit_fails(design_spec: JSON) -> None:
    design_spec["stages"][1]["circuits"] = ["embeddings"]
    assert not evaluate(CIRCUITS_RULE, self=design_spec)


def test_circuit_without_any_breakers_declared_fails(design_spec: JSON) -> None:
    del design_spec["circuitBreakers"]
    assert not evaluate(CIRCUITS_RULE, self=design_spec)


def test_missing_image_fails(design_spec: JSON) -> None:
    del design_spec["image"]
    assert not evaluate(IMAGE_RULE, self=design_spec)


def test_image_on_every_stage_passes(design_spec: JSON) -> None:
    del design_spec["image"]
    for stage in design_spec["stages"]:
        stage["image"] = "busybox:1.36"
    assert evaluate(IMAGE_RULE, self=design_spec)


def test_stages_unchanged_pass_the_transition_rule(design_spec: JSON) -> None:
    stages = design_spec["stages"]
    assert evaluate("self == oldSelf", self=stages, oldSelf=copy.deepcopy(stages))


@pytest.mark.parametrize(
    "change",
    ["rename", "add a stage", "drop a stage", "change shards", "add a dependency"],
)
def test_changed_stages_fail_the_transition_rule(change: str, design_spec: JSON) -> None:
    old = copy.deepcopy(design_spec["stages"])
    new = copy.deepcopy(old)
    if change == "rename":
        new[5]["name"] = "dedupe"
    elif change == "add a stage":
        new.append({"name": "report", "dependsOn": ["resolve"]})
    elif change == "drop a stage":
        new.pop()
    elif change == "change shards":
        new[1]["shards"] = 8
    else:
        new[5]["dependsOn"].append("chunk")
    (rule,) = STAGES_RULES
    assert not evaluate(rule, self=new, oldSelf=old)


@pytest.mark.parametrize(
    "mutation",
    ["unknown dependency", "undeclared circuit", "no image", "valid"],
)
def test_rules_agree_with_the_graph_check(mutation: str, design_spec: JSON) -> None:
    """Where a CEL rule and `check_graph` cover the same ground they must give the same verdict:
    otherwise the API server accepts what the operator stalls on, or refuses what it would run."""
    if mutation == "unknown dependency":
        design_spec["stages"][2]["dependsOn"] = ["nope"]
    elif mutation == "undeclared circuit":
        design_spec["stages"][2]["circuits"] = ["gpu"]
    elif mutation == "no image":
        del design_spec["image"]
    spec, problems = parse_spec(design_spec)
    assert spec is not None
    cel_ok = all(evaluate(rule, self=design_spec) for rule in SPEC_RULES)
    assert cel_ok == (problems == [])
