"""Stage 6: merge aliases into their full names, write `graph.json` and `report.txt`.

The rule is deliberately narrow, because a wrong merge is worse than a missed one:

- a one-word `name` (or `organisation`) is an alias of a longer entity of the same kind whose last
  word it is (`Lovelace` -> `Ada Lovelace`, `Government` -> `British Government`), provided the
  longer name has no connector word (`London` is not an alias of `University of London`);
- when several longer names qualify (`Babbage`: `Charles Babbage`, `Henry Prevost Babbage`), the
  alias goes to the one mentioned more often than all the others together; otherwise it is
  ambiguous (`Scheutz`: `Georg Scheutz` or `Edvard Scheutz`), left alone and listed in the report.

Relations are recomputed from the merged entities' chunks rather than added up, so a chunk that
says both `Babbage` and `Charles Babbage` next to `Ada Lovelace` still counts once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .mentions import CONNECTORS
from .records import (
    GRAPH_FILE,
    KNOWLEDGE_GRAPH_FILE,
    REPORT_FILE,
    Entity,
    Relation,
    read_json,
    read_records,
    write_atomically,
    write_json,
)
from .relations import co_occurrences
from .runtime import StageContext, StageInputError, run_stage

ALIASABLE_KINDS = frozenset({"name", "organisation"})
REPORT_TOP = 5


@dataclass(frozen=True)
class Resolution:
    entities: list[Entity]
    relations: list[Relation]
    # alias entity id -> the id it was merged into
    merged: dict[str, str]
    # alias name -> the names it could belong to
    ambiguous: dict[str, list[str]]


def find_aliases(entities: Sequence[Entity]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Which one-word entities merge into which longer ones, and which are ambiguous."""
    longer: dict[tuple[str, str], list[Entity]] = {}
    for entity in entities:
        words = entity.name.split()
        if entity.kind in ALIASABLE_KINDS and len(words) > 1 and not CONNECTORS & set(words):
            longer.setdefault((entity.kind, words[-1].casefold()), []).append(entity)
    merged: dict[str, str] = {}
    ambiguous: dict[str, list[str]] = {}
    for entity in entities:
        words = entity.name.split()
        if entity.kind not in ALIASABLE_KINDS or len(words) != 1:
            continue
        candidates = sorted(
            longer.get((entity.kind, words[0].casefold()), []),
            key=lambda candidate: (-candidate.mentions, candidate.id),
        )
        if not candidates:
            continue
        leader, others = candidates[0], candidates[1:]
        if leader.mentions > sum(other.mentions for other in others):
            merged[entity.id] = leader.id
        else:
            ambiguous[entity.name] = sorted(candidate.name for candidate in candidates)
    return merged, ambiguous


def merge_entities(entities: Sequence[Entity], merged: Mapping[str, str]) -> list[Entity]:
    """Entities with each alias folded into its target: mentions added, chunks united, the alias
    spelling recorded. Sorted by mentions (most first), then id."""
    by_id = {entity.id: entity for entity in entities}
    aliases: dict[str, list[Entity]] = {}
    for alias_id, target_id in merged.items():
        aliases.setdefault(target_id, []).append(by_id[alias_id])
    result = []
    for entity in entities:
        if entity.id in merged:
            continue
        folded = aliases.get(entity.id, [])
        result.append(
            Entity(
                id=entity.id,
                name=entity.name,
                kind=entity.kind,
                mentions=entity.mentions + sum(alias.mentions for alias in folded),
                chunks=tuple(sorted({*entity.chunks, *(c for a in folded for c in a.chunks)})),
                aliases=tuple(sorted({*entity.aliases, *(alias.name for alias in folded)})),
            )
        )
    return sorted(result, key=lambda entity: (-entity.mentions, entity.id))


def resolve(entities: Sequence[Entity]) -> Resolution:
    merged, ambiguous = find_aliases(entities)
    resolved = merge_entities(entities, merged)
    return Resolution(resolved, co_occurrences(resolved), merged, ambiguous)


def graph_document(resolution: Resolution, run: Any) -> dict[str, Any]:
    return {
        "run": run,
        "stats": {
            "entities": len(resolution.entities),
            "relations": len(resolution.relations),
            "mentions": sum(entity.mentions for entity in resolution.entities),
            "aliasesMerged": len(resolution.merged),
        },
        "entities": [entity.to_json() for entity in resolution.entities],
        "relations": [relation.to_json() for relation in resolution.relations],
        "aliases": dict(sorted(resolution.merged.items())),
        "ambiguous": dict(sorted(resolution.ambiguous.items())),
    }


def render_report(resolution: Resolution, run_name: str) -> str:
    """A few lines a person can read in a terminal: what was found and what was merged."""
    names = {entity.id: entity.name for entity in resolution.entities}
    lines = [
        f"Knowledge graph of run {run_name}",
        f"{len(resolution.entities)} entities, {len(resolution.relations)} relations, "
        f"{len(resolution.merged)} aliases merged",
        "",
        "Most mentioned:",
    ]
    for entity in resolution.entities[:REPORT_TOP]:
        alias_note = f" (also {', '.join(entity.aliases)})" if entity.aliases else ""
        lines.append(f"  {entity.mentions:3d}  {entity.name} [{entity.kind}]{alias_note}")
    lines.append("Strongest relations:")
    for relation in resolution.relations[:REPORT_TOP]:
        lines.append(f"  {relation.weight:3d}  {names[relation.source]} ~ {names[relation.target]}")
    if resolution.ambiguous:
        lines.append("Ambiguous aliases left unmerged:")
        for alias, candidates in sorted(resolution.ambiguous.items()):
            lines.append(f"  {alias}: {' or '.join(candidates)}")
    return "\n".join(lines) + "\n"


def resolve_stage(context: StageContext) -> str:
    graph_path = context.output_dir / KNOWLEDGE_GRAPH_FILE
    run = read_json(graph_path, "assemble").get("run")
    records = read_records(graph_path, "entities", "assemble")
    entities = [
        Entity.from_json(value, f"{graph_path}: entities[{index}]")
        for index, value in enumerate(records)
    ]
    if len({entity.id for entity in entities}) != len(entities):
        raise StageInputError(f"{graph_path} lists an entity id twice; re-run the assemble stage")
    resolution = resolve(entities)
    write_json(context.output_dir / GRAPH_FILE, graph_document(resolution, run))
    write_atomically(context.output_dir / REPORT_FILE, render_report(resolution, context.run))
    return (
        f"graph.json: {len(resolution.entities)} entities, {len(resolution.relations)} relations, "
        f"{len(resolution.merged)} aliases merged, {len(resolution.ambiguous)} ambiguous"
    )


def main() -> int:
    return run_stage(resolve_stage)


if __name__ == "__main__":
    raise SystemExit(main())
