"""Stage 5: assemble entities and relations into one knowledge graph (`knowledge-graph.json`).

Assembling is where dangling references are caught: a relation naming an entity the entities file
does not have means the two files come from different runs of their stages, which is a bad input.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .records import (
    ENTITIES_FILE,
    KNOWLEDGE_GRAPH_FILE,
    RELATIONS_FILE,
    Entity,
    Relation,
    read_entities,
    read_relations,
    write_json,
)
from .runtime import StageContext, StageInputError, run_stage


def build_graph(
    entities: Sequence[Entity], relations: Sequence[Relation], run: dict[str, str]
) -> dict[str, Any]:
    """The graph document: run identity, entities, relations and their counts."""
    known = {entity.id for entity in entities}
    for relation in relations:
        for end in (relation.source, relation.target):
            if end not in known:
                raise StageInputError(
                    f"relation {relation.source} ~ {relation.target} names unknown entity {end!r}; "
                    "re-run the entities and relations stages"
                )
    return {
        "run": run,
        "stats": {
            "entities": len(entities),
            "relations": len(relations),
            "mentions": sum(entity.mentions for entity in entities),
        },
        "entities": [entity.to_json() for entity in entities],
        "relations": [relation.to_json() for relation in relations],
    }


def run_identity(context: StageContext) -> dict[str, str]:
    return {"name": context.run, "namespace": context.namespace, "uid": context.run_uid}


def assemble_stage(context: StageContext) -> str:
    entities = read_entities(context.output_dir / ENTITIES_FILE, "entities")
    relations = read_relations(context.output_dir / RELATIONS_FILE, "relations")
    graph = build_graph(entities, relations, run_identity(context))
    write_json(context.output_dir / KNOWLEDGE_GRAPH_FILE, graph)
    return f"knowledge graph with {len(entities)} entities and {len(relations)} relations"


def main() -> int:
    return run_stage(assemble_stage)


if __name__ == "__main__":
    raise SystemExit(main())
