"""Retry policy overrides and the delay before each retry."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from extraction_operator.api.validation import parse_spec
from extraction_operator.planner.backoff import (
    EffectivePolicy,
    effective_policy,
    exponential_cap,
    jitter_seed,
    retry_delay,
)


def policy(jitter: str = "full", limit: int = 3) -> EffectivePolicy:
    return EffectivePolicy(limit, 10.0, 2.0, 300.0, jitter, frozenset())  # type: ignore[arg-type]


def test_stage_overrides_each_field_of_the_run_policy() -> None:
    spec, problems = parse_spec(
        {
            "image": "i",
            "retry": {
                "limit": 5,
                "backoff": {"initialSeconds": 1, "factor": 3, "maxSeconds": 60, "jitter": "none"},
                "nonRetryableExitCodes": [2],
            },
            "stages": [
                {"name": "a"},
                {"name": "b", "retry": {"limit": 1, "backoff": {"maxSeconds": 7}}},
                {"name": "c", "retry": {"nonRetryableExitCodes": [9]}},
            ],
        }
    )
    assert spec is not None
    assert not problems
    a, b, c = (effective_policy(spec, stage) for stage in spec.stages)
    assert a == EffectivePolicy(5, 1.0, 3.0, 60.0, "none", frozenset({2}))
    assert b == EffectivePolicy(1, 1.0, 3.0, 7.0, "none", frozenset({2}))
    assert c.non_retryable_exit_codes == frozenset({9})
    assert c.limit == 5


def test_exponential_cap_follows_tenacity() -> None:
    assert [exponential_cap(policy(), n) for n in (1, 2, 3, 4, 6, 10)] == [
        10.0,
        20.0,
        40.0,
        80.0,
        300.0,
        300.0,
    ]


def test_no_jitter_is_exactly_the_cap() -> None:
    assert retry_delay(policy("none"), 2, seed=1) == 20.0


def test_full_jitter_is_seeded_and_varies_with_the_seed() -> None:
    first = retry_delay(policy(), 3, seed=jitter_seed("uid", "a", 3))
    assert first == retry_delay(policy(), 3, seed=jitter_seed("uid", "a", 3))
    others = {retry_delay(policy(), 3, seed=jitter_seed("uid", "a", n)) for n in range(20)}
    assert len(others) > 10


@settings(max_examples=100, deadline=None)
@given(
    failures=st.integers(1, 15),
    initial=st.floats(0.1, 100),
    factor=st.floats(1, 5),
    maximum=st.floats(1, 1000),
    seed=st.integers(0, 2**64),
)
def test_full_jitter_stays_within_zero_and_the_cap(
    failures: int, initial: float, factor: float, maximum: float, seed: int
) -> None:
    chosen = EffectivePolicy(3, initial, factor, maximum, "full", frozenset())
    delay = retry_delay(chosen, failures, seed=seed)
    cap = min(maximum, initial * factor ** (failures - 1))
    assert 0 <= delay <= cap + 1e-9
