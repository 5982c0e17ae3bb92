"""A node's recorded state: read tolerantly from `status.nodes`, written back compactly.

Status is the planner's memory between reconciles, but it may be empty (a new run), partial (an
older operator) or garbage (someone patched it by hand). Each field that does not parse falls back
to its default; the observed Jobs then fill in what they can (see `accounting.adopt`).

An attempt whose pod cannot start is, inside the planner, `Running` (its Job exists, holds a
parallelism slot, and may start any moment) with the cause as `reason`, which is also recorded in
`start_problems`. On the wire it is `Pending`, as its pod is: a user reading status sees a node
that has not started and why, never "running". A `Pending` node with attempts whose reason is
one of its `startProblems` reads back as that `Running` state; no other `Pending` node has
either (a launchable node has no start problems: `clear_outcome` drops them)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal, cast, get_args

from extraction_operator.api.constants import MAX_START_PROBLEMS
from extraction_operator.api.models import NodePhase

from .timefmt import format_time, parse_time

NODE_PHASES: tuple[str, ...] = get_args(NodePhase)
MAX_PROVIDER_FAILURES = 16
# Phases a node never leaves without outside help (a re-drive).
TERMINAL: frozenset[str] = frozenset({"Succeeded", "Failed", "Skipped"})
# Phases in which a node may be (re)launched once its timers and gates allow it.
LAUNCHABLE: frozenset[str] = frozenset({"Pending", "Waiting", "Blocked"})

Phase = Literal["Pending", "Waiting", "Running", "Succeeded", "Failed", "Blocked", "Skipped"]


@dataclass
class NodeState:
    phase: Phase = "Pending"
    attempts: int = 0
    failures: int = 0
    job_name: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    next_retry_at: datetime | None = None
    exit_code: int | None = None
    reason: str | None = None
    message: str | None = None
    # Start-problem reasons reported for the current attempt (each with one Event).
    start_problems: list[str] = field(default_factory=list)
    # A provider failure not yet judged (circuit -> admitted generation): the node waits out its
    # backoff without spending a retry, and spends it only if the circuit has not opened by then.
    provider_failures: dict[str, int] = field(default_factory=dict)

    @property
    def not_starting(self) -> bool:
        """Running an attempt whose pod cannot start right now (the reason says why)."""
        return (
            self.phase == "Running"
            and self.reason is not None
            and self.reason in self.start_problems
        )

    def copy(self) -> NodeState:
        return replace(
            self,
            start_problems=list(self.start_problems),
            provider_failures=dict(self.provider_failures),
        )

    def clear_outcome(self) -> None:
        """Forget the previous attempt's result (a new attempt starts, or a re-drive)."""
        self.finished_at = None
        self.next_retry_at = None
        self.exit_code = None
        self.reason = None
        self.message = None
        self.start_problems = []
        self.provider_failures = {}


def _count(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return 0


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _reasons(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    out: list[str] = []
    for item in value[:MAX_START_PROBLEMS]:
        if isinstance(item, str) and item and item not in out:
            out.append(item[:64])
    return out


def _generations(value: Any) -> dict[str, int]:
    if not isinstance(value, Mapping):
        return {}
    return {
        name[:63]: generation
        for name, generation in list(value.items())[:MAX_PROVIDER_FAILURES]
        if isinstance(name, str) and name and isinstance(generation, int)
        and not isinstance(generation, bool) and generation >= 0
    }  # fmt: skip


def wire_phase_in_flight(raw: Any) -> bool:
    """Does this `status.nodes[key]` entry describe an attempt in flight (launched, not over)?
    `Running`, or `Pending` with a start problem (see the module docstring)."""
    if not isinstance(raw, Mapping):
        return False
    if raw.get("phase") == "Running":
        return True
    return raw.get("phase") == "Pending" and _not_starting_on_wire(raw)


def _not_starting_on_wire(raw: Mapping[str, Any]) -> bool:
    reason = raw.get("reason")
    return (
        _count(raw.get("attempts")) > 0
        and isinstance(reason, str)
        and reason in _reasons(raw.get("startProblems"))
    )


def parse_node_state(raw: Any) -> NodeState:
    """A NodeState from one `status.nodes[key]` entry; never raises."""
    if not isinstance(raw, Mapping):
        return NodeState()
    phase = raw.get("phase")
    if phase == "Pending" and _not_starting_on_wire(raw):
        phase = "Running"
    exit_code = raw.get("exitCode")
    state = NodeState(
        phase=cast(Phase, phase) if phase in NODE_PHASES else "Pending",
        attempts=_count(raw.get("attempts")),
        failures=_count(raw.get("failures")),
        job_name=_text(raw.get("jobName")),
        started_at=parse_time(raw.get("startedAt")),
        finished_at=parse_time(raw.get("finishedAt")),
        next_retry_at=parse_time(raw.get("nextRetryAt")),
        exit_code=exit_code
        if isinstance(exit_code, int) and not isinstance(exit_code, bool)
        else None,
        reason=_text(raw.get("reason")),
        message=_text(raw.get("message")),
        start_problems=_reasons(raw.get("startProblems")),
        provider_failures=_generations(raw.get("providerFailures")),
    )
    if state.phase == "Running" and state.attempts == 0:
        state.phase = "Pending"  # "running" with no Job ever launched is not a fact we can use
    return state


def serialize_node_state(state: NodeState) -> dict[str, Any]:
    """The compact wire form: camelCase, None and zero failures omitted; a Succeeded node keeps
    only the termination message its stage wrote (no exit code or reason: they say nothing)."""
    phase = "Pending" if state.not_starting else state.phase
    out: dict[str, Any] = {"phase": phase, "attempts": state.attempts}
    if state.failures:
        out["failures"] = state.failures
    if state.job_name:
        out["jobName"] = state.job_name
    for key, moment in (
        ("startedAt", state.started_at),
        ("finishedAt", state.finished_at),
        ("nextRetryAt", state.next_retry_at),
    ):
        if moment is not None:
            out[key] = format_time(moment)
    if state.phase != "Succeeded":
        if state.exit_code is not None:
            out["exitCode"] = state.exit_code
        if state.reason:
            out["reason"] = state.reason
    if state.message:
        out["message"] = state.message
    if state.start_problems:
        out["startProblems"] = list(state.start_problems)
    if state.provider_failures:
        out["providerFailures"] = dict(sorted(state.provider_failures.items()))
    return out
