"""May a stage launch now, as far as its circuit breakers are concerned?

A stage is blocked while any of its circuits is `open` and its recovery time (`retry_at`) lies in
the future. `half-open` lets it through: the stage SDK makes sure only one caller probes. An open
gate with no `retry_at` means the shell could not tell when it recovers (a malformed annotation);
like a malformed annotation it is treated as closed, so a broken document cannot wedge a run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from .types import CircuitGate


@dataclass(frozen=True)
class Blockage:
    circuits: tuple[str, ...]  # the open circuits, in the stage's order
    until: datetime  # when the last of them may be probed again


def blockage(
    circuits: Sequence[str], gates: Mapping[str, CircuitGate], now: datetime
) -> Blockage | None:
    """The circuits holding this stage back right now, or None when it may launch."""
    open_until = [
        (name, gate.retry_at)
        for name in circuits
        if (gate := gates.get(name)) is not None
        and gate.state == "open"
        and gate.retry_at is not None
        and gate.retry_at > now
    ]
    if not open_until:
        return None
    return Blockage(
        circuits=tuple(name for name, _ in open_until),
        until=max(moment for _, moment in open_until if moment is not None),
    )


def recovery_time(circuits: Sequence[str], gates: Mapping[str, CircuitGate]) -> datetime | None:
    """The latest recovery time among this stage's open circuits (whether or not it has passed)."""
    times = [
        gate.retry_at
        for name in circuits
        if (gate := gates.get(name)) is not None and gate.state == "open" and gate.retry_at
    ]
    return max(times) if times else None
