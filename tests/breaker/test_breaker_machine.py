"""The pure state machine: each transition, stale results, leases, random interleavings."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extraction_operator.api.models import CircuitBreakerConfig
from extraction_operator.breaker.document import CLOSED, CircuitRecord, ProbeLease
from extraction_operator.breaker.machine import (
    Effect,
    Ticket,
    Verdict,
    admit,
    invariant_violations,
    record_failure,
    record_success,
    release_probe,
    view,
)

CONFIG = CircuitBreakerConfig(
    failure_threshold=3, recovery_timeout_seconds=10, success_threshold=2, probe_timeout_seconds=5
)
T0 = 1_000_000.0


def opened(at: float = T0, generation: int = 1) -> CircuitRecord:
    return CircuitRecord(state="open", failures=3, opened_at=at, generation=generation, opens=1)


def fail_n(record: CircuitRecord, n: int, now: float = T0) -> CircuitRecord:
    for _ in range(n):
        record = record_failure(
            record, CONFIG, now, Ticket("llm", record.generation), "boom"
        ).record
    return record


def test_closed_admits_without_change() -> None:
    admission = admit("llm", CLOSED, CONFIG, T0, holder="a", nonce="n1")
    assert admission.verdict is Verdict.ALLOW
    assert admission.record is CLOSED
    assert admission.ticket == Ticket("llm", 0)


def test_opens_after_threshold_consecutive_failures() -> None:
    two = fail_n(CLOSED, 2)
    assert (two.state, two.failures, two.generation) == ("closed", 2, 0)
    three = fail_n(two, 1, now=T0 + 1)
    assert three.state == "open"
    assert three.opened_at == T0 + 1
    assert three.generation == 1
    assert three.opens == 1
    assert three.last_error == "boom"


def test_success_after_failures_resets_and_healthy_success_changes_nothing() -> None:
    two = fail_n(CLOSED, 2)
    reset = record_success(two, CONFIG, T0, Ticket("llm", 0))
    assert reset.effect is Effect.APPLIED
    assert reset.record.failures == 0
    healthy = record_success(reset.record, CONFIG, T0, Ticket("llm", 0))
    assert healthy.effect is Effect.UNCHANGED
    assert healthy.record is reset.record


def test_open_denies_until_recovery_time() -> None:
    admission = admit("llm", opened(), CONFIG, T0 + 9.9, holder="a", nonce="n1")
    assert admission.verdict is Verdict.DENY
    assert admission.retry_at == T0 + 10
    assert admission.ticket is None


def test_first_caller_after_recovery_claims_probe_and_others_are_denied() -> None:
    first = admit("llm", opened(), CONFIG, T0 + 10, holder="a", nonce="n1")
    assert first.verdict is Verdict.PROBE
    assert first.record.state == "half-open"
    assert first.record.generation == 2
    assert first.record.probe == ProbeLease("a", "n1", T0 + 15)
    assert first.ticket == Ticket("llm", 2, "n1")
    second = admit("llm", first.record, CONFIG, T0 + 11, holder="b", nonce="n2")
    assert second.verdict is Verdict.DENY
    assert second.retry_at == T0 + 15


def test_expired_lease_is_taken_over_and_old_holder_is_ignored() -> None:
    claimed = admit("llm", opened(), CONFIG, T0 + 10, holder="a", nonce="n1").record
    takeover = admit("llm", claimed, CONFIG, T0 + 15, holder="b", nonce="n2")
    assert takeover.verdict is Verdict.PROBE
    assert takeover.record.probe is not None
    assert takeover.record.probe.holder == "b"
    assert takeover.record.generation == claimed.generation
    late = record_success(takeover.record, CONFIG, T0 + 16, Ticket("llm", 2, "n1"))
    assert late.effect is Effect.STALE
    late_failure = record_failure(takeover.record, CONFIG, T0 + 16, Ticket("llm", 2, "n1"))
    assert late_failure.effect is Effect.STALE


def test_probe_successes_close_after_success_threshold() -> None:
    claimed = admit("llm", opened(), CONFIG, T0 + 10, holder="a", nonce="n1").record
    one = record_success(claimed, CONFIG, T0 + 11, Ticket("llm", 2, "n1"))
    assert one.effect is Effect.APPLIED
    assert (one.record.state, one.record.successes, one.record.probe) == ("half-open", 1, None)
    again = admit("llm", one.record, CONFIG, T0 + 11, holder="b", nonce="n2")
    assert again.verdict is Verdict.PROBE
    two = record_success(again.record, CONFIG, T0 + 12, Ticket("llm", 2, "n2"))
    assert two.record.state == "closed"
    assert two.record.generation == 3
    assert (two.record.failures, two.record.successes, two.record.opened_at) == (0, 0, None)


def test_probe_failure_reopens_with_new_opened_at() -> None:
    claimed = admit("llm", opened(), CONFIG, T0 + 10, holder="a", nonce="n1").record
    change = record_failure(claimed, CONFIG, T0 + 12, Ticket("llm", 2, "n1"), "still down")
    assert change.effect is Effect.APPLIED
    assert change.record.state == "open"
    assert change.record.opened_at == T0 + 12
    assert change.record.generation == 3
    assert change.record.opens == 2
    assert change.record.last_error == "still down"
    assert view(change.record, CONFIG, T0 + 13).retry_at == T0 + 22


def test_result_of_call_started_before_opening_is_ignored() -> None:
    before = Ticket("llm", 0)
    now_open = fail_n(CLOSED, 3)
    assert record_success(now_open, CONFIG, T0, before).effect is Effect.STALE
    assert record_failure(now_open, CONFIG, T0, before).effect is Effect.STALE
    # ... and also after it closed again (generation moved on twice).
    reclosed = replace(CLOSED, generation=3)
    assert record_failure(reclosed, CONFIG, T0, before).effect is Effect.STALE


def test_non_probe_caller_cannot_report_in_half_open() -> None:
    claimed = admit("llm", opened(), CONFIG, T0 + 10, holder="a", nonce="n1").record
    assert record_failure(claimed, CONFIG, T0, Ticket("llm", 2)).effect is Effect.STALE
    assert record_success(claimed, CONFIG, T0, Ticket("llm", 2)).effect is Effect.STALE


def test_release_frees_lease_only_for_holder() -> None:
    claimed = admit("llm", opened(), CONFIG, T0 + 10, holder="a", nonce="n1").record
    assert release_probe(claimed, T0, Ticket("llm", 2, "other")).effect is Effect.STALE
    released = release_probe(claimed, T0, Ticket("llm", 2, "n1"))
    assert released.effect is Effect.APPLIED
    assert released.record.probe is None
    assert released.record.state == "half-open"


@pytest.mark.parametrize(
    ("record", "now", "expected"),
    [
        (CLOSED, T0, ("closed", None)),
        (opened(), T0 + 1, ("open", T0 + 10)),
        (opened(), T0 + 10, ("half-open", None)),
        (
            CircuitRecord(
                state="half-open", opened_at=T0, probe=ProbeLease("a", "n", T0 + 20), generation=2
            ),
            T0 + 12,
            ("half-open", T0 + 20),
        ),
        (
            CircuitRecord(
                state="half-open", opened_at=T0, probe=ProbeLease("a", "n", T0 + 20), generation=2
            ),
            T0 + 20,
            ("half-open", None),
        ),
    ],
)
def test_view_for_planning(
    record: CircuitRecord, now: float, expected: tuple[str, float | None]
) -> None:
    current = view(record, CONFIG, now)
    assert (current.state, current.retry_at) == expected


# ------------------------------------------------------------------------------ interleavings

ACTORS = 4
event = st.tuples(
    st.sampled_from(["begin", "success", "failure", "release", "tick"]),
    st.integers(min_value=0, max_value=ACTORS - 1),
    st.floats(min_value=0, max_value=8, allow_nan=False),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(event, max_size=60))
def test_random_interleavings_keep_invariants_and_monotonic_generations(
    events: list[tuple[str, int, float]],
) -> None:
    """Several callers begin and finish calls in any order while time moves on: every record
    produced is legal, generations never go down, and at most one caller holds a live lease."""
    record = CLOSED
    now = T0
    tickets: dict[int, Ticket] = {}
    nonce_counter = 0
    for action, actor, step in events:
        previous = record
        if action == "tick":
            now += step
            continue
        if action == "begin":
            nonce_counter += 1
            admission = admit(
                "llm", record, CONFIG, now, holder=f"actor{actor}", nonce=f"n{nonce_counter}"
            )
            record = admission.record
            if admission.ticket is not None:
                tickets[actor] = admission.ticket
            if admission.verdict is Verdict.PROBE:
                assert previous.probe is None or previous.probe.expires_at <= now
        elif actor in tickets:
            ticket = tickets.pop(actor)
            if action == "success":
                change = record_success(record, CONFIG, now, ticket)
            elif action == "failure":
                change = record_failure(record, CONFIG, now, ticket, "x")
            else:
                change = release_probe(record, now, ticket)
            if change.effect is not Effect.APPLIED:
                assert change.record is record
            if ticket.generation != previous.generation:
                assert change.effect is Effect.STALE
            record = change.record
        assert invariant_violations(record, CONFIG) == []
        assert record.generation >= previous.generation
        if record.state != previous.state:
            assert record.generation == previous.generation + 1
        else:
            assert record.generation == previous.generation
        live_holders = {
            ticket.nonce
            for ticket in tickets.values()
            if ticket.nonce is not None
            and record.probe is not None
            and record.probe.nonce == ticket.nonce
            and record.probe.expires_at > now
        }
        assert len(live_holders) <= 1
