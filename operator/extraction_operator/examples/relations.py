"""Stage 4: link entities mentioned in the same chunk (`relations.json`).

Co-occurrence is the simplest relation an extractor can defend: two entities named in one chunk are
probably connected, and the number of chunks that name both (the edge weight) says how strongly.
Each unordered pair is one edge, `source < target` by id, so the output does not depend on the
order of anything.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from itertools import combinations

from .records import ENTITIES_FILE, RELATIONS_FILE, Entity, Relation, read_entities, write_json
from .runtime import StageContext, run_stage


def co_occurrences(entities: Iterable[Entity]) -> list[Relation]:
    """One edge per pair of entities sharing a chunk, weighted by the number of shared chunks,
    heaviest first (ties by id)."""
    by_chunk: dict[str, set[str]] = defaultdict(set)
    for entity in entities:
        for chunk in entity.chunks:
            by_chunk[chunk].add(entity.id)
    weights: Counter[tuple[str, str]] = Counter()
    for members in by_chunk.values():
        weights.update(combinations(sorted(members), 2))
    return [
        Relation(source, target, weight)
        for (source, target), weight in sorted(
            weights.items(), key=lambda item: (-item[1], item[0])
        )
    ]


def relations_stage(context: StageContext) -> str:
    entities = read_entities(context.output_dir / ENTITIES_FILE, "entities")
    relations = co_occurrences(entities)
    write_json(
        context.output_dir / RELATIONS_FILE,
        {"relations": [relation.to_json() for relation in relations]},
    )
    strongest = relations[0] if relations else None
    detail = (
        f"; strongest {strongest.source} ~ {strongest.target} ({strongest.weight})"
        if strongest
        else ""
    )
    return f"{len(relations)} relations between {len(entities)} entities{detail}"


def main() -> int:
    return run_stage(relations_stage)


if __name__ == "__main__":
    raise SystemExit(main())
