"""An attempt in flight: report why its pod cannot start, and enforce its two deadlines.

- **Start problems.** While the attempt has not started, the cause the cluster gives (see
  `startup.py`) is the node's `reason` and `message`; it is reported once per cause and attempt
  with a `StageCannotStart` Event, remembered in the node's `start_problems`, which live in status
  and so survive re-plans and operator restarts. When the cause goes away (the user created the
  missing ServiceAccount), the reason is cleared and the attempt carries on as it is: nothing
  needs re-driving.
- **The start deadline** (`startTimeoutSeconds`, counted from the launch): an attempt that has not
  started by then ends with `StartDeadlineExceeded` and its Job is deleted; it counts against the
  retry policy like any failure.
- **The run time** (`timeoutSeconds`, counted from the stage container's start): enforced here,
  so time spent waiting to start is never taken from the stage. The Job's own
  `activeDeadlineSeconds` (start window + run time, see `jobs.py`) is only the backstop for an
  operator that is down.

Decisions are made only on positive evidence: an attempt whose start state is unknown (no pod
facts) is left alone, never failed on a guess."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from extraction_operator.api.constants import MAX_START_PROBLEMS
from extraction_operator.api.models import ExtractionRunSpec, Stage

from .classify import DEADLINE_EXCEEDED, Failure, start_deadline_failure
from .context import NodeContext
from .node_state import NodeState
from .nodes import Node
from .startup import CONTINUES, cause_of
from .timefmt import floor_second, format_clock
from .types import ObservedJob, StartProblem


@dataclass(frozen=True)
class ActiveVerdict:
    """What an active attempt needs: a look again at `recheck`, or to end with `failure`."""

    recheck: datetime | None = None
    failure: Failure | None = None


def start_timeout(spec: ExtractionRunSpec, stage: Stage) -> int:
    """The stage's `startTimeoutSeconds`, else the run's."""
    if stage.start_timeout_seconds is not None:
        return stage.start_timeout_seconds
    return spec.start_timeout_seconds


def start_deadline(state: NodeState, ctx: NodeContext) -> datetime:
    """The launch plus `startTimeoutSeconds`, rounded up: status keeps the launch time floored
    to the second, and a start window must never be shorter than the one asked for."""
    launched = state.started_at or floor_second(ctx.now)
    return launched + timedelta(seconds=ctx.start_timeout + 1)


def shown_problem(state: NodeState) -> tuple[str, str] | None:
    """The start problem the node shows now, as (reason, message)."""
    if state.reason is not None and state.reason in state.start_problems:
        return state.reason, state.message or state.reason
    return None


def timed_out_failure(node: Node) -> Failure:
    timeout = node.stage.timeout_seconds
    return Failure(
        DEADLINE_EXCEEDED, None, f"the stage ran longer than its timeoutSeconds ({timeout}s)"
    )


def settle_active(
    node: Node, state: NodeState, job: ObservedJob, ctx: NodeContext
) -> ActiveVerdict:
    """Bring a Running node up to date with its active Job (its start problem, if any) and say
    whether a deadline ended the attempt."""
    if job.container_started_at is not None:
        clear_problem(state)
        timeout = node.stage.timeout_seconds
        if timeout is None:
            return ActiveVerdict()
        deadline = floor_second(job.container_started_at) + timedelta(seconds=timeout)
        if ctx.now < deadline:
            return ActiveVerdict(recheck=deadline)
        return ActiveVerdict(failure=timed_out_failure(node))
    if not job.pending:
        return ActiveVerdict()
    note_problem(node, state, job.start_problem, ctx)
    deadline = start_deadline(state, ctx)
    if ctx.now < deadline:
        return ActiveVerdict(recheck=deadline)
    return ActiveVerdict(
        failure=start_deadline_failure(
            ctx.start_timeout, shown_problem(state), state.start_problems
        )
    )


def clear_problem(state: NodeState) -> None:
    """The cause went away (or the container started): the node stops showing it."""
    if shown_problem(state) is not None:
        state.reason = None
        state.message = None


def note_problem(
    node: Node, state: NodeState, problem: StartProblem | None, ctx: NodeContext
) -> None:
    """Show the current cause on the node; report a cause not yet reported for this attempt."""
    if problem is None:
        clear_problem(state)
        return
    continues = CONTINUES.get(problem.reason)
    if continues is not None and continues == state.reason:
        return  # the same cause, backing off: keep the words that say what went wrong
    state.reason, state.message = problem.reason, problem.message
    if problem.reason in state.start_problems or len(state.start_problems) >= MAX_START_PROBLEMS:
        return
    reported = {cause_of(reason) for reason in state.start_problems}
    state.start_problems.append(problem.reason)
    if cause_of(problem.reason) in reported:
        return
    gives_up = format_clock(start_deadline(state, ctx))
    ctx.log.node(
        node.stage.name,
        node.key,
        "Warning",
        "StageCannotStart",
        f"{node.key} attempt {state.attempts} cannot start ({problem.reason}): "
        f"{problem.message}; the attempt ends at {gives_up} unless it starts "
        f"(startTimeoutSeconds {ctx.start_timeout}s)",
    )
