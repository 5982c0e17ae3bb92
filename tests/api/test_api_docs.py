"""docs/api.md is the field reference: it must name every field of the generated schema, every
printer column and CEL rule, and its example must be a valid run."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from extraction_operator.api.constants import KIND
from extraction_operator.api.crd import generate_crd
from extraction_operator.api.validation import parse_spec

REPO = Path(__file__).resolve().parents[2]
DOC = (REPO / "docs" / "api.md").read_text()
VERSION = generate_crd()["spec"]["versions"][0]
SCHEMA = VERSION["schema"]["openAPIV3Schema"]["properties"]
# Stage env has the shape of spec.env, and the doc says so instead of repeating 14 rows.
DOCUMENTED_ONCE = "spec.stages[].env[]."


def field_paths(schema: dict[str, Any], path: str) -> Iterator[str]:
    """Doc spelling of every field: `[]` for list items, `.<name>` for map keys."""
    for name, sub in schema.get("properties", {}).items():
        yield f"{path}.{name}"
        yield from field_paths(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from field_paths(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from field_paths(schema["additionalProperties"], f"{path}.<name>")


FIELDS = [
    path
    for root in ("spec", "status")
    for path in field_paths(SCHEMA[root], root)
    if not path.startswith(DOCUMENTED_ONCE)
]


@pytest.mark.parametrize("path", FIELDS)
def test_every_field_is_documented(path: str) -> None:
    assert f"| `{path}` |" in DOC, f"docs/api.md has no row for `{path}`"


def test_no_documented_field_is_missing_from_the_schema() -> None:
    documented = set(re.findall(r"^\| `((?:spec|status)\.[^`]+)` \|", DOC, re.MULTILINE))
    assert documented - set(FIELDS) == set()


def test_printer_columns_are_documented() -> None:
    for column in VERSION["additionalPrinterColumns"]:
        assert f"| `{column['name']}` | `{column['jsonPath']}`" in DOC


def test_cel_rules_and_messages_are_documented() -> None:
    rules = [
        *SCHEMA["spec"]["x-kubernetes-validations"],
        *SCHEMA["spec"]["properties"]["stages"]["x-kubernetes-validations"],
    ]
    for rule in rules:
        in_table = rule["rule"].replace("||", r"\|\|")  # a bare `|` would split the table cell
        assert f"`{in_table}`" in DOC, rule["rule"]
        assert rule["message"] in DOC


def test_conditions_are_documented() -> None:
    for condition in ("Ready", "Reconciling", "Stalled"):
        assert f"| `{condition}` |" in DOC


def test_examples_in_the_doc_are_valid_runs() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC, re.DOTALL)
    runs = [doc for block in blocks for doc in yaml.safe_load_all(block) if doc]
    runs = [doc for doc in runs if doc.get("kind") == KIND]
    assert runs, "docs/api.md should show an ExtractionRun"
    for run in runs:
        spec, problems = parse_spec(run["spec"])
        assert problems == []
        assert spec is not None
