"""The files stages hand to each other, and reading them back without trusting them.

Each record type converts to and from plain JSON. Reading validates every field and reports the
file and line of the first problem as a `StageInputError`, because a stage fed a truncated or
foreign file should say so plainly instead of failing three functions later with a `KeyError`.
Writes go to a temporary file renamed into place, so a stage killed mid-write (or a retry racing a
lost pod) never leaves half a file for the next stage to read.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .runtime import StageInputError

CHUNKS_FILE = "chunks.jsonl"
ENTITIES_FILE = "entities.json"
RELATIONS_FILE = "relations.json"
KNOWLEDGE_GRAPH_FILE = "knowledge-graph.json"
GRAPH_FILE = "graph.json"
REPORT_FILE = "report.txt"
MENTION_KINDS = ("name", "organisation", "date", "quantity")


def mentions_file(shard_index: int) -> str:
    return f"mentions-{shard_index}.jsonl"


# ------------------------------------------------------------------------------ field readers


def _field(record: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    value = record.get(key)
    # bool is an int in Python; a `true` where a number belongs is still corrupt input.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise StageInputError(f"{where}: field {key!r} must be a {kind.__name__}, got {value!r}")
    return value


def _str_list(record: Mapping[str, Any], key: str, where: str) -> list[str]:
    values = _field(record, key, list, where)
    if not all(isinstance(value, str) for value in values):
        raise StageInputError(f"{where}: field {key!r} must be a list of strings")
    return list(values)


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise StageInputError(f"{where}: expected a JSON object, got {type(value).__name__}")
    return value


# ------------------------------------------------------------------------------------ records


@dataclass(frozen=True)
class Chunk:
    """A slice of the input text small enough to extract from in one go."""

    id: str
    index: int
    text: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "index": self.index, "text": self.text}

    @classmethod
    def from_json(cls, value: Any, where: str) -> Chunk:
        record = _object(value, where)
        return cls(
            id=_field(record, "id", str, where),
            index=_field(record, "index", int, where),
            text=_field(record, "text", str, where),
        )


@dataclass(frozen=True)
class Mention:
    """One occurrence of a possible entity: where it is and how it was spelled."""

    chunk: str
    start: int
    end: int
    text: str
    kind: str

    def to_json(self) -> dict[str, Any]:
        return {
            "chunk": self.chunk,
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "kind": self.kind,
        }

    @classmethod
    def from_json(cls, value: Any, where: str) -> Mention:
        record = _object(value, where)
        kind = _field(record, "kind", str, where)
        if kind not in MENTION_KINDS:
            raise StageInputError(
                f"{where}: kind {kind!r} is not one of {', '.join(MENTION_KINDS)}"
            )
        return cls(
            chunk=_field(record, "chunk", str, where),
            start=_field(record, "start", int, where),
            end=_field(record, "end", int, where),
            text=_field(record, "text", str, where),
            kind=kind,
        )


@dataclass(frozen=True)
class Entity:
    """Mentions that name the same thing, with how often and where it was seen."""

    id: str
    name: str
    kind: str
    mentions: int
    chunks: tuple[str, ...]
    aliases: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "mentions": self.mentions,
            "aliases": list(self.aliases),
            "chunks": list(self.chunks),
        }

    @classmethod
    def from_json(cls, value: Any, where: str) -> Entity:
        record = _object(value, where)
        return cls(
            id=_field(record, "id", str, where),
            name=_field(record, "name", str, where),
            kind=_field(record, "kind", str, where),
            mentions=_field(record, "mentions", int, where),
            chunks=tuple(_str_list(record, "chunks", where)),
            aliases=tuple(_str_list(record, "aliases", where)),
        )


@dataclass(frozen=True)
class Relation:
    """Two entities seen together in `weight` chunks; `source < target` so each pair is one edge."""

    source: str
    target: str
    weight: int

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "target": self.target, "weight": self.weight}

    @classmethod
    def from_json(cls, value: Any, where: str) -> Relation:
        record = _object(value, where)
        return cls(
            source=_field(record, "source", str, where),
            target=_field(record, "target", str, where),
            weight=_field(record, "weight", int, where),
        )


# ------------------------------------------------------------------------------------- files


def require_file(path: Path, produced_by: str) -> None:
    if not path.is_file():
        raise StageInputError(
            f"{path} does not exist; the {produced_by} stage must succeed first "
            "(is dependsOn right, and do the stages share spec.workspace?)"
        )


def read_json_lines(path: Path, produced_by: str) -> list[Any]:
    """Every line of a JSON-lines file, parsed; a bad line names the file and line number."""
    require_file(path, produced_by)
    values = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                values.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise StageInputError(
                    f"{path}:{number} is not valid JSON ({error.msg}); "
                    f"re-run the {produced_by} stage"
                ) from None
    return values


def read_json(path: Path, produced_by: str) -> Mapping[str, Any]:
    require_file(path, produced_by)
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise StageInputError(
            f"{path} is not valid JSON ({error}); re-run the {produced_by} stage"
        ) from None
    return _object(value, str(path))


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` via a temporary file in the same directory and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_json(path: Path, value: Any) -> None:
    write_atomically(path, json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def write_json_lines(path: Path, values: Iterable[Any]) -> None:
    write_atomically(path, "".join(json.dumps(v, ensure_ascii=False) + "\n" for v in values))


def file_digest(path: Path) -> str:
    """SHA-256 of a file, so later stages can tell that their inputs belong together."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_records(path: Path, key: str, produced_by: str) -> list[Any]:
    """The list under `key` of a JSON object file, or a bad input naming what is wrong."""
    values = read_json(path, produced_by).get(key)
    if not isinstance(values, list):
        raise StageInputError(
            f"{path}: field {key!r} must be a list; re-run the {produced_by} stage"
        )
    return values


def read_entities(path: Path, produced_by: str) -> list[Entity]:
    records = read_records(path, "entities", produced_by)
    return [Entity.from_json(value, f"{path}: entities[{i}]") for i, value in enumerate(records)]


def read_relations(path: Path, produced_by: str) -> list[Relation]:
    records = read_records(path, "relations", produced_by)
    return [Relation.from_json(value, f"{path}: relations[{i}]") for i, value in enumerate(records)]
