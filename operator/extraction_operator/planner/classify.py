"""Why an attempt failed (DESIGN.md section 3), from what the Job and its pod said.

The order of the checks matters: a stage killed for running past its timeout exits with whatever
SIGTERM made of it, so the Job's `DeadlineExceeded` wins over the exit code; an evicted pod never
chose its exit code, so a pod-level reason wins too; a container the runtime could not start
(`StartError`: its command cannot be executed) never ran, so its exit code 128 is the runtime's,
not the stage's; only then does the stage's own exit code decide between `CircuitOpen` (75),
`NonRetryable` and a plain `Error`. A plain `Error` whose stage said it ended on a provider
failure (the SDK's marker line, `breaker.attribution`) carries that claim for `outage.attribute`;
the marker line itself never reaches the node's message.

The message is the stage's own termination message when it wrote one. When it did not, the text
says what is known and where to look, never the Job controller's condition message: with the
`backoffLimit: 0` the operator always sets, every failed Job "has reached the specified backoff
limit", which tells a user nothing about their stage."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from extraction_operator.api.constants import EXIT_CIRCUIT_OPEN
from extraction_operator.breaker.attribution import split_marker

from .backoff import EffectivePolicy
from .messages import clean_message, truncate_utf8
from .startup import START_ERROR_REASONS
from .types import ObservedJob

ERROR = "Error"
DEADLINE_EXCEEDED = "DeadlineExceeded"
POD_LOST = "PodLost"
NON_RETRYABLE = "NonRetryable"
CIRCUIT_OPEN = "CircuitOpen"
# An attempt whose pod did not start within its start deadline (distinct from DeadlineExceeded:
# that stage ran, for too long), and one whose container could not be started at all.
START_DEADLINE_EXCEEDED = "StartDeadlineExceeded"
START_ERROR = "StartError"
# Job condition reasons whose message is about the operator's own Job settings, not the stage.
OPERATOR_SETTING_REASONS = frozenset({"BackoffLimitExceeded", DEADLINE_EXCEEDED})
# Container termination reasons that add nothing to "exited with code N".
PLAIN_EXIT_REASONS = frozenset({"Error", "Completed"})


@dataclass(frozen=True)
class Failure:
    reason: str
    exit_code: int | None
    message: str | None
    # circuit -> generation its failed call was admitted under, as the stage's SDK reported it.
    provider_failures: dict[str, int] = field(default_factory=dict)

    @property
    def counts_against_limit(self) -> bool:
        """A stage that refused to call an open circuit did not really try: no retry is used."""
        return self.reason != CIRCUIT_OPEN

    @property
    def retryable(self) -> bool:
        return self.reason != NON_RETRYABLE


def silent_exit(job: ObservedJob, code: int) -> str:
    """What to say about a non-zero exit that left no termination message (and no log tail)."""
    how = f"stage exited with code {code}"
    if job.exit_reason and job.exit_reason not in PLAIN_EXIT_REASONS:
        how += f" ({job.exit_reason})"
    return f"{how} and wrote no termination message; see kubectl logs job/{job.name}"


def _job_condition_text(job: ObservedJob) -> str | None:
    """The Job controller's message, unless it is about the operator's own settings."""
    if job.failure_reason in OPERATOR_SETTING_REASONS:
        return None
    return clean_message(job.job_message)


def classify_failure(
    job: ObservedJob, policy: EffectivePolicy, timeout_seconds: int | None = None
) -> Failure:
    """The failure kind of a Job in phase Failed. `timeout_seconds` is the stage's timeout, for
    the message of a deadline failure."""
    text, provider_failures = split_marker(job.message)
    own_message = clean_message(text)
    if job.failure_reason == DEADLINE_EXCEEDED:
        limit = f" ({timeout_seconds}s)" if timeout_seconds is not None else ""
        return Failure(
            DEADLINE_EXCEEDED,
            job.exit_code,
            own_message or f"the stage ran longer than its timeoutSeconds{limit}",
        )
    if job.pod_reason is not None:
        return Failure(
            POD_LOST,
            None,
            clean_message(
                f"pod lost ({job.pod_reason})" + (f": {own_message}" if own_message else "")
            ),
        )
    if job.exit_reason in START_ERROR_REASONS:
        detail = own_message or "the container runtime could not run its command"
        return Failure(
            START_ERROR, job.exit_code, clean_message(f"the container could not start: {detail}")
        )
    code = job.exit_code
    if code is None:
        condition = _job_condition_text(job)
        gone = f"job {job.name} failed and its pod is gone, so its exit code is unknown"
        return Failure(
            POD_LOST, None, own_message or (f"{gone}: {condition}" if condition else gone)
        )
    if code == EXIT_CIRCUIT_OPEN:
        return Failure(CIRCUIT_OPEN, code, own_message or "a circuit breaker was open")
    if code in policy.non_retryable_exit_codes:
        return Failure(
            NON_RETRYABLE,
            code,
            own_message or f"{silent_exit(job, code)} (exit code {code} is non-retryable)",
        )
    return Failure(ERROR, code, own_message or silent_exit(job, code), provider_failures)


def start_deadline_failure(
    start_timeout: int, problem: tuple[str, str] | None, seen: Sequence[str] = ()
) -> Failure:
    """The attempt's pod did not start in time. The message leads with the deadline and goes on
    with the last cause the cluster gave (`problem`: reason, message), or the earlier ones."""
    text = f"the pod did not start within startTimeoutSeconds ({start_timeout}s)"
    if problem is not None:
        reason, message = problem
        text += f": {reason}: {truncate_utf8(message, 800)}"
    elif seen:
        text += f" (earlier: {', '.join(seen)})"
    else:
        text += "; the cluster gave no reason (see kubectl describe pod)"
    return Failure(START_DEADLINE_EXCEEDED, None, clean_message(text))


def lost_job_failure(job_name: str | None) -> Failure:
    """The current attempt's Job vanished (deleted by hand, garbage-collected) before finishing."""
    return Failure(POD_LOST, None, f"job {job_name or '?'} disappeared before it finished")
