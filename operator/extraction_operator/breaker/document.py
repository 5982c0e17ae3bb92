"""The versioned JSON document stored in the run's `extraction.dev/circuit-breakers` annotation.

Shape (DESIGN.md section 4, plus `opens` and the probe's `nonce`)::

    {"v": 1, "circuits": {"llm": {"state": "open", "failures": 5, "openedAt": "...Z",
      "probe": {"holder": "pod-x (pid 7)", "nonce": "9f..", "expiresAt": "...Z"},
      "successes": 0, "lastError": "TimeoutError: ...", "updatedAt": "...Z",
      "generation": 3, "opens": 1}}}

Parsing is tolerant on purpose: the annotation is written by stage pods, which run untrusted code,
and a stage must never die because somebody wrote garbage into it. Every problem is returned as a
string (and logged by the caller), the affected part is treated as closed, and the next write
replaces it. Sizes are bounded here (the whole annotation, circuits, names, counters, strings);
timestamps in the future are judged against a clock in `limits.py` (`parse_document(raw, now=...)`).
Timestamps are wall-clock epoch seconds in memory and RFC 3339 strings on the wire, so they mean the
same thing in every process and survive restarts (a monotonic clock would not).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final, Literal

logger = logging.getLogger(__name__)

DOCUMENT_VERSION: Final = 1
MAX_ERROR_CHARS: Final = 512
# Bounds on untrusted input (docs/security.md). The admission policy refuses a stage pod's write of
# a longer annotation; readers refuse to parse one at all (a huge JSON costs memory and CPU).
MAX_DOCUMENT_CHARS: Final = 32768
MAX_CIRCUITS: Final = 64
MAX_NAME_CHARS: Final = 63
MAX_HOLDER_CHARS: Final = 256
MAX_NONCE_CHARS: Final = 64
MAX_COUNTER: Final = 1_000_000_000  # clamped: far beyond any real count, far inside int64
MAX_GENERATION: Final = 2**53 - 1  # above it a generation cannot be trusted to move on exactly
MAX_EPOCH: Final = 253402300799.0  # 9999-12-31T23:59:59Z, the last moment RFC 3339 can say
STATES: Final = ("closed", "open", "half-open")

State = Literal["closed", "open", "half-open"]


@dataclass(frozen=True)
class ProbeLease:
    """The single permit to call the provider while half-open; `nonce` makes each claim unique,
    because a write identical to the stored value would not change the resourceVersion and so would
    not exclude a second claimant."""

    holder: str
    nonce: str
    expires_at: float


@dataclass(frozen=True)
class CircuitRecord:
    """The shared state of one named circuit. `generation` changes on every state change."""

    state: State = "closed"
    failures: int = 0
    successes: int = 0
    opened_at: float | None = None
    probe: ProbeLease | None = None
    last_error: str | None = None
    updated_at: float | None = None
    generation: int = 0
    opens: int = 0


CLOSED: Final = CircuitRecord()


@dataclass(frozen=True)
class BreakerDocument:
    """All circuits of one run. Immutable: the state machine returns new documents."""

    circuits: dict[str, CircuitRecord] = field(default_factory=dict)

    def circuit(self, name: str) -> CircuitRecord:
        return self.circuits.get(name, CLOSED)

    def with_circuit(self, name: str, record: CircuitRecord) -> BreakerDocument:
        circuits = dict(self.circuits)
        circuits[name] = record
        return BreakerDocument(circuits=circuits)


EMPTY_DOCUMENT: Final = BreakerDocument()


# ------------------------------------------------------------------------------------- time


def format_timestamp(epoch: float) -> str:
    """RFC 3339 in UTC with milliseconds: readable in `kubectl describe`, parseable by pydantic."""
    moment = datetime.fromtimestamp(epoch, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_timestamp(value: object) -> float | None:
    """Accept RFC 3339 strings and epoch numbers; return None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
        return number if math.isfinite(number) and 0 <= number <= MAX_EPOCH else None
    if isinstance(value, str) and len(value) <= 64:
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        try:
            epoch = moment.timestamp()
        except (OverflowError, ValueError):
            return None
        return epoch if 0 <= epoch <= MAX_EPOCH else None
    return None


