"""Why an attempt failed (DESIGN.md section 3), from what the Job and its pod said.

The order of the checks matters: a stage killed for running past its timeout exits with whatever
SIGTERM made of it, so the Job's `DeadlineExceeded` wins over the exit code; an evicted pod never
chose its exit code, so a pod-level reason wins too; only then does the stage's own exit code
decide between `CircuitOpen` (75), `NonRetryable` and a plain `Error`."""

from __future__ import annotations

from dataclasses import dataclass

from extraction_operator.api.constants import EXIT_CIRCUIT_OPEN

from .backoff import EffectivePolicy
from .messages import clean_message
from .types import ObservedJob

ERROR = "Error"
DEADLINE_EXCEEDED = "DeadlineExceeded"
POD_LOST = "PodLost"
NON_RETRYABLE = "NonRetryable"
CIRCUIT_OPEN = "CircuitOpen"


@dataclass(frozen=True)
class Failure:
    reason: str
    exit_code: int | None
    message: str | None

    @property
    def counts_against_limit(self) -> bool:
        """A stage that refused to call an open circuit did not really try: no retry is used."""
        return self.reason != CIRCUIT_OPEN

    @property
    def retryable(self) -> bool:
        return self.reason != NON_RETRYABLE


def classify_failure(job: ObservedJob, policy: EffectivePolicy) -> Failure:
    """The failure kind of a Job in phase Failed."""
    own_message = clean_message(job.message)
    if job.failure_reason == DEADLINE_EXCEEDED:
        return Failure(
            DEADLINE_EXCEEDED,
            job.exit_code,
            own_message or "the stage ran longer than its timeoutSeconds",
        )
    if job.pod_reason is not None:
        return Failure(
            POD_LOST,
            None,
            clean_message(
                f"pod lost ({job.pod_reason})" + (f": {own_message}" if own_message else "")
            ),
        )
    code = job.exit_code
    if code is None:
        return Failure(POD_LOST, None, own_message or f"job {job.name} failed and its pod is gone")
    if code == EXIT_CIRCUIT_OPEN:
        return Failure(CIRCUIT_OPEN, code, own_message or "a circuit breaker was open")
    if code in policy.non_retryable_exit_codes:
        return Failure(NON_RETRYABLE, code, own_message or f"exit code {code} is non-retryable")
    return Failure(ERROR, code, own_message or f"the stage exited with code {code}")


def lost_job_failure(job_name: str | None) -> Failure:
    """The current attempt's Job vanished (deleted by hand, garbage-collected) before finishing."""
    return Failure(POD_LOST, None, f"job {job_name or '?'} disappeared before it finished")
