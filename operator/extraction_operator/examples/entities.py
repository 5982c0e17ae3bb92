"""Stage 3: merge the mention shards and group mentions into entities (`entities.json`).

Before merging it proves the shard files form one complete set: every file's header agrees on the
shard count, every shard from 0 to count-1 is there exactly once, and each was computed from the
current `chunks.jsonl` (by digest). A missing or stale shard is a bad input (exit 2), not a smaller
graph nobody notices.

Mentions group by kind and a normalised key (case, spacing and punctuation folded), so `Note G` and
`note G` are one entity; the entity's name is its most frequent spelling.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .records import (
    CHUNKS_FILE,
    ENTITIES_FILE,
    Entity,
    Mention,
    file_digest,
    read_json_lines,
    require_file,
    write_json,
)
from .runtime import StageContext, StageInputError, run_stage

_SHARD_FILE = re.compile(r"^mentions-(\d+)\.jsonl$")
_NOT_ALNUM = re.compile(r"[^0-9a-z]+")


def entity_key(text: str) -> str:
    """`Ada  Lovelace` and `ada lovelace` share the key `ada-lovelace`."""
    return _NOT_ALNUM.sub("-", text.casefold()).strip("-")


def entity_id(kind: str, text: str) -> str:
    return f"{kind}:{entity_key(text)}"


def group_mentions(mentions: Iterable[Mention]) -> list[Entity]:
    """Entities sorted by id, each with its mention count and the chunks it appears in."""
    spellings: dict[str, Counter[str]] = defaultdict(Counter)
    chunks: dict[str, set[str]] = defaultdict(set)
    kinds: dict[str, str] = {}
    for mention in mentions:
        if not entity_key(mention.text):
            continue  # punctuation only: nothing to name
        identifier = entity_id(mention.kind, mention.text)
        kinds[identifier] = mention.kind
        spellings[identifier][mention.text] += 1
        chunks[identifier].add(mention.chunk)
    entities = []
    for identifier in sorted(kinds):
        counts = spellings[identifier]
        # Most frequent spelling; ties broken alphabetically so the result never depends on order.
        name = min(counts, key=lambda spelling: (-counts[spelling], spelling))
        entities.append(
            Entity(
                id=identifier,
                name=name,
                kind=kinds[identifier],
                mentions=sum(counts.values()),
                chunks=tuple(sorted(chunks[identifier])),
            )
        )
    return entities


def _header(first: Any, path: Path) -> Mapping[str, Any]:
    header = first.get("header") if isinstance(first, dict) else None
    if not isinstance(header, dict):
        raise StageInputError(f"{path}:1 is not a shard header; re-run the mentions stage")
    for key, kind in (("shard", int), ("shardCount", int), ("chunksDigest", str)):
        if not isinstance(header.get(key), kind):
            raise StageInputError(
                f"{path}:1 header field {key!r} is missing or not a {kind.__name__}"
            )
    return header


def load_shards(output_dir: Path) -> tuple[list[Mention], int]:
    """All mentions of a complete, consistent set of shard files, and the shard count."""
    chunks_path = output_dir / CHUNKS_FILE
    require_file(chunks_path, "chunk")
    digest = file_digest(chunks_path)
    files = sorted(
        (int(match.group(1)), path)
        for path in output_dir.glob("mentions-*.jsonl")
        if (match := _SHARD_FILE.match(path.name))
    )
    if not files:
        raise StageInputError(
            f"no mentions-<shard>.jsonl files in {output_dir}; "
            "the mentions stage must succeed first"
        )
    mentions: list[Mention] = []
    counts: set[int] = set()
    for shard, path in files:
        records = read_json_lines(path, "mentions")
        if not records:
            raise StageInputError(f"{path} is empty; re-run the mentions stage")
        header = _header(records[0], path)
        if header["shard"] != shard:
            raise StageInputError(f"{path} holds shard {header['shard']}, not {shard}")
        if header["chunksDigest"] != digest:
            raise StageInputError(
                f"{path} was computed from another {CHUNKS_FILE}; re-run the mentions stage"
            )
        counts.add(header["shardCount"])
        mentions.extend(
            Mention.from_json(record, f"{path}:{number}")
            for number, record in enumerate(records[1:], start=2)
        )
    if len(counts) != 1:
        raise StageInputError(f"shard files disagree on the shard count: {sorted(counts)}")
    count = counts.pop()
    missing = sorted(set(range(count)) - {shard for shard, _ in files})
    extra = sorted({shard for shard, _ in files} - set(range(count)))
    if missing or extra:
        raise StageInputError(
            f"expected mentions-0..{count - 1}.jsonl in {output_dir}; "
            f"missing {missing or 'none'}, unexpected {extra or 'none'}"
        )
    return mentions, count


def entities_stage(context: StageContext) -> str:
    mentions, shard_count = load_shards(context.output_dir)
    entities = group_mentions(mentions)
    write_json(
        context.output_dir / ENTITIES_FILE,
        {
            "shards": shard_count,
            "mentions": len(mentions),
            "entities": [entity.to_json() for entity in entities],
        },
    )
    return f"{len(entities)} entities from {len(mentions)} mentions in {shard_count} shards"


def main() -> int:
    return run_stage(entities_stage)


if __name__ == "__main__":
    raise SystemExit(main())
