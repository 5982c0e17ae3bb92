"""Read-only helpers for the operator: status summaries and transitions between two documents.

The operator does not take part in the state machine; it mirrors the annotation into
`status.circuits` for `kubectl describe`, and emits an Event per transition it observes by comparing
the document it saw last with the current one (the `generation` tells it a transition happened
even when several happened in between and the state looks the same).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from extraction_operator.api.models import CircuitSummary

from .document import BreakerDocument, CircuitRecord, State


@dataclass(frozen=True)
class Transition:
    circuit: str
    before: State
    after: State
    generation: int
    last_error: str | None
    opened_at: float | None

    @property
    def reason(self) -> str:
        """An Event reason: CircuitOpened, CircuitHalfOpen or CircuitClosed."""
        return {"open": "CircuitOpened", "half-open": "CircuitHalfOpen"}.get(
            self.after, "CircuitClosed"
        )


def detect_transitions(before: BreakerDocument, after: BreakerDocument) -> list[Transition]:
    """Circuits whose generation moved on between two observed documents, sorted by name."""
    found: list[Transition] = []
    for name in sorted(after.circuits):
        old, new = before.circuit(name), after.circuit(name)
        if new.generation != old.generation:
            found.append(
                Transition(
                    name, old.state, new.state, new.generation, new.last_error, new.opened_at
                )
            )
    return found


def _moment(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, tz=UTC)


def summarize(record: CircuitRecord, next_probe_at: float | None = None) -> CircuitSummary:
    """One circuit for `status.circuits`; `next_probe_at` is the `retry_at` of its view."""
    last_error = None if record.last_error is None else record.last_error[:1024]
    return CircuitSummary(
        state=record.state,
        failures=record.failures,
        opened_at=_moment(record.opened_at),
        next_probe_at=_moment(next_probe_at),
        last_error=last_error,
    )


def circuit_summaries(document: BreakerDocument) -> dict[str, CircuitSummary]:
    """`status.circuits` for every circuit in the document."""
    return {name: summarize(record) for name, record in sorted(document.circuits.items())}


def circuits_line(summaries: Mapping[str, Mapping[str, Any]]) -> str:
    """One line for `kubectl get xrun -o wide`: each circuit's state and, while it is not
    closed, when the next probe may start ("llm: open, next probe 12:00:35Z")."""
    parts: list[str] = []
    for name, summary in sorted(summaries.items()):
        state = str(summary.get("state") or "closed")
        text = f"{name}: {state}"
        next_probe = summary.get("nextProbeAt")
        if state != "closed":
            clock = str(next_probe)[11:] if isinstance(next_probe, str) else ""
            text += f", next probe {clock}" if clock else ", probing"
        parts.append(text)
    return "; ".join(parts)[:1024]
