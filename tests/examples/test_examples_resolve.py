"""Alias resolution and co-occurrence relations."""

from __future__ import annotations

import pytest

from extraction_operator.examples.assemble import build_graph
from extraction_operator.examples.records import Entity, Relation
from extraction_operator.examples.relations import co_occurrences
from extraction_operator.examples.resolve import find_aliases, render_report, resolve
from extraction_operator.examples.runtime import StageInputError


def entity(name: str, mentions: int, chunks: tuple[str, ...], kind: str = "name") -> Entity:
    return Entity(f"{kind}:{name.lower().replace(' ', '-')}", name, kind, mentions, chunks)


def test_a_surname_merges_into_the_only_full_name() -> None:
    merged, ambiguous = find_aliases(
        [entity("Ada Lovelace", 3, ("c1",)), entity("Lovelace", 2, ("c2",))]
    )
    assert merged == {"name:lovelace": "name:ada-lovelace"}
    assert ambiguous == {}


def test_a_first_name_is_not_an_alias() -> None:
    merged, _ = find_aliases([entity("Ada Lovelace", 3, ("c1",)), entity("Ada", 1, ("c2",))])
    assert merged == {}


def test_the_dominant_full_name_wins_otherwise_the_alias_is_ambiguous() -> None:
    dominant = [
        entity("Charles Babbage", 5, ("c1",)),
        entity("Henry Prevost Babbage", 2, ("c2",)),
        entity("Babbage", 9, ("c3",)),
    ]
    assert find_aliases(dominant) == ({"name:babbage": "name:charles-babbage"}, {})
    tied = [
        entity("Georg Scheutz", 1, ("c1",)),
        entity("Edvard Scheutz", 1, ("c1",)),
        entity("Scheutz", 1, ("c2",)),
    ]
    assert find_aliases(tied) == ({}, {"Scheutz": ["Edvard Scheutz", "Georg Scheutz"]})


def test_names_with_connectors_and_other_kinds_never_absorb_aliases() -> None:
    entities = [
        entity("University of London", 1, ("c1",), kind="organisation"),
        entity("London", 4, ("c2",)),
        entity("Greater London", 1, ("c3",), kind="organisation"),
        entity("June 1833", 1, ("c1",), kind="date"),
        entity("1833", 1, ("c2",), kind="date"),
    ]
    assert find_aliases(entities) == ({}, {})


def test_merging_adds_mentions_unites_chunks_and_recomputes_relations() -> None:
    resolution = resolve(
        [
            entity("Ada Lovelace", 2, ("c1", "c2")),
            entity("Lovelace", 3, ("c2", "c3")),
            entity("Turin", 1, ("c2", "c3")),
        ]
    )
    ada = resolution.entities[0]
    assert (ada.id, ada.mentions, ada.chunks, ada.aliases) == (
        "name:ada-lovelace",
        5,
        ("c1", "c2", "c3"),
        ("Lovelace",),
    )
    # c2 names both spellings next to Turin: it still counts once.
    assert [(r.source, r.target, r.weight) for r in resolution.relations] == [
        ("name:ada-lovelace", "name:turin", 2)
    ]


def test_co_occurrence_weights_and_order() -> None:
    relations = co_occurrences(
        [entity("B", 1, ("c1", "c2")), entity("A", 1, ("c1", "c2")), entity("C", 1, ("c2",))]
    )
    assert [(r.source, r.target, r.weight) for r in relations] == [
        ("name:a", "name:b", 2),
        ("name:a", "name:c", 1),
        ("name:b", "name:c", 1),
    ]


def test_report_lists_top_entities_relations_and_ambiguities() -> None:
    resolution = resolve(
        [
            entity("Georg Scheutz", 1, ("c1",)),
            entity("Edvard Scheutz", 1, ("c1",)),
            entity("Scheutz", 1, ("c2",)),
        ]
    )
    assert render_report(resolution, "demo") == (
        "Knowledge graph of run demo\n"
        "3 entities, 1 relations, 0 aliases merged\n"
        "\n"
        "Most mentioned:\n"
        "    1  Edvard Scheutz [name]\n"
        "    1  Georg Scheutz [name]\n"
        "    1  Scheutz [name]\n"
        "Strongest relations:\n"
        "    1  Edvard Scheutz ~ Georg Scheutz\n"
        "Ambiguous aliases left unmerged:\n"
        "  Scheutz: Edvard Scheutz or Georg Scheutz\n"
    )


def test_assembling_a_relation_to_an_unknown_entity_is_a_bad_input() -> None:
    with pytest.raises(StageInputError, match="names unknown entity 'name:ghost'"):
        build_graph([entity("Ada", 1, ("c1",))], [Relation("name:ada", "name:ghost", 1)], {})


def test_assembled_graph_counts_what_it_holds() -> None:
    graph = build_graph(
        [entity("Ada", 2, ("c1",)), entity("Turin", 1, ("c1",))],
        [Relation("name:ada", "name:turin", 1)],
        {"name": "demo"},
    )
    assert graph["stats"] == {"entities": 2, "relations": 1, "mentions": 3}
    assert graph["run"] == {"name": "demo"}
