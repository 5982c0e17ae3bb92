"""Compare-and-swap storage against an in-memory API with real resourceVersion semantics."""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import replace

import pytest

from extraction_operator.breaker.api import AccessDenied, BookkeepingError
from extraction_operator.breaker.document import (
    BreakerDocument,
    CircuitRecord,
    render_document,
)
from extraction_operator.breaker.memory import InMemoryRunApi
from extraction_operator.breaker.store import BreakerStore, Mutation
from extraction_operator.breaker.testing import FlakyApi, ManualClock


def no_sleep(seconds: float) -> None:
    return None


def bump(document: BreakerDocument) -> Mutation[int]:
    record = document.circuit("llm")
    return Mutation(
        document.with_circuit("llm", replace(record, failures=record.failures + 1)),
        record.failures + 1,
    )


def failures_in(api: InMemoryRunApi) -> int:
    return int(json.loads(api.annotation or "{}")["circuits"]["llm"]["failures"])


def test_update_writes_with_the_read_resource_version(memory_api: InMemoryRunApi) -> None:
    store = BreakerStore(memory_api, sleep=no_sleep)
    assert store.update(bump) == 1
    assert store.update(bump) == 2
    assert failures_in(memory_api) == 2
    assert memory_api.writes == 2
    assert store.stats.conflicts_retried == 0
    assert store.document().circuit("llm").failures == 2


def test_conflict_rereads_and_reapplies_on_the_fresh_document(flaky_api: FlakyApi) -> None:
    other = BreakerStore(flaky_api.inner, sleep=no_sleep)
    store = BreakerStore(flaky_api, sleep=no_sleep)
    store.update(bump)  # primes the cache
    competing = {"left": 3}

    def competitor_writes_first() -> None:
        if competing["left"]:
            competing["left"] -= 1
            other.update(bump)

    flaky_api.before_write = competitor_writes_first
    assert store.update(bump) == 5
    assert store.stats.conflicts_retried == 3
    assert failures_in(flaky_api.inner) == 5


def test_conflict_storm_beyond_budget_raises_bookkeeping_error(flaky_api: FlakyApi) -> None:
    flaky_api.always_conflict = True
    sleeps: list[float] = []
    store = BreakerStore(flaky_api, max_attempts=8, sleep=sleeps.append)
    with pytest.raises(BookkeepingError):
        store.update(bump)
    assert store.stats.conflicts_retried == 7
    assert store.stats.budget_exhausted == 1
    assert len(sleeps) == 7
    assert all(0 <= pause <= 1.0 for pause in sleeps)


def test_unavailable_api_is_retried_within_budget(flaky_api: FlakyApi) -> None:
    flaky_api.fail_reads = 1
    flaky_api.fail_writes = 1
    store = BreakerStore(flaky_api, unavailable_attempts=3, sleep=no_sleep)
    assert store.update(bump) == 1
    assert store.stats.unavailable_retried == 2


def test_unreachable_api_gets_a_small_budget_then_a_pause(
    flaky_api: FlakyApi, clock: ManualClock
) -> None:
    flaky_api.fail_reads = 1000
    store = BreakerStore(
        flaky_api, unavailable_attempts=3, unreachable_pause=5, clock=clock, sleep=no_sleep
    )
    with pytest.raises(BookkeepingError):
        store.update(bump)
    assert flaky_api.reads == 3
    clock.advance(4)
    with pytest.raises(BookkeepingError, match="unreachable moments ago"):
        store.update(bump)
    assert flaky_api.reads == 3  # no traffic during the pause
    clock.advance(1)
    flaky_api.fail_reads = 0
    assert store.update(bump) == 1


