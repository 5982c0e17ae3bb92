"""Shared circuit breakers kept on the run's `extraction.dev/circuit-breakers` annotation.

For the operator (read-only planning)::

    document, problem = parse_document(annotations.get(ANNOTATION_BREAKERS))
    state, retry_at = circuit_state(document, "llm", config, now=time.time())
    status_circuits = circuit_summaries(document)
    for change in detect_transitions(previous_document, document): emit an Event (change.reason)

Stage code uses `extraction_operator.stage` instead, which builds a `SharedBreaker` from the env.
"""

from __future__ import annotations

from extraction_operator.api.models import CircuitBreakerConfig

from .api import (
    AccessDenied,
    ApiUnavailable,
    BookkeepingError,
    RunApi,
    RunSnapshot,
    WriteConflict,
)
from .document import (
    BreakerDocument,
    CircuitRecord,
    ProbeLease,
    State,
    format_timestamp,
    parse_document,
    parse_timestamp,
    render_document,
)
from .machine import CircuitView, Effect, Ticket, Verdict, view
from .memory import InMemoryRunApi
from .report import Transition, circuit_summaries, detect_transitions, summarize
from .runtime import CircuitOpen, SharedBreaker
from .store import BreakerStore

__all__ = [
    "AccessDenied",
    "ApiUnavailable",
    "BookkeepingError",
    "BreakerDocument",
    "BreakerStore",
    "CircuitOpen",
    "CircuitRecord",
    "CircuitView",
    "Effect",
    "InMemoryRunApi",
    "ProbeLease",
    "RunApi",
    "RunSnapshot",
    "SharedBreaker",
    "State",
    "Ticket",
    "Transition",
    "Verdict",
    "WriteConflict",
    "circuit_state",
    "circuit_summaries",
    "circuit_view",
    "detect_transitions",
    "format_timestamp",
    "parse_document",
    "parse_timestamp",
    "render_document",
    "summarize",
]


def circuit_view(
    document: BreakerDocument, name: str, config: CircuitBreakerConfig, now: float
) -> CircuitView:
    """The effective state of circuit `name` at `now` (see `machine.view`)."""
    return view(document.circuit(name), config, now)


def circuit_state(
    document: BreakerDocument, name: str, config: CircuitBreakerConfig, now: float
) -> tuple[State, float | None]:
    """(effective state, retry_at) for planning.

    `open` with `retry_at` = openedAt + recoveryTimeoutSeconds before the recovery time; `half-open`
    with retry_at None once a probe may start (launch one pod so it can probe); `half-open` with
    retry_at = the lease expiry while another caller holds the probe; `closed` with None.
    """
    current = circuit_view(document, name, config, now)
    return current.state, current.retry_at
