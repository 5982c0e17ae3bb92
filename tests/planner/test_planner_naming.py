"""Job names, node spellings and label values: unique, stable, and valid Kubernetes names."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from extraction_operator.planner import job_name, node_spellings, run_label_value
from extraction_operator.planner.naming import node_key, shorten

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def test_plain_stage_and_shards_are_spelled_without_brackets() -> None:
    spellings = node_spellings(["chunk", "right[0]", "right[1]"])
    assert spellings == {"chunk": "chunk", "right[0]": "right-0", "right[1]": "right-1"}


def test_stage_named_like_a_shard_does_not_collide_with_it() -> None:
    keys = ["right[0]", "right[1]", "right[2]", "right[3]", "right-3"]
    spellings = node_spellings(keys)
    assert len(set(spellings.values())) == len(keys)
    # Neither of the two contenders silently takes the plain spelling.
    assert spellings["right-3"] != "right-3"
    assert spellings["right[3]"] != "right-3"
    assert spellings["right[2]"] == "right-2"  # nodes without a clash keep the readable form
    assert all(DNS_LABEL.match(value) for value in spellings.values())
    names = {job_name("run", key, 1, spellings) for key in keys}
    assert len(names) == len(keys)


def test_clash_with_a_stage_named_like_the_hashed_spelling_is_repaired() -> None:
    first = node_spellings(["right[3]", "right-3"])
    sneaky = first["right[3]"]  # a stage literally named like the disambiguated spelling
    spellings = node_spellings(["right[3]", "right-3", sneaky])
    assert len(set(spellings.values())) == 3


def test_spellings_are_stable_across_calls() -> None:
    keys = ["a", "b[0]", "b[1]", "b-1"]
    assert node_spellings(keys) == node_spellings(list(keys))


def test_job_name_is_run_node_attempt() -> None:
    assert job_name("corpus-2026-11", "chunk", 2, {"chunk": "chunk"}) == "corpus-2026-11-chunk-2"
    assert job_name("r", "right[3]", 1, {"right[3]": "right-3"}) == "r-right-3-1"


def test_long_job_names_are_shortened_stably_and_stay_unique() -> None:
    run = "a-very-long-run-name-that-goes-on-and-on-for-quite-a-while-yes"
    spellings = node_spellings(
        ["extract-entities-from-chunks[10]", "extract-entities-from-chunks[11]"]
    )
    names = [job_name(run, key, attempt, spellings) for key in spellings for attempt in (1, 2, 10)]
    assert all(len(name) <= 63 for name in names)
    assert all(DNS_LABEL.match(name) for name in names), names
    assert len(set(names)) == len(names)
    assert names == [job_name(run, key, a, spellings) for key in spellings for a in (1, 2, 10)]
    assert names[0].endswith("-1")  # the attempt stays readable


def test_shortening_never_leaves_a_trailing_dash() -> None:
    name = "x" * 52 + "-" * 20
    short = shorten(name)
    assert len(short) <= 63
    assert not short.endswith("-")
    assert "--" not in short[-12:]


def test_run_label_value_is_hashed_when_too_long() -> None:
    assert run_label_value("short") == "short"
    long_name = "r" * 100
    value = run_label_value(long_name)
    assert len(value) <= 63
    assert value != run_label_value("r" * 99)


@settings(max_examples=100, deadline=None)
@given(
    stages=st.lists(
        st.from_regex(r"[a-z]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True),
        min_size=1,
        max_size=8,
        unique=True,
    ),
    shards=st.lists(st.integers(1, 12), min_size=8, max_size=8),
)
def test_spellings_are_always_unique_valid_labels(stages: list[str], shards: list[int]) -> None:
    keys = [
        node_key(name, None if count == 1 else index)
        for name, count in zip(stages, shards, strict=False)
        for index in range(count)
    ]
    spellings = node_spellings(keys)
    assert len(set(spellings.values())) == len(keys)
    assert all(DNS_LABEL.match(value) and len(value) <= 63 for value in spellings.values())
