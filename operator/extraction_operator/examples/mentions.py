"""Stage 2 (fan-out): find entity mentions in this shard's chunks (`mentions-<shard>.jsonl`).

Shard `SHARD_INDEX` of `SHARD_COUNT` takes the chunks whose index is congruent to it, so the
shards split the work without talking to each other. Extraction is a deterministic heuristic that
stands in for an LLM call (same text, same mentions, which is what lets the tests assert the final
graph):

- dates: `10 December 1815`, `June 1833`, and bare years such as `1843`;
- quantities: a number followed by a unit, `1,500 pounds`, `2.6 tonnes`;
- names: runs of capitalised words (`Ada Lovelace`), joined across `of`/`de`-style connectors
  (`University of London`), without sentence-initial function words (`The`, `In`, `Her`) and
  without months or weekdays. A name with an institution word (`Museum`, `Government`) is an
  `organisation`.

The first line of the output is a header naming the shard and the digest of `chunks.jsonl`, so the
entities stage can prove it merges a complete, consistent set of shard files.

With `LLM_PROVIDER_URL` set, each chunk goes to that (fake) LLM provider instead (`provider.py`
answers with this same heuristic, so the graph is identical), one call per chunk inside
`with circuit("llm")`. The first failed call fails the shard (exit 1) and the operator re-runs it
with backoff: a stage that keeps calling a provider that has just failed only adds doomed calls
(and, before the shared breaker opens, failures other pods cannot yet see). An open circuit stops
it too (exit 75: the node waits as `Blocked` without using a retry). Set
`LLM_BREAKER=off` to call the provider without a breaker (the outage benchmark's baseline).
"""

from __future__ import annotations

import re
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from .provider_client import (
    DEFAULT_TIMEOUT_SECONDS,
    ENV_PROVIDER_TIMEOUT,
    ENV_PROVIDER_URL,
    ProviderHTTPError,
    ProviderReplyError,
    ProviderUnavailable,
    extract_mentions,
)
from .records import (
    CHUNKS_FILE,
    Chunk,
    Mention,
    file_digest,
    mentions_file,
    read_json_lines,
    write_json_lines,
)
from .runtime import StageContext, StageInputError, StageTransientError, run_stage

ENV_BREAKER = "LLM_BREAKER"
CIRCUIT = "llm"

MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
UNITS = [
    "pounds",
    "tonnes",
    "tons",
    "kilograms",
    "kg",
    "grams",
    "columns",
    "parts",
    "years",
    "volumes",
    "percent",
    "miles",
    "metres",
    "meters",
    "kilometres",
    "km",
    "feet",
    "hours",
    "minutes",
    "days",
]
# Capitalised only because they start a sentence (or are pronouns): never the start of a name.
FUNCTION_WORDS = frozenset(
    [
        "A",
        "An",
        "And",
        "As",
        "At",
        "Before",
        "But",
        "By",
        "Each",
        "Every",
        "For",
        "From",
        "He",
        "Her",
        "Here",
        "His",
        "However",
        "I",
        "If",
        "In",
        "It",
        "Its",
        "Many",
        "Most",
        "No",
        "Not",
        "Of",
        "On",
        "One",
        "Or",
        "Our",
        "Others",
        "Other",
        "She",
        "Since",
        "So",
        "Some",
        "Such",
        "That",
        "The",
        "Their",
        "Them",
        "Then",
        "There",
        "These",
        "They",
        "This",
        "Those",
        "Two",
        "We",
        "When",
        "While",
        "With",
        "Yet",
        "You",
        "Your",
        "After",
        "All",
        "Also",
        "Both",
    ]
)
CONNECTORS = frozenset({"of", "de", "von", "van", "da", "di", "du", "del", "la", "le"})
ORGANISATION_WORDS = frozenset(
    [
        "Academy",
        "Bank",
        "College",
        "Company",
        "Government",
        "Institute",
        "Library",
        "Museum",
        "Parliament",
        "School",
        "Society",
        "University",
    ]
)

_DATE = re.compile(rf"(?<![\w,.])(?:\d{{1,2}} )?(?:{'|'.join(MONTHS)}) \d{{4}}\b")
_QUANTITY = re.compile(rf"(?<![\w,.])\d+(?:,\d{{3}})*(?:\.\d+)? (?:{'|'.join(UNITS)})\b")
_YEAR = re.compile(r"(?<![\w,.])(?:1\d{3}|20\d{2})\b(?![,.]\d)")
_WORD = re.compile(r"[A-Za-z][A-Za-z'\u2019]*")
_POSSESSIVE = ("'s", "\u2019s")
_NOT_NAMES = frozenset(MONTHS) | frozenset(WEEKDAYS)


@dataclass(frozen=True)
class _Token:
    text: str
    start: int
    end: int

    @property
    def capitalised(self) -> bool:
        return self.text[0].isupper()


def find_mentions(chunk: Chunk) -> list[Mention]:
    """Every date, quantity and name mention in a chunk, in text order."""
    text = chunk.text
    found: list[Mention] = []
    taken: list[tuple[int, int]] = []
    # Quantities before years, so `1,500 pounds` is not read as a year-ish number.
    for pattern, kind in ((_DATE, "date"), (_QUANTITY, "quantity"), (_YEAR, "date")):
        for match in pattern.finditer(text):
            if not _overlaps(match.start(), match.end(), taken):
                taken.append((match.start(), match.end()))
                found.append(Mention(chunk.id, match.start(), match.end(), match.group(), kind))
    tokens = [
        _Token(m.group(), m.start(), m.end())
        for m in _WORD.finditer(text)
        if not _overlaps(m.start(), m.end(), taken)
    ]
    found.extend(_name_mentions(chunk.id, text, tokens))
    return sorted(found, key=lambda mention: (mention.start, mention.end))


