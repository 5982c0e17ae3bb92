"""Retry policy per stage and the delay before each retry.

The exponential part is tenacity's `wait_exponential` (`initialSeconds * factor**(n-1)`, capped at
`maxSeconds`), so the operator and the stage SDK share one definition of backoff. The jitter is
*not* tenacity's: its `wait_random_exponential` draws from the global `random` module, and a
planner must give the same plan for the same inputs. So full jitter is drawn from a
`random.Random` seeded by (run uid, node, attempt): a replayed reconcile computes the same
`nextRetryAt`, and once written, that value is the truth anyway."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from tenacity import RetryCallState, Retrying, wait_exponential

from extraction_operator.api.models import BackoffOverride, ExtractionRunSpec, RetryOverride, Stage

from .naming import stable_hash


@dataclass(frozen=True)
class EffectivePolicy:
    """A stage's retry policy after its overrides are laid over the run's `spec.retry`."""

    limit: int  # retries after the first attempt
    initial_seconds: float
    factor: float
    max_seconds: float
    jitter: Literal["full", "none"]
    non_retryable_exit_codes: frozenset[int]


def effective_policy(spec: ExtractionRunSpec, stage: Stage) -> EffectivePolicy:
    """Every field of the stage's `retry` overrides the same field of `spec.retry`."""
    base = spec.retry
    override = stage.retry if stage.retry is not None else RetryOverride()
    backoff = override.backoff if override.backoff is not None else BackoffOverride()
    codes = override.non_retryable_exit_codes
    return EffectivePolicy(
        limit=override.limit if override.limit is not None else base.limit,
        initial_seconds=_first(backoff.initial_seconds, base.backoff.initial_seconds),
        factor=_first(backoff.factor, base.backoff.factor),
        max_seconds=_first(backoff.max_seconds, base.backoff.max_seconds),
        jitter=backoff.jitter if backoff.jitter is not None else base.backoff.jitter,
        non_retryable_exit_codes=frozenset(
            codes if codes is not None else base.non_retryable_exit_codes
        ),
    )


def _first(value: float | None, default: float) -> float:
    return float(value if value is not None else default)


def exponential_cap(policy: EffectivePolicy, failures: int) -> float:
    """The un-jittered delay before retry number `failures` (1-based), via tenacity."""
    wait = wait_exponential(
        multiplier=policy.initial_seconds, exp_base=policy.factor, max=policy.max_seconds
    )
    state = RetryCallState(retry_object=Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = max(1, failures)
    return float(wait(state))


def jitter_seed(run_uid: str, node: str, attempt: int) -> int:
    return int(stable_hash(f"{run_uid}/{node}/{attempt}", 16), 16)


def retry_delay(policy: EffectivePolicy, failures: int, *, seed: int) -> float:
    """Seconds to wait before the next attempt after `failures` counted failures.

    Full jitter: uniform in [0, cap]. No jitter: exactly the cap."""
    cap = exponential_cap(policy, failures)
    if policy.jitter == "none":
        return cap
    return random.Random(seed).uniform(0.0, cap)