# ------------------------------------------------------------------------------------ render


def _render_circuit(record: CircuitRecord) -> dict[str, Any]:
    wire: dict[str, Any] = {
        "state": record.state,
        "failures": record.failures,
        "successes": record.successes,
        "generation": record.generation,
        "opens": record.opens,
    }
    if record.opened_at is not None:
        wire["openedAt"] = format_timestamp(record.opened_at)
    if record.probe is not None:
        wire["probe"] = {
            "holder": record.probe.holder,
            "nonce": record.probe.nonce,
            "expiresAt": format_timestamp(record.probe.expires_at),
        }
    if record.last_error is not None:
        wire["lastError"] = record.last_error
    if record.updated_at is not None:
        wire["updatedAt"] = format_timestamp(record.updated_at)
    return wire


def render_document(document: BreakerDocument) -> str:
    """Compact, key-sorted JSON, so equal documents render to equal annotation values."""
    wire = {
        "v": DOCUMENT_VERSION,
        "circuits": {name: _render_circuit(rec) for name, rec in document.circuits.items()},
    }
    return json.dumps(wire, separators=(",", ":"), sort_keys=True)


def truncate_error(text: str) -> str:
    """Keep `lastError` small: the annotation shares etcd's object size budget with the run."""
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."


# ------------------------------------------------------------------------------------- parse


class _Malformed(ValueError):
    """A field of one circuit is unusable; the message names it and says what was expected."""


def _count(raw: dict[str, Any], key: str, where: str, notes: list[str]) -> int:
    value = raw.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Malformed(f"{where}.{key} must be a non-negative integer, got {value!r:.40}")
    if value > MAX_COUNTER:
        notes.append(f"{where}.{key} {value:.3g} clamped to {MAX_COUNTER}")
        return MAX_COUNTER
    return value


def _generation(raw: dict[str, Any], where: str) -> int:
    value = raw.get("generation", 0)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_GENERATION:
        raise _Malformed(
            f"{where}.generation must be an integer in 0..{MAX_GENERATION}, got {value!r:.40}"
        )
    return value


def _optional_time(raw: dict[str, Any], key: str, where: str) -> float | None:
    if raw.get(key) is None:
        return None
    parsed = parse_timestamp(raw[key])
    if parsed is None:
        raise _Malformed(f"{where}.{key} must be an RFC 3339 timestamp, got {raw[key]!r}")
    return parsed


def _parse_probe(raw: object, where: str) -> ProbeLease | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise _Malformed(f"{where}.probe must be an object, got {raw!r}")
    holder, nonce = raw.get("holder"), raw.get("nonce")
    if not isinstance(holder, str) or not isinstance(nonce, str) or not nonce:
        raise _Malformed(f"{where}.probe needs string fields holder and nonce, got {raw!r:.80}")
    if len(nonce) > MAX_NONCE_CHARS:
        raise _Malformed(f"{where}.probe.nonce is longer than {MAX_NONCE_CHARS} characters")
    expires_at = _optional_time(raw, "expiresAt", f"{where}.probe")
    if expires_at is None:
        raise _Malformed(f"{where}.probe.expiresAt is missing")
    return ProbeLease(holder=holder[:MAX_HOLDER_CHARS], nonce=nonce, expires_at=expires_at)


def _parse_circuit(raw: object, where: str, notes: list[str]) -> CircuitRecord:
    if not isinstance(raw, dict):
        raise _Malformed(f"{where} must be an object, got {type(raw).__name__}")
    state = raw.get("state", "closed")
    if state not in STATES:
        raise _Malformed(f"{where}.state must be one of {', '.join(STATES)}, got {state!r:.40}")
    last_error = raw.get("lastError")
    if last_error is not None and not isinstance(last_error, str):
        raise _Malformed(f"{where}.lastError must be a string, got {last_error!r:.40}")
    record = CircuitRecord(
        state=state,
        failures=_count(raw, "failures", where, notes),
        successes=_count(raw, "successes", where, notes),
        opened_at=_optional_time(raw, "openedAt", where),
        probe=_parse_probe(raw.get("probe"), where),
        last_error=None if last_error is None else truncate_error(last_error),
        updated_at=_optional_time(raw, "updatedAt", where),
        generation=_generation(raw, where),
        opens=_count(raw, "opens", where, notes),
    )
    if record.state != "closed" and record.opened_at is None:
        raise _Malformed(f"{where}.openedAt is required when state is {record.state!r}")
    if record.state != "half-open" and record.probe is not None:
        # A lease outside half-open means nothing; dropping it is a normalisation, not a problem.
        record = replace(record, probe=None)
    return record


