"""The graph check: rules across stages that the schema cannot express, returned as problems
(never raised) that name the offending field and the fix."""

from __future__ import annotations

import itertools
from typing import Any

from extraction_operator.api.constants import MAX_NODES
from extraction_operator.api.models import ExtractionRunSpec
from extraction_operator.api.validation import Problem, check_graph, find_cycle, parse_spec

Spec = dict[str, Any]


def graph_problems(raw: Spec) -> list[Problem]:
    spec, problems = parse_spec(raw)
    assert spec is not None, f"the schema should accept this spec: {problems}"
    assert check_graph(spec) == problems
    return problems


def test_valid_dag_has_no_problems(design_spec: Spec) -> None:
    assert graph_problems(design_spec) == []


def test_unknown_dependency_names_the_entry_and_the_choices(design_spec: Spec) -> None:
    design_spec["stages"][1]["dependsOn"] = ["chunks"]
    (problem,) = graph_problems(design_spec)
    assert problem.field == "spec.stages[1].dependsOn[0]"
    assert "'chunks'" in problem.message
    assert "assemble, chunk, entities, mentions, relations, resolve" in problem.message


def test_unknown_dependency_position_is_exact(design_spec: Spec) -> None:
    design_spec["stages"][3]["dependsOn"] = ["mentions", "entity"]
    (problem,) = graph_problems(design_spec)
    assert problem.field == "spec.stages[3].dependsOn[1]"


def test_self_dependency(design_spec: Spec) -> None:
    design_spec["stages"][2]["dependsOn"] = ["entities"]
    problems = graph_problems(design_spec)
    assert problems[0].field == "spec.stages[2].dependsOn[0]"
    assert "itself" in problems[0].message
    assert "remove" in problems[0].message


def test_cycle_is_reported_with_its_path_in_the_direction_of_work(minimal_spec: Spec) -> None:
    minimal_spec["stages"] = [
        {"name": "chunk", "dependsOn": ["mentions"]},
        {"name": "mentions", "dependsOn": ["chunk"]},
    ]
    (problem,) = graph_problems(minimal_spec)
    assert problem.field == "spec.stages"
    assert "chunk -> mentions -> chunk" in problem.message
    assert "break one dependsOn edge" in problem.message


def test_cycle_path_is_a_real_cycle_of_the_graph(design_spec: Spec) -> None:
    # chunk -> mentions -> entities -> relations, and now relations feeds mentions back.
    design_spec["stages"][1]["dependsOn"] = ["chunk", "relations"]
    (problem,) = graph_problems(design_spec)
    path = problem.message.removeprefix("dependency cycle ").split(";")[0].split(" -> ")
    assert path[0] == path[-1]
    assert len(path) >= 3
    depends_on = {s["name"]: set(s.get("dependsOn", [])) for s in design_spec["stages"]}
    for upstream, downstream in itertools.pairwise(path):
        assert upstream in depends_on[downstream], f"{upstream} -> {downstream} is not an edge"


def test_undeclared_circuit(design_spec: Spec) -> None:
    design_spec["stages"][3]["circuits"] = ["llm", "embeddings"]
    (problem,) = graph_problems(design_spec)
    assert problem.field == "spec.stages[3].circuits[1]"
    assert "'embeddings'" in problem.message
    assert "spec.circuitBreakers" in problem.message


def test_no_image_anywhere(design_spec: Spec) -> None:
    del design_spec["image"]
    problems = graph_problems(design_spec)
    # Every stage but `assemble` (index 4, which has its own image) is named.
    assert [p.field for p in problems] == [f"spec.stages[{i}].image" for i in (0, 1, 2, 3, 5)]
    assert all("set spec.image" in p.message for p in problems)


def test_image_on_every_stage_is_enough(minimal_spec: Spec) -> None:
    minimal_spec.pop("image")
    minimal_spec["stages"] = [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]
    assert graph_problems(minimal_spec) == []


def test_too_many_nodes(minimal_spec: Spec) -> None:
    minimal_spec["stages"] = [{"name": f"s{i}", "shards": 500} for i in range(4)] + [
        {"name": "one-more"}
    ]
    (problem,) = graph_problems(minimal_spec)
    assert problem.field == "spec.stages"
    assert f"2001 nodes (stages times shards) exceed the limit of {MAX_NODES}" in problem.message
    assert "fewer shards" in problem.message


def test_exactly_max_nodes_is_fine(minimal_spec: Spec) -> None:
    minimal_spec["stages"] = [{"name": f"s{i}", "shards": 500} for i in range(4)]
    assert graph_problems(minimal_spec) == []


def test_every_problem_is_reported_at_once(design_spec: Spec) -> None:
    """A user fixes everything in one edit only if they see everything in one report."""
    del design_spec["image"]
    design_spec["stages"][1]["dependsOn"] = ["nope"]
    design_spec["stages"][2]["circuits"] = ["gpu"]
    fields = {p.field for p in graph_problems(design_spec)}
    assert {"spec.stages[1].dependsOn[0]", "spec.stages[2].circuits[0]"} <= fields
    assert "spec.stages[0].image" in fields


def test_check_graph_accepts_a_model_directly() -> None:
    spec = ExtractionRunSpec.model_validate(
        {"image": "x", "stages": [{"name": "a", "dependsOn": ["b"]}, {"name": "b"}]}
    )
    assert check_graph(spec) == []


def test_find_cycle_on_acyclic_graph() -> None:
    assert find_cycle({"a": [], "b": ["a"], "c": ["a", "b"]}) is None


def test_find_cycle_ignores_edges_to_unknown_nodes() -> None:
    assert find_cycle({"a": ["ghost"]}) is None


def test_find_cycle_self_loop() -> None:
    assert find_cycle({"a": ["a"]}) == ["a", "a"]


def test_find_cycle_deep_chain_does_not_recurse() -> None:
    """A 5000-node chain closed into a ring: an iterative search returns, a recursive one dies."""
    size = 5000
    edges = {f"n{i}": [f"n{(i + 1) % size}"] for i in range(size)}
    cycle = find_cycle(edges)
    assert cycle is not None
    assert len(cycle) == size + 1
    assert cycle[0] == cycle[-1]
