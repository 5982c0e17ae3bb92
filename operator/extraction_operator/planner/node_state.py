"""A node's recorded state: read tolerantly from `status.nodes`, written back compactly.

Status is the planner's memory between reconciles, but it may be empty (a new run), partial (an
older operator) or garbage (someone patched it by hand). Each field that does not parse falls back
to its default; the observed Jobs then fill in what they can (see `accounting.adopt`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal, cast, get_args

from extraction_operator.api.models import NodePhase

from .timefmt import format_time, parse_time

NODE_PHASES: tuple[str, ...] = get_args(NodePhase)
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

    def copy(self) -> NodeState:
        return replace(self)

    def clear_outcome(self) -> None:
        """Forget the previous attempt's result (a new attempt starts, or a re-drive)."""
        self.finished_at = None
        self.next_retry_at = None
        self.exit_code = None
        self.reason = None
        self.message = None


def _count(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return 0


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def parse_node_state(raw: Any) -> NodeState:
    """A NodeState from one `status.nodes[key]` entry; never raises."""
    if not isinstance(raw, Mapping):
        return NodeState()
    phase = raw.get("phase")
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
    )
    if state.phase == "Running" and state.attempts == 0:
        state.phase = "Pending"  # "running" with no Job ever launched is not a fact we can use
    return state


def serialize_node_state(state: NodeState) -> dict[str, Any]:
    """The compact wire form: camelCase, None and zero failures omitted; a Succeeded node keeps
    only the termination message its stage wrote (no exit code or reason: they say nothing)."""
    out: dict[str, Any] = {"phase": state.phase, "attempts": state.attempts}
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
    return out
