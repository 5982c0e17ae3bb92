"""The pydantic models: valid specs parse with the documented defaults, and every bound rejects bad
input with a problem that names the field the way the user wrote it and says how to fix it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from extraction_operator.api.models import ExtractionRunSpec, ExtractionRunStatus
from extraction_operator.api.validation import Problem, parse_spec

Spec = dict[str, Any]


def only_problem(raw: Spec) -> Problem:
    spec, problems = parse_spec(raw)
    assert spec is None, "the schema should have rejected this spec"
    assert len(problems) == 1, problems
    return problems[0]


# ------------------------------------------------------------------------------------ valid specs


def test_design_example_is_valid(design_spec: Spec) -> None:
    spec, problems = parse_spec(design_spec)
    assert problems == []
    assert spec is not None
    assert [stage.name for stage in spec.stages] == [
        "chunk",
        "mentions",
        "entities",
        "relations",
        "assemble",
        "resolve",
    ]
    assert spec.stages[1].depends_on == ["chunk"]
    assert spec.stages[1].shards == 4
    assert spec.circuit_breakers["llm"].success_threshold == 2
    assert spec.workspace is not None
    assert spec.workspace.persistent_volume_claim is not None
    assert spec.workspace.persistent_volume_claim.claim_name == "corpus-data"
    assert spec.stages[0].resources is not None
    assert spec.stages[0].resources.requests == {"cpu": "500m", "memory": "1Gi"}
    assert spec.stages[5].resources is not None
    assert spec.stages[5].resources.limits == {"cpu": 2}


def test_minimal_spec_gets_documented_defaults(minimal_spec: Spec) -> None:
    spec, problems = parse_spec(minimal_spec)
    assert problems == []
    assert spec is not None
    assert spec.suspend is False
    assert spec.parallelism == 4
    assert spec.fail_fast is True
    assert spec.active_deadline_seconds is None
    assert spec.service_account_name is None
    assert spec.retry.limit == 3
    assert spec.retry.backoff.initial_seconds == 10
    assert spec.retry.backoff.factor == 2
    assert spec.retry.backoff.max_seconds == 300
    assert spec.retry.backoff.jitter == "full"
    assert spec.retry.non_retryable_exit_codes == []
    assert spec.circuit_breakers == {}
    (stage,) = spec.stages
    assert stage.shards == 1
    assert stage.depends_on == []
    assert stage.circuits == []
    assert stage.timeout_seconds is None
    assert stage.image is None
    assert stage.retry is None


def test_circuit_breaker_defaults() -> None:
    spec = ExtractionRunSpec.model_validate(
        {"image": "x", "circuitBreakers": {"llm": {}}, "stages": [{"name": "a"}]}
    )
    breaker = spec.circuit_breakers["llm"]
    assert breaker.failure_threshold == 5
    assert breaker.recovery_timeout_seconds == 30
    assert breaker.success_threshold == 1
    assert breaker.probe_timeout_seconds == 120


def test_workspace_mount_path_defaults_to_workspace() -> None:
    spec = ExtractionRunSpec.model_validate(
        {"image": "x", "workspace": {"emptyDir": {}}, "stages": [{"name": "a"}]}
    )
    assert spec.workspace is not None
    assert spec.workspace.mount_path == "/workspace"


def test_spec_round_trips_through_camel_case(design_spec: Spec) -> None:
    spec = ExtractionRunSpec.model_validate(design_spec)
    dumped = spec.model_dump(by_alias=True, exclude_none=True)
    assert "dependsOn" in dumped["stages"][1]
    assert "depends_on" not in dumped["stages"][1]
    assert ExtractionRunSpec.model_validate(dumped) == spec


def test_boundary_values_are_accepted(minimal_spec: Spec) -> None:
    minimal_spec["stages"] = [{"name": "a" * 40, "shards": 500, "timeoutSeconds": 1}] + [
        {"name": f"s{i}"} for i in range(99)
    ]
    minimal_spec["retry"] = {"limit": 20, "backoff": {"factor": 1}}
    spec, problems = parse_spec(minimal_spec)
    assert problems == []
    assert spec is not None
    assert len(spec.stages) == 100


def test_status_ignores_unknown_keys_and_defaults_phase() -> None:
    status = ExtractionRunStatus.model_validate(
        {"nodes": {"chunk": {"phase": "Running", "attempts": 1}}, "fromTheFuture": True}
    )
    assert status.phase == "Pending"
    assert status.nodes["chunk"].phase == "Running"
    assert status.nodes["chunk"].attempts == 1


# ---------------------------------------------------------------------- invalid specs: one field


def _set_stage(index: int, **fields: Any) -> Callable[[Spec], None]:
    def mutate(spec: Spec) -> None:
        spec["stages"][index].update(fields)

    return mutate


def _set(**fields: Any) -> Callable[[Spec], None]:
    def mutate(spec: Spec) -> None:
        spec.update(fields)

    return mutate


# (mutation of the DESIGN example, field the problem must name, words the message must contain)
SCHEMA_CASES: dict[str, tuple[Callable[[Spec], None], str, tuple[str, ...]]] = {
    "stage name too long": (_set_stage(1, name="m" * 41), "spec.stages[1].name", ("40",)),
    "shards 0": (_set_stage(1, shards=0), "spec.stages[1].shards", ("1",)),
    "shards 501": (_set_stage(1, shards=501), "spec.stages[1].shards", ("500",)),
    "timeout 0": (_set_stage(0, timeoutSeconds=0), "spec.stages[0].timeoutSeconds", ("0",)),
    "retry limit 21": (_set(retry={"limit": 21}), "spec.retry.limit", ("20",)),
    "backoff factor 0.5": (
        _set(retry={"backoff": {"factor": 0.5}}),
        "spec.retry.backoff.factor",
        ("1",),
    ),
    "stage retry limit 21": (
        _set_stage(2, retry={"limit": 21}),
        "spec.stages[2].retry.limit",
        ("20",),
    ),
    "unknown field dependOn": (
        _set_stage(1, dependOn=["chunk"]),
        "spec.stages[1].dependOn",
        ("unknown field", "spelling"),
    ),
    "unknown top-level field": (_set(stagez=[]), "spec.stagez", ("unknown field",)),
    "jitter not an option": (
        _set(retry={"backoff": {"jitter": "some"}}),
        "spec.retry.backoff.jitter",
        ("full", "none"),
    ),
    "parallelism not a number": (_set(parallelism="many"), "spec.parallelism", ("integer",)),
    "exit code above 255": (
        _set(retry={"nonRetryableExitCodes": [256]}),
        "spec.retry.nonRetryableExitCodes[0]",
        ("255",),
    ),
    "stages empty": (_set(stages=[]), "spec.stages", ("at least 1",)),
}


@pytest.mark.parametrize("case", sorted(SCHEMA_CASES))
def test_schema_problem_names_field_and_fix(case: str, design_spec: Spec) -> None:
    mutate, field, words = SCHEMA_CASES[case]
    mutate(design_spec)
    problem = only_problem(design_spec)
    assert problem.field == field
    for word in words:
        assert word in problem.message, f"{word!r} missing from {problem}"


def test_schema_problem_is_also_a_validation_error(design_spec: Spec) -> None:
    design_spec["stages"][1]["shards"] = 501
    with pytest.raises(ValidationError) as caught:
        ExtractionRunSpec.model_validate(design_spec)
    assert caught.value.errors()[0]["loc"] == ("stages", 1, "shards")


def test_uppercase_stage_name_says_how_to_fix(design_spec: Spec) -> None:
    """A regex in the message tells nobody what to type: say "lowercase" (DNS-1123 label)."""
    design_spec["stages"][2]["name"] = "Entities"
    design_spec["stages"][3]["dependsOn"] = ["mentions"]
    design_spec["stages"][4]["dependsOn"] = ["relations"]
    problem = only_problem(design_spec)
    assert problem.field == "spec.stages[2].name"
    assert "lowercase" in problem.message


def test_too_many_stages(minimal_spec: Spec) -> None:
    minimal_spec["stages"] = [{"name": f"s{i}"} for i in range(101)]
    problem = only_problem(minimal_spec)
    assert problem.field == "spec.stages"
    assert "100" in problem.message


def test_duplicate_stage_names(design_spec: Spec) -> None:
    design_spec["stages"][3]["name"] = "entities"
    problem = only_problem(design_spec)
    assert "stages[3].name" in str(problem)
    assert "'entities'" in problem.message
    assert "unique" in problem.message


def test_bad_quantity_names_the_resource_not_pydantic_internals(design_spec: Spec) -> None:
    """Union branches (`int`, `constrained-str`) are pydantic's business, not the user's."""
    design_spec["stages"][0]["resources"] = {"requests": {"cpu": "lots"}}
    problem = only_problem(design_spec)
    assert problem.field == "spec.stages[0].resources.requests.cpu"
    assert "500m" in problem.message


def test_spec_that_is_not_an_object() -> None:
    spec, problems = parse_spec(["not", "a", "spec"])
    assert spec is None
    assert [str(p) for p in problems] == ["spec: must be an object, got list"]
