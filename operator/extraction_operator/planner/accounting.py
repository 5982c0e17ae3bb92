"""Fold what the Jobs say into a node's state: adopt, then account each finished attempt once.

Observed Jobs are the truth about attempts. A Job numbered above `attempts` means the shell created
it but its status write never landed: after a crash (an earlier operator process) it is adopted,
and attempts in between that failed are counted; when this very process created it (the write
lost a compare-and-swap race, `RunSnapshot.launched`) it is the same bookkeeping, but reported as
the launch it was, never as an adoption. A finished Job is accounted only while its node is
`Running` that very attempt; the result moves the node out of `Running`, so planning again from
the new status and the same Job changes nothing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from extraction_operator.breaker.attribution import split_marker

from .backoff import jitter_seed, retry_delay
from .classify import (
    CIRCUIT_OPEN,
    DEADLINE_EXCEEDED,
    Failure,
    classify_failure,
    lost_job_failure,
    start_deadline_failure,
)
from .context import NodeContext
from .gates import recovery_time
from .messages import clean_message
from .node_state import NodeState
from .nodes import Node
from .outage import PROVIDER_OUTAGE, Verdict, attribute, outage_circuits
from .starting import settle_active, shown_problem, start_deadline
from .timefmt import add_seconds, ceil_second, floor_second, format_clock
from .types import ObservedJob

__all__ = [
    "NodeContext",
    "adopt_newer_jobs",
    "record_failure",
    "settle_provider_failure",
    "settle_running",
]

# The shell's watch may lag right after a create: a Running node's Job missing for less than this
# is assumed to be on its way, not lost.
LOST_JOB_GRACE = timedelta(seconds=10)


def describe_failure(failure: Failure) -> str:
    code = f", exit code {failure.exit_code}" if failure.exit_code is not None else ""
    text = f"{failure.reason}{code}"
    return f"{text}: {failure.message}" if failure.message else text


def _counts(failure: Failure, ctx: NodeContext) -> bool:
    """Whether an attempt found failed while nobody was looking used a retry."""
    if failure.provider_failures and attribute(failure.provider_failures, ctx.gates) in (
        Verdict.OUTAGE,
        Verdict.UNDECIDED,
    ):
        return False
    return failure.counts_against_limit


def adopt_newer_jobs(
    node: Node, state: NodeState, jobs: Sequence[ObservedJob], ctx: NodeContext
) -> None:
    """Take over the newest Job when it is newer than the recorded attempts."""
    if not jobs:
        return
    newest = max(jobs, key=lambda job: job.attempt)
    if newest.attempt <= state.attempts:
        return
    # Attempts whose outcome status never recorded: the current one if it was still Running, and
    # any the shell launched in between without managing to write status.
    first_unaccounted = state.attempts if state.phase == "Running" else state.attempts + 1
    for job in sorted(jobs, key=lambda job: job.attempt):
        skipped_over = first_unaccounted <= job.attempt < newest.attempt
        if skipped_over and job.phase == "Failed":
            state.failures += int(_counts(classify_failure(job, ctx.policy), ctx))
    state.attempts = newest.attempt
    state.job_name = newest.name
    state.phase = "Running"
    state.started_at = floor_second(newest.started_at or ctx.now)
    state.clear_outcome()
    how = "started" if newest.name in ctx.launched else "adopted"
    ctx.log.node(
        node.stage.name,
        node.key,
        "Normal",
        "StageStarted",
        f"{node.key}: {how} attempt {newest.attempt} (job {newest.name})",
    )


def settle_running(
    node: Node, state: NodeState, jobs: Sequence[ObservedJob], ctx: NodeContext
) -> datetime | None:
    """Account the current attempt's Job if it finished, and bring an active one up to date
    (`starting.settle_active`). Returns when to look again (the lost-Job grace, a deadline), or
    None."""
    if state.phase != "Running":
        return None
    current = next((job for job in jobs if job.attempt == state.attempts), None)
    if current is None:
        if state.started_at is None:
            state.started_at = floor_second(ctx.now)
        recheck = state.started_at + LOST_JOB_GRACE
        if ctx.now < recheck:
            return recheck
        problem = shown_problem(state)
        if problem is not None and ctx.now >= start_deadline(state, ctx):
            # Deleted at its start deadline by a pass whose status write was lost.
            failure = start_deadline_failure(ctx.start_timeout, problem, state.start_problems)
        else:
            failure = lost_job_failure(state.job_name)
        record_failure(node, state, failure, ctx.now, ctx)
        return None
    if current.phase == "Active":
        verdict = settle_active(node, state, current, ctx)
        if verdict.failure is not None:
            record_failure(node, state, verdict.failure, ctx.now, ctx)
            if not current.deleting:
                ctx.deletions.append(current.name)
        return verdict.recheck
    if current.phase == "Succeeded":
        state.phase = "Succeeded"
        state.clear_outcome()
        state.finished_at = floor_second(current.finished_at or ctx.now)
        # DESIGN.md: the node's message is the stage's termination message, success included
        # ("graph.json: 66 entities"); the status-wide message budget keeps fan-outs compact.
        state.message = clean_message(split_marker(current.message)[0])
        ctx.log.node(
            node.stage.name,
            node.key,
            "Normal",
            "StageSucceeded",
            f"{node.key} succeeded on attempt {state.attempts}",
        )
    elif current.phase == "Failed":
        problem = shown_problem(state)
        if current.failure_reason == DEADLINE_EXCEEDED and problem is not None:
            # The Job's backstop deadline passed while its pod could not start (the operator
            # was away at the start deadline): not a stage that ran too long.
            failure = start_deadline_failure(ctx.start_timeout, problem, state.start_problems)
        else:
            failure = classify_failure(current, ctx.policy, node.stage.timeout_seconds)
        record_failure(node, state, failure, current.finished_at or ctx.now, ctx)
    return None


def record_failure(
    node: Node, state: NodeState, failure: Failure, finished_at: datetime, ctx: NodeContext
) -> None:
    """Move a node out of Running after a failed attempt: Blocked, Waiting or Failed."""
    state.finished_at = floor_second(finished_at)
    # Backoff counts from the moment the failure is accounted, never from the Job's timestamp:
    # API timestamps have whole-second resolution, so a 1 s delay counted from a floored finish
    # time could retry almost at once. `now` is never before the real end of the attempt.
    retry_base = max(finished_at, ctx.now)
    state.exit_code = failure.exit_code
    state.reason = failure.reason
    state.message = failure.message
    state.next_retry_at = None
    cause = describe_failure(failure)
    if failure.reason == CIRCUIT_OPEN:
        recovers = recovery_time(node.stage.circuits, ctx.gates)
        # Blocked nodes launch when their circuits let them; a pod that found a circuit open
        # that the operator sees closed (its view lags, or it closed since) waits a moment
        # instead, so a lagging view cannot relaunch it again and again.
        state.phase = "Blocked" if recovers is not None else "Waiting"
        state.next_retry_at = ceil_second(
            recovers or add_seconds(retry_base, ctx.policy.initial_seconds)
        )
        ctx.log.node(
            node.stage.name,
            node.key,
            "Normal",
            "StageBlocked",
            f"{node.key} attempt {state.attempts} found a circuit open; "
            f"relaunching at {format_clock(state.next_retry_at)} (no retry used)",
        )
        return
    if failure.provider_failures:
        verdict = attribute(failure.provider_failures, ctx.gates)
        if verdict is not Verdict.COUNTS:
            # Wait out the backoff a counted failure would get, and judge when it is due.
            state.phase = "Waiting"
            state.provider_failures = dict(failure.provider_failures)
            state.next_retry_at = _backoff_until(
                state, state.failures + 1, retry_base, ctx, node.key
            )
            if verdict is Verdict.OUTAGE:
                excuse_outage(node, state, ctx)
                return
            names = ", ".join(sorted(failure.provider_failures))
            ctx.log.node(
                node.stage.name,
                node.key,
                "Normal",
                "RetryScheduled",
                f"{node.key} attempt {state.attempts} failed on a provider call ({cause}); "
                f"relaunching at {format_clock(state.next_retry_at)}, which uses no retry if "
                f"circuit {names} opens before then",
            )
            return
    spend_retry(node, state, failure.retryable, cause, retry_base, ctx)


def _backoff_until(
    state: NodeState, failures: int, base: datetime, ctx: NodeContext, node_key: str
) -> datetime:
    delay = retry_delay(
        ctx.policy, failures, seed=jitter_seed(ctx.run_uid, node_key, state.attempts)
    )
    return ceil_second(add_seconds(base, delay))


def spend_retry(
    node: Node,
    state: NodeState,
    retryable: bool,
    cause: str,
    retry_base: datetime,
    ctx: NodeContext,
    retry_at: datetime | None = None,
) -> None:
    """Count a failure against the retry limit: Failed when it is used up, else Waiting (until
    `retry_at`, by default the backoff from `retry_base`)."""
    state.failures += 1
    limit = ctx.policy.limit
    if not retryable or state.failures > limit:
        state.phase = "Failed"
        state.next_retry_at = None
        why = "not retryable" if not retryable else f"{limit} retries used"
        ctx.log.node(
            node.stage.name,
            node.key,
            "Warning",
            "StageFailed",
            f"{node.key} failed on attempt {state.attempts} ({why}): {cause}",
        )
        return
    state.phase = "Waiting"
    state.next_retry_at = retry_at or _backoff_until(
        state, state.failures, retry_base, ctx, node.key
    )
    ctx.log.node(
        node.stage.name,
        node.key,
        "Normal",
        "RetryScheduled",
        f"{node.key} attempt {state.attempts} failed ({cause}); "
        f"retry {state.failures}/{limit} at {format_clock(state.next_retry_at)}",
    )


def excuse_outage(node: Node, state: NodeState, ctx: NodeContext) -> None:
    """The attempt failed because its provider was down: park the node, no retry used."""
    names = outage_circuits(state.provider_failures, ctx.gates)
    state.provider_failures = {}
    state.phase = "Blocked"
    state.reason = PROVIDER_OUTAGE
    recovers = recovery_time(names, ctx.gates)  # None: recovering or closed, the gates decide
    state.next_retry_at = ceil_second(recovers) if recovers is not None else None
    circuits = ", ".join(names)
    detail = f": {state.message}" if state.message else ""
    state.message = clean_message(
        f"waiting for the provider: attempt {state.attempts} failed on a provider call and "
        f"circuit {circuits} opened, so no retry was used{detail}"
    )
    ctx.log.node(
        node.stage.name,
        node.key,
        "Normal",
        "StageBlocked",
        f"{node.key} attempt {state.attempts} failed during an outage of circuit {circuits}; "
        "waiting for the provider (no retry used)",
    )


def settle_provider_failure(node: Node, state: NodeState, ctx: NodeContext) -> datetime | None:
    """Judge a provider failure left open by `record_failure` again (see `outage`): excused once
    its circuit has opened, spent once the retry is due and it has not. Returns when to look
    again."""
    if state.phase != "Waiting" or not state.provider_failures:
        return None
    verdict = attribute(state.provider_failures, ctx.gates)
    if verdict is Verdict.OUTAGE:
        excuse_outage(node, state, ctx)
        return None
    due = state.next_retry_at
    if verdict is Verdict.UNDECIDED and due is not None and ctx.now < due:
        return due
    names = ", ".join(sorted(state.provider_failures))
    state.provider_failures = {}
    cause = f"{state.reason or 'Error'}: {state.message}" if state.message else "a provider call"
    # The backoff has passed already: a retry, if one is left, goes now.
    spend_retry(node, state, True, f"circuit {names} did not open; {cause}", ctx.now, ctx, due)
    return None
