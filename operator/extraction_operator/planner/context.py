"""What settling one node needs beyond the node and its Jobs, shared by `accounting` and
`starting`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from extraction_operator.api.constants import DEFAULT_START_TIMEOUT_SECONDS

from .backoff import EffectivePolicy
from .events import EventLog
from .types import CircuitGate


@dataclass(frozen=True)
class NodeContext:
    run_uid: str
    policy: EffectivePolicy
    gates: Mapping[str, CircuitGate]
    now: datetime
    log: EventLog
    launched: frozenset[str] = frozenset()
    start_timeout: int = DEFAULT_START_TIMEOUT_SECONDS  # this stage's startTimeoutSeconds
    # Jobs to delete: attempts ended by the operator (a deadline), not by the Job controller.
    # Shared by every node of one plan.
    deletions: list[str] = field(default_factory=list)
