"""Compare-and-swap updates of the breaker document on the run's annotation.

`update(mutate)` applies a pure function to the current document and writes the result with a
resourceVersion precondition. On a conflict it re-reads and re-applies, waiting a random,
exponentially growing time between tries (tenacity's full jitter), so 20 pods hitting one object do
not retry in lock-step. The first try uses the cached view: when it is current the write succeeds
without a read, and when it is stale the precondition fails and the retry reads fresh — correctness
never depends on the cache. The budget is bounded in tries and seconds; when it is spent the caller
gets `BookkeepingError` and carries on as if the circuit were closed.

Conflicts and an unreachable API get different budgets: a conflict means the API works and another
pod wrote first, so it is worth many quick retries; an unreachable API (5xx, network, timeouts) gets
a few, after which the store stops trying for `unreachable_pause` seconds, so a stage that records
many failures during an API outage is not slowed down by a full retry budget on every call. A
refusal (401/403, `AccessDenied`) is not retried at all and pauses the store for `denied_pause`
seconds: only a change of RBAC ends it, and the pause keeps re-raising the refusal itself, so the
caller reports it as refused, never as an unreachable API.

One refusal is different: `NotEnrolled`, the admission policy saying that the run's status does not
name this pod's Job yet. The operator writes that right after creating the Job, so a pod that
starts and fails its first provider call quickly can get there first. Losing that first write would
lose the very failures that should open the circuit, so the store waits for the operator, with
backoff, for up to `enrollment_wait` seconds from the first such answer this process got (an
operator that crashed between creating the Job and recording it needs a restart to catch up).
Only after that is it a refusal like any other.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)
from tenacity.stop import stop_base

from .api import AccessDenied, ApiUnavailable, BookkeepingError, NotEnrolled, RunApi, WriteConflict
from .cache import SnapshotCache
from .document import BreakerDocument, render_document

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Enough for 20 pods writing one run at once (measured on the local API server: a few attempts per
# success on average, a long tail); a 409 storm gives up after ~6 s of backoff in total.
DEFAULT_MAX_ATTEMPTS = 16
DEFAULT_UNAVAILABLE_ATTEMPTS = 3
DEFAULT_MAX_SECONDS = 15.0
# How long a pod waits for the operator to record its Job in the run's status (see above).
DEFAULT_ENROLLMENT_WAIT = 60.0
ENROLLMENT_BACKOFF = (0.05, 1.0)  # first and longest pause between tries while waiting


# How old the cached document may be while a circuit is degrading (see `document`).
DEGRADED_MAX_AGE = 0.1


class _stop_after_unavailable(stop_base):
    """Stop once `limit` tries have failed with ApiUnavailable (conflicts do not count)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seen = 0

    def __call__(self, retry_state: RetryCallState) -> bool:
        outcome = retry_state.outcome
        if outcome is not None and isinstance(outcome.exception(), ApiUnavailable):
            self.seen += 1
        return self.seen >= self.limit


@dataclass(frozen=True)
class Mutation(Generic[T]):
    """What `mutate` decided: the document to store (None: nothing to write) and a result."""

    document: BreakerDocument | None
    result: T


@dataclass
class StoreStats:
    writes: int = 0
    conflicts_retried: int = 0
    unavailable_retried: int = 0
    budget_exhausted: int = 0