def _overlaps(start: int, end: int, spans: list[tuple[int, int]]) -> bool:
    return any(start < span_end and span_start < end for span_start, span_end in spans)


def _adjacent(text: str, left: _Token, right: _Token) -> bool:
    """Two tokens belong to one name only when a single space separates them: a comma or full
    stop between `English. Charles` ends the name."""
    return text[left.end : right.start] == " "


def _name_mentions(chunk_id: str, text: str, tokens: list[_Token]) -> list[Mention]:
    mentions = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if not token.capitalised or token.text in _NOT_NAMES:
            index += 1
            continue
        run = [token]
        index += 1
        while index < len(tokens):
            nxt = tokens[index]
            if _is_name_word(nxt) and _adjacent(text, run[-1], nxt):
                run.append(nxt)
                index += 1
            elif (
                nxt.text in CONNECTORS
                and index + 1 < len(tokens)
                and _is_name_word(tokens[index + 1])
                and _adjacent(text, run[-1], nxt)
                and _adjacent(text, nxt, tokens[index + 1])
            ):
                run.extend(tokens[index : index + 2])
                index += 2
            else:
                break
        mention = _name_from_run(chunk_id, text, run)
        if mention is not None:
            mentions.append(mention)
    return mentions


def _is_name_word(token: _Token) -> bool:
    return token.capitalised and token.text not in _NOT_NAMES


def _name_from_run(chunk_id: str, text: str, run: list[_Token]) -> Mention | None:
    while run and (run[0].text in FUNCTION_WORDS or run[0].text in CONNECTORS):
        run = run[1:]
    if not run:
        return None
    start, end = run[0].start, run[-1].end
    surface = text[start:end]
    if surface.endswith(_POSSESSIVE):
        end -= 2
        surface = surface[:-2]
    words = {token.text.removesuffix("'s").removesuffix("\u2019s") for token in run}
    kind = "organisation" if words & ORGANISATION_WORDS else "name"
    return Mention(chunk_id, start, end, surface, kind)


def shard_chunks(chunks: list[Chunk], shard_index: int, shard_count: int) -> list[Chunk]:
    """This shard's share: chunks whose index modulo the shard count is the shard index."""
    return [chunk for chunk in chunks if chunk.index % shard_count == shard_index]


def shard_header(context: StageContext, chunks_digest: str, chunk_count: int) -> dict[str, Any]:
    return {
        "header": {
            "shard": context.shard_index,
            "shardCount": context.shard_count,
            "chunksDigest": chunks_digest,
            "chunks": chunk_count,
        }
    }


def extract_shard(context: StageContext, chunks: list[Chunk]) -> list[Mention]:
    """The mentions of this shard's chunks: locally, or through the provider when one is set."""
    url = context.env.get(ENV_PROVIDER_URL, "").strip()
    if not url:
        return [mention for chunk in chunks for mention in find_mentions(chunk)]
    timeout = _timeout(context)
    guard = _guard(context)
    mentions: list[Mention] = []
    for done, chunk in enumerate(chunks):
        try:
            with guard:  # raises CircuitOpen when the breaker is open: the stage exits 75
                mentions.extend(extract_mentions(url, chunk, run=context.run, timeout=timeout))
        except (ProviderHTTPError, ProviderUnavailable, ProviderReplyError) as error:
            raise StageTransientError(
                f"provider call for {chunk.id} failed after {done} of {len(chunks)} chunks: "
                f"{error}; the operator retries this shard with backoff"
            ) from error
    return mentions


def _guard(context: StageContext) -> AbstractContextManager[object]:
    """`circuit("llm")`, or nothing with `LLM_BREAKER=off`."""
    setting = context.env.get(ENV_BREAKER, "on").strip().lower()
    if setting == "off":
        return nullcontext()
    if setting != "on":
        raise StageInputError(f"{ENV_BREAKER}={setting!r}: use 'on' (the default) or 'off'")
    from extraction_operator.stage import circuit  # only stages that call a provider need it

    return circuit(CIRCUIT)


def _timeout(context: StageContext) -> float:
    raw = context.env.get(ENV_PROVIDER_TIMEOUT, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise StageInputError(f"{ENV_PROVIDER_TIMEOUT}={raw!r} must be a positive number")
    return value


def mentions_stage(context: StageContext) -> str:
    chunks_path = context.output_dir / CHUNKS_FILE
    records = read_json_lines(chunks_path, "chunk")
    chunks = [
        Chunk.from_json(record, f"{chunks_path}:{number}")
        for number, record in enumerate(records, start=1)
    ]
    mine = shard_chunks(chunks, context.shard_index, context.shard_count)
    mentions = extract_shard(context, mine)
    header = shard_header(context, file_digest(chunks_path), len(mine))
    write_json_lines(
        context.output_dir / mentions_file(context.shard_index),
        [header, *(mention.to_json() for mention in mentions)],
    )
    return (
        f"shard {context.shard_index}/{context.shard_count}: "
        f"{len(mentions)} mentions in {len(mine)} of {len(chunks)} chunks"
    )


def main() -> int:
    return run_stage(mentions_stage)


if __name__ == "__main__":
    raise SystemExit(main())
