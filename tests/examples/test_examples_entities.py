"""Grouping mentions into entities, and refusing shard sets that do not belong together."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from extraction_operator.examples.entities import entity_key, group_mentions, load_shards
from extraction_operator.examples.records import Mention, file_digest
from extraction_operator.examples.runtime import StageInputError


def test_key_folds_case_spacing_and_punctuation() -> None:
    assert entity_key("Ada  Lovelace") == entity_key("ada lovelace") == "ada-lovelace"
    assert entity_key("2.6 tonnes") == "2-6-tonnes"


def test_mentions_group_by_kind_and_key_with_the_most_frequent_spelling() -> None:
    mentions = [
        Mention("c001", 0, 4, "Note G", "name"),
        Mention("c002", 0, 4, "note G", "name"),
        Mention("c003", 0, 4, "Note G", "name"),
        Mention("c003", 9, 13, "1843", "date"),
        Mention("c003", 20, 21, "--", "name"),
    ]
    entities = group_mentions(mentions)
    assert [(e.id, e.name, e.kind, e.mentions, e.chunks) for e in entities] == [
        ("date:1843", "1843", "date", 1, ("c003",)),
        ("name:note-g", "Note G", "name", 3, ("c001", "c002", "c003")),
    ]


def _write_shards(folder: Path, count: int, *, digest: str | None = None) -> None:
    chunks = folder / "chunks.jsonl"
    chunks.write_text('{"id": "c000", "index": 0, "text": "Ada"}\n')
    for shard in range(count):
        header: dict[str, Any] = {
            "header": {
                "shard": shard,
                "shardCount": count,
                "chunksDigest": digest or file_digest(chunks),
                "chunks": 1,
            }
        }
        mention = {"chunk": "c000", "start": 0, "end": 3, "text": "Ada", "kind": "name"}
        lines = [json.dumps(header), json.dumps(mention)]
        (folder / f"mentions-{shard}.jsonl").write_text("\n".join(lines) + "\n")


def test_a_complete_shard_set_loads(tmp_path: Path) -> None:
    _write_shards(tmp_path, 3)
    mentions, count = load_shards(tmp_path)
    assert count == 3
    assert len(mentions) == 3


def test_a_missing_shard_is_a_bad_input(tmp_path: Path) -> None:
    _write_shards(tmp_path, 3)
    (tmp_path / "mentions-1.jsonl").unlink()
    with pytest.raises(StageInputError, match=r"missing \[1\]"):
        load_shards(tmp_path)


def test_shards_from_other_chunks_are_a_bad_input(tmp_path: Path) -> None:
    _write_shards(tmp_path, 2, digest="0" * 64)
    with pytest.raises(StageInputError, match=r"computed from another chunks\.jsonl"):
        load_shards(tmp_path)


def test_shards_disagreeing_on_the_count_are_a_bad_input(tmp_path: Path) -> None:
    _write_shards(tmp_path, 3)
    extra = tmp_path / "second"
    extra.mkdir()
    _write_shards(extra, 4)
    (tmp_path / "mentions-3.jsonl").write_text((extra / "mentions-3.jsonl").read_text())
    with pytest.raises(StageInputError):
        load_shards(tmp_path)


def test_a_malformed_mention_names_file_line_and_field(tmp_path: Path) -> None:
    _write_shards(tmp_path, 1)
    shard = tmp_path / "mentions-0.jsonl"
    header = shard.read_text().splitlines()[0]
    bad = {"chunk": "c000", "start": "zero", "end": 3, "text": "Ada", "kind": "name"}
    shard.write_text(header + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(StageInputError, match=r"mentions-0.jsonl:2: field 'start' must be a int"):
        load_shards(tmp_path)


def test_a_missing_header_is_a_bad_input(tmp_path: Path) -> None:
    _write_shards(tmp_path, 1)
    (tmp_path / "mentions-0.jsonl").write_text('{"chunk": "c000"}\n')
    with pytest.raises(StageInputError, match="is not a shard header"):
        load_shards(tmp_path)


def test_no_shards_at_all_is_a_bad_input(tmp_path: Path) -> None:
    (tmp_path / "chunks.jsonl").write_text("")
    with pytest.raises(StageInputError, match=r"no mentions-<shard>\.jsonl files"):
        load_shards(tmp_path)
