"""Follow runs until they finish or time runs out, feeding each snapshot to the view.

Kept apart from the cluster so it can be tested with a scripted backend: the reader is any callable
returning the current run objects, and the clock and sleep are injectable. A failed read (the API
hiccups, a watch reconnects) is reported once and retried on the next poll; it never ends the demo.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from .status import is_finished

JSON = Mapping[str, Any]
POLL_SECONDS = 0.25


class View(Protocol):
    def update(self, runs: Sequence[JSON], now: datetime) -> None: ...

    def note(self, line: str) -> None: ...


# Run key (`namespace/name`) -> the run object, or None when it does not exist.
RunReader = Callable[[], Mapping[str, JSON | None]]


@dataclass
class Outcome:
    """The last snapshot of every run, which ones vanished, and why following stopped."""

    runs: list[JSON] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    timed_out: bool = False


def utc_now() -> datetime:
    return datetime.now(UTC)


def follow_runs(
    read: RunReader,
    view: View | None,
    timeout: float,
    *,
    interval: float = POLL_SECONDS,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    now: Callable[[], datetime] = utc_now,
) -> Outcome:
    """Poll `read` until every run is finished (or gone), or `timeout` seconds pass."""
    deadline = clock() + timeout
    outcome = Outcome()
    read_failing = False
    while True:
        try:
            snapshot = read()
        except Exception as error:  # an API hiccup: keep the last snapshot and try again
            if not read_failing and view is not None:
                view.note(f"could not read the runs ({type(error).__name__}: {error}); retrying")
            read_failing = True
        else:
            read_failing = False
            outcome.runs = [run for run in snapshot.values() if run is not None]
            outcome.missing = [key for key, run in snapshot.items() if run is None]
            if view is not None:
                view.update(outcome.runs, now())
            if all(is_finished(run) for run in outcome.runs):
                return outcome
        if clock() >= deadline:
            outcome.timed_out = True
            return outcome
        sleep(interval)
