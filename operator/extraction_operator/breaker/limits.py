"""What a breaker document may plausibly say, and what happens to a document that says more.

The annotation is written by stage pods, and a stage runs untrusted code on untrusted input: even
its own run's pods may write anything into it (docs/security.md). So every reader, the stage SDK
and the operator alike, holds the document to these bounds before acting on it:

- Time: no timestamp may lie further in the future than `CLOCK_SKEW_SECONDS` (honest pods' clocks
  agree far better than that). A circuit that claims to have opened in the future is reset to
  closed, as any malformed circuit is: `openedAt: 2099-01-01` would otherwise hold the run's
  stages until 2099. Clamping instead would not do: "opened now" read at every later moment is a
  recovery time that never comes. A probe lease that runs out later than a lease could
  (`probeTimeoutSeconds` from now) is no lease, so the next caller may probe.
- Size: the whole annotation, the number of circuits, names, counters, `lastError` and the probe's
  holder are bounded. A counter beyond `MAX_COUNTER` is clamped (the API server refuses integers
  beyond 64 bits, so mirroring one into status would wedge every status write of the run).

Every reset, clamp and drop is reported as a problem, logged once per distinct annotation value.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Final

from .document import CLOSED, MAX_GENERATION, BreakerDocument, CircuitRecord, format_timestamp

CLOCK_SKEW_SECONDS: Final = 60.0
# The longest lease any config allows (`probeTimeoutSeconds` <= 86400), for readers without config.
MAX_PROBE_SECONDS: Final = 86400.0


def _future(epoch: float | None, now: float) -> bool:
    return epoch is not None and epoch > now + CLOCK_SKEW_SECONDS


def _ahead(epoch: float, now: float) -> str:
    return f"{format_timestamp(epoch)} is {epoch - now:.0f} s in the future"


def opened_plausibly(opened_at: float | None, now: float) -> bool:
    """False for an `openedAt` further in the future than clocks can disagree."""
    return not _future(opened_at, now)


def lease_is_plausible(expires_at: float, now: float, probe_timeout_seconds: float) -> bool:
    """A lease claimed at most `now` runs out at most `probe_timeout_seconds` (+ skew) from now."""
    return expires_at <= now + probe_timeout_seconds + CLOCK_SKEW_SECONDS


def _sanitize_circuit(name: str, record: CircuitRecord, now: float) -> tuple[CircuitRecord, str]:
    where = f"circuits.{name}"
    if _future(record.opened_at, now):
        assert record.opened_at is not None
        reset = replace(CLOSED, generation=min(record.generation + 1, MAX_GENERATION))
        return reset, (
            f"{where}.openedAt {_ahead(record.opened_at, now)} (more than "
            f"{CLOCK_SKEW_SECONDS:.0f} s of clock skew); treating circuit {name!r} as closed"
        )
    problems: list[str] = []
    if _future(record.updated_at, now):
        assert record.updated_at is not None
        problems.append(f"{where}.updatedAt {_ahead(record.updated_at, now)}; dropped")
        record = replace(record, updated_at=None)
    probe = record.probe
    if probe is not None and not lease_is_plausible(probe.expires_at, now, MAX_PROBE_SECONDS):
        problems.append(
            f"{where}.probe.expiresAt {_ahead(probe.expires_at, now)}, longer than any probe "
            "lease; the lease is void and the next caller may probe"
        )
        record = replace(record, probe=None)
    return record, "; ".join(problems)


def sanitize(document: BreakerDocument, now: float) -> tuple[BreakerDocument, str | None]:
    """The document with every implausible timestamp dealt with (see the module docstring), and
    what was done, or None when nothing was."""
    circuits: dict[str, CircuitRecord] = {}
    problems: list[str] = []
    for name, record in document.circuits.items():
        circuits[name], problem = _sanitize_circuit(name, record, now)
        if problem:
            problems.append(problem)
    if not problems:
        return document, None
    return BreakerDocument(circuits=circuits), "; ".join(problems)
