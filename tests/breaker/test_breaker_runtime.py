"""SharedBreaker: admission, outcomes, API budget, probe exclusivity, bookkeeping failures."""

from __future__ import annotations

import json
import threading

import pytest

from extraction_operator.api.models import CircuitBreakerConfig
from extraction_operator.breaker.configs import ConfigResolver, parse_env_configs
from extraction_operator.breaker.machine import Effect, Ticket
from extraction_operator.breaker.memory import InMemoryRunApi
from extraction_operator.breaker.runtime import CircuitOpen, SharedBreaker
from extraction_operator.breaker.store import BreakerStore
from extraction_operator.breaker.testing import FlakyApi, ManualClock

CONFIG = CircuitBreakerConfig(
    failure_threshold=3, recovery_timeout_seconds=10, success_threshold=1, probe_timeout_seconds=5
)


def make_breaker(
    api: InMemoryRunApi | FlakyApi,
    clock: ManualClock | None = None,
    holder: str = "me",
    config: CircuitBreakerConfig = CONFIG,
    max_attempts: int = 10,
) -> SharedBreaker:
    now = clock if clock is not None else ManualClock()
    store = BreakerStore(api, max_attempts=max_attempts, sleep=lambda _: None, clock=now)
    return SharedBreaker(store, ConfigResolver({"llm": config}), holder=holder, clock=now)


def stored(api: InMemoryRunApi) -> dict[str, object]:
    circuit: dict[str, object] = json.loads(api.annotation or "")["circuits"]["llm"]
    return circuit


def open_circuit(breaker: SharedBreaker) -> None:
    for _ in range(CONFIG.failure_threshold):
        breaker.fail(breaker.begin("llm"), "TimeoutError")


def test_healthy_traffic_costs_one_read_per_second_and_no_writes(
    memory_api: InMemoryRunApi, clock: ManualClock
) -> None:
    breaker = make_breaker(memory_api, clock)
    for _ in range(500):  # 50 calls a second for 10 seconds
        assert breaker.succeed(breaker.begin("llm")) is Effect.UNCHANGED
        clock.advance(0.02)
    assert memory_api.writes == 0
    assert memory_api.reads <= 11


def test_failures_open_the_circuit_then_calls_fail_fast_without_api_calls(
    memory_api: InMemoryRunApi, clock: ManualClock
) -> None:
    breaker = make_breaker(memory_api, clock)
    open_circuit(breaker)
    assert stored(memory_api)["state"] == "open"
    assert stored(memory_api)["lastError"] == "TimeoutError"
    writes = memory_api.writes
    with pytest.raises(CircuitOpen) as raised:
        breaker.begin("llm")
    assert raised.value.retry_at == pytest.approx(clock.now + 10)
    assert raised.value.last_error == "TimeoutError"
    assert "llm" in str(raised.value)
    assert memory_api.writes == writes
    assert breaker.stats.fast_failed == 1


def test_success_after_failures_is_written_as_a_reset(
    memory_api: InMemoryRunApi, clock: ManualClock
) -> None:
    breaker = make_breaker(memory_api, clock)
    breaker.fail(breaker.begin("llm"))
    assert breaker.succeed(breaker.begin("llm")) is Effect.APPLIED
    assert stored(memory_api)["failures"] == 0


