"""Turn a raw `spec` dict into a validated model, or into problems a person can act on.

Nothing here raises for bad input: the operator must report a broken run as `Stalled` and keep
serving every other run, so parsing returns `(spec, problems)` and each problem names the field in
the user's spelling (`spec.stages[1].dependsOn[0]`) and says how to fix it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from .constants import MAX_NODES
from .models import DNS_LABEL_PATTERN, ENV_NAME_PATTERN, ExtractionRunSpec

# pydantic's "String should match pattern '^[a-z0-9]...$'" names the field but not the fix.
_PATTERN_HINTS = {
    DNS_LABEL_PATTERN: "must be a DNS-1123 label: lowercase letters, digits and '-', starting "
    "and ending with a letter or digit (e.g. 'entities')",
    ENV_NAME_PATTERN: "must be a valid environment variable name (letters, digits, '_', '-', "
    "'.'; not starting with a digit)",
}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a spec: where (`field`), what (`message`)."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def _loc_to_path(loc: tuple[int | str, ...], root: str) -> str:
    path = root
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part == "[key]" or "[" in part or part.startswith("function-"):
            continue  # pydantic's internal labels (union branches, validators) mean nothing here
        else:
            path += f".{part}"
    return path


def problems_from_validation_error(error: ValidationError, root: str = "spec") -> list[Problem]:
    """One problem per pydantic error, the location spelled the way the user wrote the field."""
    problems = []
    for item in error.errors(include_url=False):
        message = item["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        pattern = (item.get("ctx") or {}).get("pattern")
        if item["type"] == "string_pattern_mismatch" and pattern in _PATTERN_HINTS:
            message = f"{repr(item['input'])[:80]} {_PATTERN_HINTS[pattern]}"
        elif item["type"] == "extra_forbidden":
            message = (
                "unknown field; check its spelling against `kubectl explain extractionrun.spec`"
            )
        problems.append(Problem(_loc_to_path(tuple(item["loc"]), root), message))
    return problems


def check_graph(spec: ExtractionRunSpec) -> list[Problem]:
    """Cross-stage rules the schema cannot express: every dependency exists, no stage depends on
    itself, the graph has no cycle (reported with its path), every circuit is declared, every stage
    has an image, and the expanded node count fits in one status object."""
    problems: list[Problem] = []
    names = {stage.name for stage in spec.stages}
    for index, stage in enumerate(spec.stages):
        for dep_index, dep in enumerate(stage.depends_on):
            field = f"spec.stages[{index}].dependsOn[{dep_index}]"
            if dep == stage.name:
                problems.append(
                    Problem(field, f"stage {stage.name!r} depends on itself; remove it")
                )
            elif dep not in names:
                problems.append(
                    Problem(
                        field,
                        f"unknown stage {dep!r}; it must name one of: {', '.join(sorted(names))}",
                    )
                )
        for c_index, circuit in enumerate(stage.circuits):
            if circuit not in spec.circuit_breakers:
                problems.append(
                    Problem(
                        f"spec.stages[{index}].circuits[{c_index}]",
                        f"circuit {circuit!r} is not declared; add it under spec.circuitBreakers",
                    )
                )
        if stage.image is None and spec.image is None:
            problems.append(
                Problem(
                    f"spec.stages[{index}].image",
                    f"stage {stage.name!r} has no image; set spec.image or this stage's image",
                )
            )
    cycle = find_cycle({s.name: [d for d in s.depends_on if d in names] for s in spec.stages})
    if cycle:
        problems.append(
            Problem(
                "spec.stages", f"dependency cycle {' -> '.join(cycle)}; break one dependsOn edge"
            )
        )
    total_nodes = sum(stage.shards for stage in spec.stages)
    if total_nodes > MAX_NODES:
        problems.append(
            Problem(
                "spec.stages",
                f"{total_nodes} nodes (stages times shards) exceed the limit of {MAX_NODES}; "
                "use fewer shards or split the run",
            )
        )
    return problems


def find_cycle(edges: Mapping[str, list[str]]) -> list[str] | None:
    """A cycle as a closed path (`a -> b -> a`) following dependsOn edges, or None.

    Iterative depth-first search, so a 100-stage chain cannot hit Python's recursion limit."""
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(edges, white)
    for root in sorted(edges):
        if colour[root] != white:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        colour[root] = grey
        while stack:
            node, next_index = stack[-1]
            successors = edges.get(node, [])
            if next_index >= len(successors):
                colour[node] = black
                stack.pop()
                continue
            stack[-1] = (node, next_index + 1)
            succ = successors[next_index]
            if colour.get(succ, black) == grey:
                path = [name for name, _ in stack]
                cycle = [*path[path.index(succ) :], succ]
                # Follow the direction of work, not of dependsOn: `chunk -> mentions -> chunk`.
                return list(reversed(cycle))
            if colour.get(succ) == white:
                colour[succ] = grey
                stack.append((succ, 0))
    return None


def parse_spec(raw: Any) -> tuple[ExtractionRunSpec | None, list[Problem]]:
    """Validate a raw spec. Returns the model (None when the schema rejects it) and every problem.

    Never raises: arbitrary JSON-like input yields problems, which is what lets the operator keep
    running when someone applies garbage with `--validate=false`."""
    if not isinstance(raw, Mapping):
        return None, [Problem("spec", f"must be an object, got {type(raw).__name__}")]
    try:
        spec = ExtractionRunSpec.model_validate(raw)
    except ValidationError as error:
        return None, problems_from_validation_error(error)
    return spec, check_graph(spec)
