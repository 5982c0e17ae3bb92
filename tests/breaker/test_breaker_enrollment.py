"""A pod may start before the operator records its Job in the run's status; until then the
admission policy refuses its breaker bookkeeping (`NotEnrolled`). The store waits for the operator
rather than lose the first writes, the very failures that should open the circuit."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest

from extraction_operator.breaker.api import AccessDenied, NotEnrolled
from extraction_operator.breaker.document import BreakerDocument
from extraction_operator.breaker.forbidden import explain
from extraction_operator.breaker.store import BreakerStore, Mutation
from extraction_operator.breaker.testing import FlakyApi, ManualClock


def bump(document: BreakerDocument) -> Mutation[int]:
    record = document.circuit("llm")
    failures = record.failures + 1
    return Mutation(document.with_circuit("llm", replace(record, failures=failures)), failures)


def test_the_first_write_waits_for_the_operator_and_lands(
    flaky_api: FlakyApi, clock: ManualClock
) -> None:
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.advance(seconds)

    flaky_api.not_enrolled = 4  # the operator records the Job a moment after the pod asked
    store = BreakerStore(flaky_api, clock=clock, sleep=sleep, enrollment_wait=60)
    assert store.update(bump) == 1
    assert store.document().circuit("llm").failures == 1
    assert sleeps == [0.05, 0.1, 0.2, 0.4]
    assert flaky_api.inner.writes == 1


def test_a_pod_never_recorded_is_refused_after_the_wait_and_says_why(
    flaky_api: FlakyApi, clock: ManualClock
) -> None:
    def sleep(seconds: float) -> None:
        clock.advance(seconds)

    flaky_api.not_enrolled = 10**6
    store = BreakerStore(flaky_api, clock=clock, sleep=sleep, enrollment_wait=5)
    start = clock.now
    with pytest.raises(NotEnrolled) as refused:
        store.update(bump)
    assert 5 <= clock.now - start <= 6
    assert isinstance(refused.value, AccessDenied)
    text = explain(refused.value)
    assert "does not name this pod's Job" in text
    assert "operator is running" in text
    # The wait is spent once per process: the next update is refused at once (and paused).
    before = clock.now
    with pytest.raises(AccessDenied):
        store.update(bump)
    assert clock.now == before
    assert flaky_api.inner.writes == 0


def test_reads_while_waiting_for_the_operator_are_retried_soon_and_read_closed(
    flaky_api: FlakyApi, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    flaky_api.not_enrolled = 1
    store = BreakerStore(flaky_api, clock=clock, enrollment_wait=60)
    with caplog.at_level(logging.INFO):
        assert store.document().circuits == {}
    assert "waiting up to 60 s for the operator" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    reads = flaky_api.reads
    clock.advance(0.3)  # sooner than a refusal or an outage would allow
    store.document()
    assert flaky_api.reads == reads + 1


def test_without_a_wait_not_enrolled_is_a_refusal_at_once(
    flaky_api: FlakyApi, clock: ManualClock
) -> None:
    flaky_api.not_enrolled = 1
    store = BreakerStore(flaky_api, clock=clock, sleep=lambda s: None, enrollment_wait=0)
    with pytest.raises(NotEnrolled):
        store.update(bump)
