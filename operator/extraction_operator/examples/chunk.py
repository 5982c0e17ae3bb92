"""Stage 1 of the example pipeline: split the input text into chunks (`chunks.jsonl`).

The input is the sample text shipped with the package, or the file named by `EXAMPLE_INPUT`
(relative to the workspace), so the same stage works on your own text. A chunk is one paragraph,
or a run of whole sentences when a paragraph is longer than `MAX_CHUNK_CHARS`: extraction then never
sees a name cut in half.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from .records import CHUNKS_FILE, Chunk, write_json_lines
from .runtime import StageContext, StageInputError, run_stage

MAX_CHUNK_CHARS = 700
ENV_INPUT = "EXAMPLE_INPUT"
SAMPLE_TEXT = "engines.txt"

_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9])")


def sample_text() -> str:
    """The bundled sample: paragraphs about Babbage, Lovelace and their engines."""
    return (
        resources.files(__package__)
        .joinpath("data")
        .joinpath(SAMPLE_TEXT)
        .read_text(encoding="utf-8")
    )


def split_paragraphs(text: str) -> list[str]:
    """Paragraphs separated by blank lines, each with its line breaks folded into spaces."""
    paragraphs = (" ".join(part.split()) for part in _PARAGRAPH_BREAK.split(text))
    return [paragraph for paragraph in paragraphs if paragraph]


def split_long(paragraph: str, max_chars: int) -> list[str]:
    """A paragraph as pieces of whole sentences, each at most `max_chars` unless one sentence is
    longer on its own (then it stays whole: cutting inside a sentence would cut mentions)."""
    if len(paragraph) <= max_chars:
        return [paragraph]
    pieces: list[str] = []
    current = ""
    for sentence in _SENTENCE_END.split(paragraph):
        candidate = f"{current} {sentence}" if current else sentence
        if current and len(candidate) > max_chars:
            pieces.append(current)
            current = sentence
        else:
            current = candidate
    if current:
        pieces.append(current)
    return pieces


def make_chunks(text: str, max_chars: int = MAX_CHUNK_CHARS) -> list[Chunk]:
    pieces = [
        piece for paragraph in split_paragraphs(text) for piece in split_long(paragraph, max_chars)
    ]
    return [
        Chunk(id=f"c{index:03d}", index=index, text=piece) for index, piece in enumerate(pieces)
    ]


def read_input(context: StageContext) -> tuple[str, str]:
    """The text to chunk and where it came from."""
    name = context.env.get(ENV_INPUT, "").strip()
    if not name:
        return sample_text(), f"bundled {SAMPLE_TEXT}"
    path = Path(name) if Path(name).is_absolute() else context.workspace / name
    if not path.is_file():
        raise StageInputError(f"{ENV_INPUT}={name!r}: {path} does not exist")
    try:
        return path.read_text(encoding="utf-8"), str(path)
    except UnicodeDecodeError:
        raise StageInputError(f"{ENV_INPUT}={name!r}: {path} is not UTF-8 text") from None


def chunk_stage(context: StageContext) -> str:
    text, source = read_input(context)
    chunks = make_chunks(text)
    if not chunks:
        raise StageInputError(f"the input ({source}) has no text to extract from")
    write_json_lines(context.output_dir / CHUNKS_FILE, (chunk.to_json() for chunk in chunks))
    return f"{len(chunks)} chunks from {source} ({len(text)} characters)"


def main() -> int:
    return run_stage(chunk_stage)


if __name__ == "__main__":
    raise SystemExit(main())