class BreakerStore:
    def __init__(
        self,
        api: RunApi,
        *,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        unavailable_attempts: int = DEFAULT_UNAVAILABLE_ATTEMPTS,
        unreachable_pause: float = 5.0,
        denied_pause: float = 30.0,
        max_seconds: float = DEFAULT_MAX_SECONDS,
        cache_max_age: float = 1.0,
        backoff_multiplier: float = 0.02,
        backoff_max: float = 1.0,
        enrollment_wait: float = DEFAULT_ENROLLMENT_WAIT,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.api = api
        self._enrollment_wait = enrollment_wait
        self._enrollment_deadline: float | None = None  # set by the first NotEnrolled answer
        self._enrolled = False
        self.cache = SnapshotCache(
            api,
            max_age=cache_max_age,
            failure_backoff=unreachable_pause,
            denied_backoff=denied_pause,
            clock=clock,
            on_unreachable=self._pause_after_unreachable,
            on_denied=self._pause_after_denied,
            enrolling=self._still_enrolling,
        )
        self.stats = StoreStats()
        self._max_attempts = max_attempts
        self._unavailable_attempts = unavailable_attempts
        self._unreachable_pause = unreachable_pause
        self._unreachable_until = float("-inf")
        self._denied_pause = denied_pause
        self._denied: AccessDenied | None = None  # the refusal that paused the store, if any
        self._clock = clock
        self._max_seconds = max_seconds
        self._wait = wait_random_exponential(multiplier=backoff_multiplier, max=backoff_max)
        self._sleep = sleep
        # One update at a time per process: threads of one stage must not conflict with each other.
        self._lock = threading.Lock()

    def _pause_after_unreachable(self) -> None:
        """Skip bookkeeping for a while: the API just failed a read or a whole retry budget."""
        self._unreachable_until = self._clock() + self._unreachable_pause
        self._denied = None

    def _pause_after_denied(self, error: AccessDenied) -> None:
        """Skip bookkeeping for longer: the API refused it, and asking again cannot help soon."""
        self._unreachable_until = self._clock() + self._denied_pause
        self._denied = error

    def _still_enrolling(self, error: NotEnrolled) -> bool:
        """Whether to wait for the operator to record this pod's Job (see the module docstring):
        yes until `enrollment_wait` seconds after the first such answer, unless this process was
        already admitted once (then the run moved on without it, and waiting cannot help)."""
        if self._enrolled:
            return False
        now = self._clock()
        if self._enrollment_deadline is None:
            self._enrollment_deadline = now + self._enrollment_wait
            logger.info(
                "circuit breakers: run %s does not name this pod's Job yet; waiting up to %.0f s "
                "for the operator to record it (%s)",
                self.api.description,
                self._enrollment_wait,
                error,
            )
        return now < self._enrollment_deadline

    def _wait_for_enrollment(self, error: NotEnrolled, pause: float) -> float:
        """Sleep before the next try; return the next pause. Raises the refusal once spent."""
        if not self._still_enrolling(error):
            raise error
        assert self._enrollment_deadline is not None
        self._sleep(max(0.0, min(pause, self._enrollment_deadline - self._clock())))
        return min(pause * 2, ENROLLMENT_BACKOFF[1])

    def _paused_error(self) -> BookkeepingError:
        denied = self._denied
        if denied is not None:
            return AccessDenied(
                f"{denied} (refused moments ago; not asking again yet)",
                status=denied.status,
                run=denied.run,
                identity=denied.identity,
            )
        return ApiUnavailable(
            f"{self.api.description}: the API was unreachable moments ago; not retrying yet"
        )

    def document(self) -> BreakerDocument:
        """The cached document, refreshed by a read at most once per cache max-age.

        While a closed circuit already counts failures (the provider is degrading) the cache may
        be at most DEGRADED_MAX_AGE old: a pod admitting calls from a one-second-old copy is how
        a handful of extra calls hit a provider that another pod has just seen fail. A healthy
        document keeps the cheap one-second cache, and an open circuit is decided without I/O."""
        cached = self.cache.current().document
        degrading = any(
            record.state == "closed" and record.failures > 0 for record in cached.circuits.values()
        )
        return self.cache.fresh(DEGRADED_MAX_AGE if degrading else None).document

    def update(self, mutate: Callable[[BreakerDocument], Mutation[T]]) -> T:
        """Apply `mutate` to the current document and store the result atomically.

        Raises BookkeepingError when the API cannot be reached or conflicts persist beyond the
        budget; `mutate` must be pure because it may run once per try.
        """
        attempts = {"n": 0}

        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            if isinstance(error, WriteConflict):
                self.stats.conflicts_retried += 1
            else:
                self.stats.unavailable_retried += 1

        def one_try() -> T:
            attempts["n"] += 1
            view = self.cache.current() if attempts["n"] == 1 else self.cache.offer(self.api.read())
            if view.snapshot is None:  # never read yet
                view = self.cache.offer(self.api.read())
            assert view.snapshot is not None
            mutation = mutate(view.document)
            if mutation.document is None or mutation.document == view.document:
                return mutation.result
            rendered = render_document(mutation.document)
            if rendered == view.snapshot.annotation:
                return mutation.result
            written = self.api.write(view.snapshot.resource_version, rendered)
            self.stats.writes += 1
            self.cache.offer(written)
            return mutation.result

        retrying = Retrying(
            stop=stop_after_attempt(self._max_attempts)
            | stop_after_delay(self._max_seconds)
            | _stop_after_unavailable(self._unavailable_attempts),
            wait=self._wait,
            retry=retry_if_exception_type((WriteConflict, ApiUnavailable)),
            before_sleep=before_sleep,
            sleep=self._sleep,
            reraise=True,
        )
        with self._lock:
            if self._clock() < self._unreachable_until:
                raise self._paused_error()
            try:
                pause = ENROLLMENT_BACKOFF[0]
                while True:
                    try:
                        result = retrying(one_try)
                    except NotEnrolled as error:
                        pause = self._wait_for_enrollment(error, pause)
                        continue
                    self._enrolled = True
                    return result
            except AccessDenied as error:
                self._pause_after_denied(error)
                raise
            except ApiUnavailable:
                self.stats.budget_exhausted += 1
                self._pause_after_unreachable()
                raise
            except BookkeepingError:
                self.stats.budget_exhausted += 1
                raise
