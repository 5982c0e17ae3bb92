"""Named points where the operator can be made to die, for fault-injection tests.

A crash at the worst moments (a Job created but its status not written; a Job finished but the
status not updated) must cost nothing. Tests prove it by arming a point through the environment:

    EXTRACTION_OPERATOR_CRASH_AT=after-job-create        # die at the first pass through it
    EXTRACTION_OPERATOR_CRASH_AT=before-status-write:3   # die at the third pass

The process exits at once with status 137, like SIGKILL: no cleanup handler, no flush, nothing
kopf or Python would do on a graceful stop. Unset (always, in production), every call is a no-op.
"""

from __future__ import annotations

import logging
import os
from typing import Final

logger = logging.getLogger(__name__)

ENV: Final = "EXTRACTION_OPERATOR_CRASH_AT"
POINTS: Final = frozenset({"after-job-create", "before-status-write", "after-status-write"})


def _parse(raw: str) -> dict[str, int]:
    armed: dict[str, int] = {}
    for item in raw.split(","):
        name, _, count = item.strip().partition(":")
        if name not in POINTS:
            logger.error("Ignoring unknown crash point %r in %s", name, ENV)
            continue
        armed[name] = int(count) if count.isdigit() and int(count) > 0 else 1
    return armed


_armed = _parse(os.environ.get(ENV, "")) if os.environ.get(ENV) else {}


def crash_point(name: str) -> None:
    """Exit the process abruptly if `name` is armed and its countdown reaches zero."""
    if name not in _armed:
        return
    _armed[name] -= 1
    if _armed[name] <= 0:
        logger.critical("Crash point %s reached: exiting abruptly (fault injection)", name)
        os._exit(137)