def test_a_refusal_is_not_retried_and_pauses_as_a_refusal(
    flaky_api: FlakyApi, clock: ManualClock
) -> None:
    """403 is not an outage: no retry budget spent on it, and the pause that follows keeps
    saying "refused", never "unreachable"."""
    flaky_api.deny = True
    store = BreakerStore(flaky_api, denied_pause=30, clock=clock, sleep=no_sleep)
    with pytest.raises(AccessDenied) as first:
        store.update(bump)
    assert flaky_api.reads == 1
    assert first.value.identity == "system:serviceaccount:test:default"
    clock.advance(29)
    with pytest.raises(AccessDenied, match="refused moments ago"):
        store.update(bump)
    assert flaky_api.reads == 1  # no traffic during the pause
    clock.advance(1)
    flaky_api.deny = False  # someone fixed the RBAC
    assert store.update(bump) == 1


def test_mutation_that_changes_nothing_does_not_write(memory_api: InMemoryRunApi) -> None:
    store = BreakerStore(memory_api, sleep=no_sleep)
    assert store.update(lambda doc: Mutation(None, "kept")) == "kept"
    assert store.update(lambda doc: Mutation(doc, "same")) == "same"
    assert memory_api.writes == 0


def test_cache_reads_at_most_once_per_max_age(
    memory_api: InMemoryRunApi, clock: ManualClock
) -> None:
    store = BreakerStore(memory_api, cache_max_age=1.0, clock=clock, sleep=no_sleep)
    for _ in range(500):
        store.document()
        clock.advance(0.01)
    assert memory_api.reads == 5


def test_failed_refresh_keeps_last_view_and_waits_before_retrying(
    flaky_api: FlakyApi, clock: ManualClock
) -> None:
    store = BreakerStore(flaky_api, clock=clock, sleep=no_sleep)
    store.update(bump)
    clock.advance(2)
    flaky_api.fail_reads = 100
    for _ in range(450):  # 4.5 seconds of calls
        assert store.document().circuit("llm").failures == 1
        clock.advance(0.01)
    assert flaky_api.fail_reads == 100 - 1
    clock.advance(0.6)
    store.document()
    assert flaky_api.fail_reads == 100 - 2


def test_malformed_annotation_is_reported_once_and_rewritten(
    memory_api: InMemoryRunApi, caplog: pytest.LogCaptureFixture
) -> None:
    memory_api.set_annotation('{"v": 9}')
    store = BreakerStore(memory_api, cache_max_age=0, sleep=no_sleep)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            assert store.document().circuit("llm").state == "closed"
    assert caplog.text.count("unknown version") == 1
    store.update(bump)
    assert json.loads(memory_api.annotation or "")["v"] == 1


def test_concurrent_stores_lose_no_update(memory_api: InMemoryRunApi) -> None:
    """Eight "processes" (separate stores with their own caches) bump one counter 40 times each."""
    stores = [BreakerStore(memory_api, max_attempts=200, max_seconds=60) for _ in range(8)]
    barrier = threading.Barrier(len(stores))

    def work(store: BreakerStore) -> None:
        barrier.wait()
        for _ in range(40):
            store.update(bump)

    threads = [threading.Thread(target=work, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures_in(memory_api) == 8 * 40
    assert sum(store.stats.writes for store in stores) == 8 * 40


def test_rendered_document_is_what_is_stored(memory_api: InMemoryRunApi) -> None:
    store = BreakerStore(memory_api, sleep=no_sleep)
    document = BreakerDocument({"llm": CircuitRecord(failures=2)})
    store.update(lambda doc: Mutation(document, None))
    assert memory_api.annotation == render_document(document)


def test_a_degrading_circuit_is_read_more_often_than_a_healthy_one(
    memory_api: InMemoryRunApi, clock: ManualClock
) -> None:
    """Healthy: one GET per second. Once a closed circuit counts failures, the cache may be at
    most 0.1 s old, so pods stop admitting calls on a stale all-clear."""
    store = BreakerStore(memory_api, cache_max_age=1.0, clock=clock, sleep=no_sleep)
    for _ in range(100):  # one second of calls on a healthy circuit
        store.document()
        clock.advance(0.01)
    healthy_reads = memory_api.reads
    store.update(bump)  # another pod's failure, now in this pod's cache
    reads_before = memory_api.reads
    for _ in range(100):  # one second while degrading
        store.document()
        clock.advance(0.01)
    assert healthy_reads <= 2
    assert memory_api.reads - reads_before >= 9
