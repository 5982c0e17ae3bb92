"""Arbitrary JSON-like input never crashes spec parsing: the model raises only pydantic's
`ValidationError`, `parse_spec` never raises, and every problem is readable text naming a field.

This is what lets the operator survive a run applied with `--validate=false` or written by a
buggy client: it reports the run as Stalled and keeps serving every other run."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from extraction_operator.api.models import ExtractionRunSpec
from extraction_operator.api.validation import parse_spec

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Names that the models know, so random objects hit real fields and not only "unknown field".
KNOWN_KEYS = [
    "image", "stages", "name", "dependsOn", "circuits", "shards", "timeoutSeconds", "retry",
    "limit", "backoff", "factor", "initialSeconds", "maxSeconds", "jitter", "circuitBreakers",
    "env", "value", "valueFrom", "resources", "requests", "limits", "cpu", "workspace",
    "mountPath", "emptyDir", "sizeLimit", "parallelism", "suspend", "failFast", "command", "args",
    "nonRetryableExitCodes", "envFrom", "secretRef", "activeDeadlineSeconds",
]  # fmt: skip

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=50)
    | st.sampled_from(["chunk", "llm", "500m", "1Gi", "full", "", "A", "a" * 41])
)
keys = st.sampled_from(KNOWN_KEYS) | st.text(max_size=12)
json_like = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(keys, children, max_size=6),
    max_leaves=40,
)


def _has(node: Any, step: Any) -> bool:
    if isinstance(node, dict):
        return step in node
    return isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node)


def _mutate(spec: Any, path: list[Any], value: Any) -> Any:
    """Replace (or, in an object, add) the value at `path` inside a deep copy of `spec`."""
    spec = copy.deepcopy(spec)
    node = spec
    for step in path[:-1]:
        if not _has(node, step):
            return spec
        node = node[step]
    last = path[-1]
    if isinstance(node, dict) or _has(node, last):
        node[last] = value
    return spec


@st.composite
def mutated_specs(draw: st.DrawFn, template: dict[str, Any]) -> Any:
    spec: Any = copy.deepcopy(template)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(
            st.lists(
                st.sampled_from(KNOWN_KEYS) | st.integers(min_value=0, max_value=6),
                min_size=1,
                max_size=4,
            )
        )
        spec = _mutate(spec, path, draw(json_like))
    return spec


def assert_readable(problems: list[Any]) -> None:
    for problem in problems:
        assert problem.field.startswith("spec"), problem
        assert problem.message.strip(), problem
        assert problem.message.isprintable(), problem
        assert str(problem).startswith(problem.field)


def check_input(raw: Any) -> None:
    spec, problems = parse_spec(raw)
    assert_readable(problems)
    if spec is None:
        assert problems, "a rejected spec must say why"
    error: ValidationError | None = None
    try:
        ExtractionRunSpec.model_validate(raw)
    except ValidationError as caught:  # anything else escapes and fails the test
        error = caught
    assert (error is None) == (spec is not None)
    if error is not None:
        assert str(error).strip()
        assert all(item["msg"].strip() for item in error.errors(include_url=False))


@FUZZ
@given(raw=json_like)
def test_arbitrary_json_never_escapes_as_anything_but_validation_error(raw: Any) -> None:
    check_input(raw)


@FUZZ
@given(data=st.data())
def test_mutated_valid_spec_never_crashes(data: st.DataObject, design_spec_template: Any) -> None:
    check_input(data.draw(mutated_specs(design_spec_template)))


@FUZZ
@given(stages=st.dictionaries(keys, json_like, max_size=4))
def test_arbitrary_stage_objects(stages: dict[str, Any]) -> None:
    check_input({"image": "x", "stages": [stages, {"name": "b", "dependsOn": ["a"]}]})