def _salvaged_generation(raw: object) -> int:
    """A reset circuit still gets a generation above the broken one, so results of calls that
    started under the broken state are ignored."""
    if isinstance(raw, dict):
        generation = raw.get("generation")
        if (
            isinstance(generation, int)
            and not isinstance(generation, bool)
            and 0 <= generation < MAX_GENERATION
        ):
            return generation + 1
    return 0


def parse_document(
    raw: str | None, *, now: float | None = None
) -> tuple[BreakerDocument, str | None]:
    """Parse the annotation value; never raises.

    Returns the document and a problem description (None when all is well). A missing or empty
    annotation is the normal state of a fresh run and is not a problem. An unparseable, oversized
    document or an unknown version yields an empty (all closed) document; a malformed circuit is
    reset to closed while the other circuits are kept. With `now`, timestamps in the future are
    judged too (`limits.sanitize`): every reader that acts on the document passes it.
    """
    document, problem = _parse(raw)
    if now is None:
        return document, problem
    from .limits import sanitize  # limits builds on this module

    document, late = sanitize(document, now)
    return document, "; ".join(p for p in (problem, late) if p) or None


def _parse(raw: str | None) -> tuple[BreakerDocument, str | None]:
    if raw is None or not raw.strip():
        return EMPTY_DOCUMENT, None
    if len(raw) > MAX_DOCUMENT_CHARS:
        return EMPTY_DOCUMENT, (
            f"annotation is {len(raw)} characters long, more than a breaker document may be "
            f"({MAX_DOCUMENT_CHARS}); treating all circuits as closed"
        )
    try:
        wire = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        return (
            EMPTY_DOCUMENT,
            f"annotation is not valid JSON ({exc}); treating all circuits as closed",
        )
    if not isinstance(wire, dict):
        return EMPTY_DOCUMENT, (
            f"annotation must be a JSON object, got {type(wire).__name__}; "
            "treating all circuits as closed"
        )
    version = wire.get("v")
    if version != DOCUMENT_VERSION or isinstance(version, bool):
        return EMPTY_DOCUMENT, (
            f"annotation has unknown version v={version!r} (this SDK understands v=1); "
            "treating all circuits as closed"
        )
    circuits_raw = wire.get("circuits", {})
    if not isinstance(circuits_raw, dict):
        return EMPTY_DOCUMENT, (
            f"annotation field circuits must be an object, got {type(circuits_raw).__name__}; "
            "treating all circuits as closed"
        )
    circuits: dict[str, CircuitRecord] = {}
    problems: list[str] = []
    for name, circuit_raw in circuits_raw.items():
        if not 1 <= len(name) <= MAX_NAME_CHARS:
            problems.append(
                f"circuit name {name!r:.80} is not 1..{MAX_NAME_CHARS} characters; ignored"
            )
            continue
        if len(circuits) == MAX_CIRCUITS:
            problems.append(f"more than {MAX_CIRCUITS} circuits; the rest are ignored")
            break
        try:
            circuits[name] = _parse_circuit(circuit_raw, f"circuits.{name}", problems)
        except _Malformed as exc:
            problems.append(f"{exc}; treating circuit {name!r} as closed")
            circuits[name] = replace(CLOSED, generation=_salvaged_generation(circuit_raw))
    return BreakerDocument(circuits=circuits), "; ".join(problems) or None


def parse_and_report(raw: str | None, *, context: str) -> BreakerDocument:
    """`parse_document` plus a log warning naming where the bad annotation was found."""
    document, problem = parse_document(raw)
    if problem is not None:
        logger.warning("circuit-breaker annotation on %s: %s", context, problem)
    return document