def test_exactly_one_of_many_processes_gets_the_probe(
    memory_api: InMemoryRunApi, clock: ManualClock
) -> None:
    opener = make_breaker(memory_api, clock)
    open_circuit(opener)
    clock.advance(10)
    breakers = [make_breaker(memory_api, clock, holder=f"pod-{i}") for i in range(12)]
    barrier = threading.Barrier(len(breakers))
    outcomes: list[str] = []

    def try_probe(breaker: SharedBreaker) -> None:
        barrier.wait()
        try:
            ticket = breaker.begin("llm")
        except CircuitOpen:
            outcomes.append("denied")
        else:
            outcomes.append("probe" if ticket.is_probe else "allowed")

    threads = [threading.Thread(target=try_probe, args=(b,)) for b in breakers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["denied"] * 11 + ["probe"]
    assert stored(memory_api)["state"] == "half-open"


def test_dead_prober_lease_expires_and_another_takes_over(
    memory_api: InMemoryRunApi, clock: ManualClock
) -> None:
    a = make_breaker(memory_api, clock, holder="a")
    b = make_breaker(memory_api, clock, holder="b")
    open_circuit(a)
    clock.advance(10)
    dead = a.begin("llm")
    assert dead.is_probe
    with pytest.raises(CircuitOpen):
        b.begin("llm")
    clock.advance(5)
    takeover = b.begin("llm")
    assert takeover.is_probe
    assert a.succeed(dead) is Effect.STALE  # the dead prober wakes up too late
    assert b.succeed(takeover) is Effect.APPLIED
    assert stored(memory_api)["state"] == "closed"


def test_probe_failure_reopens(memory_api: InMemoryRunApi, clock: ManualClock) -> None:
    breaker = make_breaker(memory_api, clock)
    open_circuit(breaker)
    clock.advance(10)
    probe = breaker.begin("llm")
    assert breaker.fail(probe, "still down") is Effect.APPLIED
    assert stored(memory_api)["state"] == "open"
    assert stored(memory_api)["opens"] == 2


def test_released_probe_lets_the_next_caller_probe(
    memory_api: InMemoryRunApi, clock: ManualClock
) -> None:
    a, b = make_breaker(memory_api, clock, "a"), make_breaker(memory_api, clock, "b")
    open_circuit(a)
    clock.advance(10)
    probe = a.begin("llm")
    assert a.release(probe) is Effect.APPLIED
    assert b.begin("llm").is_probe


def test_result_of_a_call_begun_before_opening_is_ignored(
    memory_api: InMemoryRunApi, clock: ManualClock
) -> None:
    slow = make_breaker(memory_api, clock, "slow")
    fast = make_breaker(memory_api, clock, "fast")
    before = slow.begin("llm")
    open_circuit(fast)
    snapshot = memory_api.annotation
    # With a cache that still says "closed, healthy" a success is a no-op without any I/O...
    assert slow.succeed(before) in (Effect.STALE, Effect.UNCHANGED)
    # ... a failure is checked against the fresh document and ignored.
    assert slow.fail(before, "late") is Effect.STALE
    clock.advance(1)
    slow.store.document()  # once the cache is fresh, a success is recognised as stale too
    assert slow.succeed(before) is Effect.STALE
    assert memory_api.annotation == snapshot
    assert stored(memory_api)["state"] == "open"


def test_unreachable_api_never_fails_the_call(flaky_api: FlakyApi, clock: ManualClock) -> None:
    breaker = make_breaker(flaky_api, clock, max_attempts=3)
    flaky_api.fail_reads = 10_000
    flaky_api.fail_writes = 10_000
    ticket = breaker.begin("llm")
    assert ticket == Ticket("llm", 0)
    assert breaker.fail(ticket, "x") is Effect.UNCHANGED
    assert breaker.stats.bookkeeping_failures == 1


def test_conflict_storm_when_claiming_proceeds_as_closed(
    flaky_api: FlakyApi, clock: ManualClock
) -> None:
    breaker = make_breaker(flaky_api, clock, max_attempts=4)
    open_circuit(breaker)
    clock.advance(10)
    flaky_api.always_conflict = True
    ticket = breaker.begin("llm")  # would claim the probe; the claim cannot be written
    assert not ticket.is_probe
    assert breaker.stats.bookkeeping_failures == 1
    assert breaker.store.stats.conflicts_retried == 3


def test_config_falls_back_to_the_run_spec_then_defaults() -> None:
    api = InMemoryRunApi(
        circuit_configs={"llm": {"failureThreshold": 2}, "bad": {"failureThreshold": 0}}
    )
    store = BreakerStore(api)
    breaker = SharedBreaker(store, ConfigResolver({}), holder="x")
    breaker.begin("llm")  # the first read brings the spec along
    assert breaker.config("llm").failure_threshold == 2
    assert breaker.config("bad") == CircuitBreakerConfig()
    assert breaker.config("other") == CircuitBreakerConfig()


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("{oops", "EXTRACTION_CIRCUITS is not valid JSON"),
        ("[1]", "must be a JSON object"),
        ('{"llm": {"failureThreshold": -1}}', "failureThreshold"),
        ('{"llm": {"nope": 1}}', "nope"),
    ],
)
def test_bad_env_configs_are_reported_with_the_field(raw: str, problem: str) -> None:
    configs, problems = parse_env_configs(raw)
    assert configs == {}
    assert any(problem in item for item in problems)


def test_env_configs_by_alias() -> None:
    configs, problems = parse_env_configs('{"llm":{"failureThreshold":7,"probeTimeoutSeconds":2}}')
    assert problems == []
    assert configs["llm"].failure_threshold == 7
    assert configs["llm"].probe_timeout_seconds == 2


def test_spec_config_is_used_once_the_run_has_been_read() -> None:
    api = InMemoryRunApi(circuit_configs={"llm": {"failureThreshold": 2}})
    breaker = SharedBreaker(BreakerStore(api), ConfigResolver({}), holder="x")
    assert breaker.config("llm").failure_threshold == 5  # nothing read yet: defaults for now
    breaker.begin("llm")
    assert breaker.config("llm").failure_threshold == 2
