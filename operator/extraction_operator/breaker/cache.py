"""A per-process view of the run's breaker document that is at most `max_age` seconds old.

DESIGN.md section 4's API budget: one object takes ~100 writes/s, so the SDK must not GET the run
per provider call. Reads come from this cache; it is refreshed by a read at most once per `max_age`
(one second by default), and every read or write the store does anyway feeds it for free. A failed
refresh keeps the old view and is not retried for `failure_backoff` seconds, so a down or hanging
API server costs one request (and at most one request timeout) per few seconds per process, not one
per call. A refused read (401/403) waits `denied_backoff` instead, and is reported as refused with
its fix (`forbidden.report_denied`), not as a failure to reach the API. A read refused because the
run's status does not name this pod's Job yet (`NotEnrolled`, a race with the operator) is asked
again soon, for as long as the store is willing to wait for the operator (`enrolling`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from .api import AccessDenied, BookkeepingError, NotEnrolled, RunApi, RunSnapshot
from .document import EMPTY_DOCUMENT, BreakerDocument, parse_document
from .forbidden import report_denied

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CachedView:
    snapshot: RunSnapshot | None
    """None until the first successful read; the document is then all-closed."""
    document: BreakerDocument
    fetched_at: float


class SnapshotCache:
    def __init__(
        self,
        api: RunApi,
        *,
        max_age: float = 1.0,
        failure_backoff: float = 5.0,
        denied_backoff: float = 30.0,
        clock: Callable[[], float] = time.time,
        on_unreachable: Callable[[], None] = lambda: None,
        on_denied: Callable[[AccessDenied], None] = lambda error: None,
        enrolling: Callable[[NotEnrolled], bool] = lambda error: False,
        enrollment_backoff: float = 0.25,
    ) -> None:
        self._enrolling = enrolling
        self._enrollment_backoff = enrollment_backoff
        self._on_unreachable = on_unreachable
        self._on_denied = on_denied
        self._denied_backoff = denied_backoff
        self._api = api
        self._max_age = max_age
        self._failure_backoff = failure_backoff
        self._clock = clock
        self._lock = threading.Lock()
        self._view = CachedView(None, EMPTY_DOCUMENT, float("-inf"))
        self._not_before = float("-inf")
        self._last_raw: str | None = None
        self._last_document = EMPTY_DOCUMENT
        self.refreshes = 0
        self.problems: list[str] = []

    def current(self) -> CachedView:
        """The latest view, however old (never does I/O)."""
        with self._lock:
            return self._view

    def fresh(self, max_age: float | None = None) -> CachedView:
        """The view, refreshed by one read if it is older than `max_age` (default: the cache's)."""
        now = self._clock()
        limit = self._max_age if max_age is None else max_age
        with self._lock:
            view = self._view
            if now - view.fetched_at < limit or now < self._not_before:
                return view
            # Claim the refresh slot so concurrent callers keep using the old view meanwhile.
            self._view = CachedView(view.snapshot, view.document, now)
        try:
            snapshot = self._api.read()
        except NotEnrolled as exc:
            if not self._enrolling(exc):
                return self._refused(exc)
            with self._lock:
                # Ask again after the short backoff, not after the cache's usual max-age.
                self._not_before = self._clock() + self._enrollment_backoff
                self._view = replace(self._view, fetched_at=float("-inf"))
            return self.current()
        except AccessDenied as exc:
            return self._refused(exc)
        except BookkeepingError as exc:
            logger.warning(
                "circuit breakers: cannot read run %s (%s); using the last known state",
                self._api.description,
                exc,
            )
            with self._lock:
                # After a failed read, wait `failure_backoff` before the next one, whatever age
                # limit the next caller asks for.
                self._not_before = self._clock() + self._failure_backoff
            self._on_unreachable()
            return self.current()
        self.refreshes += 1
        return self.offer(snapshot)

    def _refused(self, error: AccessDenied) -> CachedView:
        report_denied(error)
        with self._lock:
            self._not_before = self._clock() + max(self._failure_backoff, self._denied_backoff)
        self._on_denied(error)
        return self.current()

    def offer(self, snapshot: RunSnapshot) -> CachedView:
        """Record a snapshot obtained by any read or write; returns the parsed view."""
        document = self._parse(snapshot.annotation)
        view = CachedView(snapshot, document, self._clock())
        with self._lock:
            self._view = view
        return view

    def _parse(self, raw: str | None) -> BreakerDocument:
        """Parse once per distinct annotation value, so a bad one is reported once, not per call."""
        with self._lock:
            if raw == self._last_raw and self._view.snapshot is not None:
                return self._last_document
        document, problem = parse_document(raw, now=self._clock())
        if problem is not None:
            self.problems.append(problem)
            logger.warning(
                "circuit-breaker annotation on run %s: %s (it is rewritten on the next write)",
                self._api.description,
                problem,
            )
        with self._lock:
            self._last_raw, self._last_document = raw, document
        return document
