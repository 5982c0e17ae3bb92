"""The mention heuristic: dates, quantities, names, and what must not become a name."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from extraction_operator.examples.mentions import find_mentions, shard_chunks
from extraction_operator.examples.records import Chunk


def mentions_of(text: str) -> list[tuple[str, str]]:
    return [(m.kind, m.text) for m in find_mentions(Chunk("c000", 0, text))]


def test_full_dates_month_years_and_bare_years() -> None:
    assert mentions_of("born on 10 December 1815, met in June 1833, wrote in 1843.") == [
        ("date", "10 December 1815"),
        ("date", "June 1833"),
        ("date", "1843"),
    ]


def test_quantities_need_a_unit_and_keep_separators() -> None:
    assert mentions_of("It cost 17,000 pounds, weighs 2.6 tonnes and has 8,000 parts, not 12.") == [
        ("quantity", "17,000 pounds"),
        ("quantity", "2.6 tonnes"),
        ("quantity", "8,000 parts"),
    ]


def test_a_number_in_a_quantity_is_not_also_a_year() -> None:
    assert mentions_of("a store of 1,000 columns and 1500 years") == [
        ("quantity", "1,000 columns"),
        ("quantity", "1500 years"),
    ]


def test_capitalised_runs_with_connectors_and_organisations() -> None:
    assert mentions_of("Augustus De Morgan of the University of London taught Ada Lovelace.") == [
        ("name", "Augustus De Morgan"),
        ("organisation", "University of London"),
        ("name", "Ada Lovelace"),
    ]


def test_function_words_months_and_punctuation_end_or_drop_names() -> None:
    assert mentions_of("The British Government paid. In Note G, she wrote to English. Charles") == [
        ("organisation", "British Government"),
        ("name", "Note G"),
        ("name", "English"),
        ("name", "Charles"),
    ]
    assert mentions_of("Her mother met them on the second Tuesday of October.") == []


def test_possessive_is_not_part_of_the_name() -> None:
    found = find_mentions(Chunk("c007", 7, "We read Lovelace's notes."))
    assert [(m.text, m.start, m.end, m.chunk) for m in found] == [("Lovelace", 8, 16, "c007")]


def test_mention_offsets_point_at_the_text() -> None:
    text = "In 1822 Babbage proposed the Difference Engine to the Government for 1,500 pounds."
    for mention in find_mentions(Chunk("c001", 1, text)):
        assert text[mention.start : mention.end] == mention.text


@settings(max_examples=100, deadline=None)
@given(chunk_count=st.integers(0, 40), shard_count=st.integers(1, 8))
def test_shards_partition_the_chunks(chunk_count: int, shard_count: int) -> None:
    chunks = [Chunk(f"c{i:03d}", i, "x") for i in range(chunk_count)]
    shares = [shard_chunks(chunks, index, shard_count) for index in range(shard_count)]
    taken = [chunk.id for share in shares for chunk in share]
    assert sorted(taken) == [chunk.id for chunk in chunks]
    assert len(set(taken)) == len(taken)
