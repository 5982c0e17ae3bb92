"""The `CircuitBreakersShared` condition: can the run's stage pods keep its circuit breakers?

The shell asks the API server (a SubjectAccessReview for the stage ServiceAccount, see
`controller/access.py`) and hands the verdict over in `RunSnapshot.breaker_access`; this module
turns it into a condition and an Event on each change. It exists because the stage SDK fails open
when its bookkeeping is refused: the run would otherwise look healthy while its breakers protect
nothing. The condition is informational, like the SDK's behaviour: the run keeps going.

- Only runs with a stage that names a circuit carry the condition.
- An unknown verdict (not checked this pass, or the check itself failed) keeps the last one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .conditions import DesiredCondition
from .events import EventLog
from .types import BreakerAccess

CONDITION = "CircuitBreakersShared"
ALLOWED = "Allowed"
FORBIDDEN = "Forbidden"


def _old_condition(old_conditions: Any) -> Mapping[str, Any] | None:
    for item in old_conditions if isinstance(old_conditions, list) else ():
        if isinstance(item, Mapping) and item.get("type") == CONDITION:
            return item
    return None


def access_condition(
    uses_circuits: bool,
    verdict: BreakerAccess | None,
    old_conditions: Any,
    log: EventLog,
) -> list[DesiredCondition]:
    """The condition to keep (zero or one), recording an Event when its status changes."""
    if not uses_circuits:
        return []
    old = _old_condition(old_conditions)
    if verdict is None:
        if old is None or old.get("status") not in ("True", "False"):
            return []
        return [
            DesiredCondition(
                CONDITION, old["status"], str(old.get("reason", "")), str(old.get("message", ""))
            )
        ]
    was = old.get("status") if old is not None else None
    if verdict.allowed:
        if was == "False":
            log.run("Normal", "CircuitBreakersShared", verdict.message)
        return [DesiredCondition(CONDITION, "True", ALLOWED, verdict.message)]
    if was != "False":
        log.run("Warning", "CircuitBreakersNotShared", verdict.message)
    return [DesiredCondition(CONDITION, "False", FORBIDDEN, verdict.message)]
