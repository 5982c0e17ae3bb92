"""kstatus conditions (`Ready`, `Reconciling`, `Stalled`) with stable transition times.

`lastTransitionTime` changes only when a condition's *status* changes, as Kubernetes conventions
require; reason and message may change freely. Every condition carries the generation it
describes, so clients can tell a fresh verdict from one about an older spec."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from .messages import truncate_utf8
from .timefmt import format_time

CONDITION_TYPES = ("Ready", "Reconciling", "Stalled")
CONDITION_MESSAGE_BYTES = 1024


@dataclass(frozen=True)
class DesiredCondition:
    type: str
    status: Literal["True", "False"]
    reason: str
    message: str


def _previous(old: Any) -> dict[str, Mapping[str, Any]]:
    if not isinstance(old, list):
        return {}
    found: dict[str, Mapping[str, Any]] = {}
    for item in old:
        if isinstance(item, Mapping) and isinstance(item.get("type"), str):
            found.setdefault(item["type"], item)
    return found


def build_conditions(
    old: Any, desired: Sequence[DesiredCondition], generation: int, now: datetime
) -> list[dict[str, Any]]:
    """The new condition list; `old` is whatever status.conditions held (any shape)."""
    previous = _previous(old)
    out: list[dict[str, Any]] = []
    for condition in desired:
        before = previous.get(condition.type, {})
        transition = before.get("lastTransitionTime")
        if before.get("status") != condition.status or not isinstance(transition, str):
            transition = format_time(now)
        out.append(
            {
                "type": condition.type,
                "status": condition.status,
                "reason": condition.reason,
                "message": truncate_utf8(condition.message, CONDITION_MESSAGE_BYTES),
                "lastTransitionTime": transition,
                "observedGeneration": generation,
            }
        )
    return out
