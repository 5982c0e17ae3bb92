"""Test doubles for code that uses the breaker: a manual wall clock and an API that misbehaves.

Kept in the package (not under tests/) so the operator's tests can drive breaker state the same way.
"""

from __future__ import annotations

from collections.abc import Callable

from .api import (
    NOT_ENROLLED_MARKER,
    AccessDenied,
    ApiUnavailable,
    NotEnrolled,
    RunSnapshot,
    WriteConflict,
)
from .memory import InMemoryRunApi


class ManualClock:
    """A wall clock that moves only when told to."""

    def __init__(self, now: float = 1_790_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FlakyApi:
    """Wraps an InMemoryRunApi. `before_write` runs just before each write (e.g. a competing
    writer); `fail_reads` / `fail_writes` make the next N calls raise ApiUnavailable;
    `always_conflict` answers every write with a conflict (a 409 storm); `deny` answers every
    call with a 403 for the `default` ServiceAccount (the stage Role is missing); `not_enrolled`
    makes the next N calls (reads or writes) answer like the admission policy does while the
    run's status does not name this pod's Job yet."""

    def __init__(self, inner: InMemoryRunApi) -> None:
        self.inner = inner
        self.before_write: Callable[[], None] = lambda: None
        self.fail_reads = 0
        self.fail_writes = 0
        self.always_conflict = False
        self.deny = False
        self.not_enrolled = 0
        self.reads = 0

    @property
    def description(self) -> str:
        return "test/flaky"

    def _denied(self, verb: str) -> AccessDenied:
        user = "system:serviceaccount:test:default"
        return AccessDenied(
            f'test/flaky: HTTP 403: User "{user}" cannot {verb} resource "extractionruns"',
            status=403,
            run="test/flaky",
            identity=user,
        )

    def _enrollment(self) -> None:
        if self.not_enrolled:
            self.not_enrolled -= 1
            raise NotEnrolled(
                f"test/flaky: HTTP 403: pod p-1-abcde {NOT_ENROLLED_MARKER} test/flaky (yet)",
                run="test/flaky",
            )

    def read(self) -> RunSnapshot:
        self.reads += 1
        self._enrollment()
        if self.deny:
            raise self._denied("get")
        if self.fail_reads:
            self.fail_reads -= 1
            raise ApiUnavailable("HTTP 500")
        return self.inner.read()

    def write(self, resource_version: str, annotation: str) -> RunSnapshot:
        self._enrollment()
        if self.deny:
            raise self._denied("patch")
        if self.fail_writes:
            self.fail_writes -= 1
            raise ApiUnavailable("HTTP 503")
        if self.always_conflict:
            raise WriteConflict("HTTP 409")
        self.before_write()
        return self.inner.write(resource_version, annotation)
