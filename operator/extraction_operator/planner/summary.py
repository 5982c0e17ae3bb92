"""The run's one-line `message` and its failure verdict: the most important fact right now.

Built only from state, never from the clock (no "in 5s"), so planning twice in a row writes the
same text and the shell can skip a status write when nothing happened."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from .backoff import EffectivePolicy
from .messages import truncate_utf8
from .node_state import NodeState
from .nodes import RunGraph
from .timefmt import format_clock

RUN_MESSAGE_BYTES = 1024
_LISTED = 3


@dataclass(frozen=True)
class RunFailure:
    reason: str
    message: str


def _when(moment: datetime | None) -> tuple[bool, float]:
    """Sort key: known times first, earliest first."""
    return (moment is None, moment.timestamp() if moment is not None else 0.0)


def first_failed(graph: RunGraph, states: Mapping[str, NodeState]) -> str | None:
    """The key of the node that failed first (by finish time, then launch order)."""
    failed = [
        (_when(states[node.key].finished_at), index, node.key)
        for index, node in enumerate(graph.nodes)
        if states[node.key].phase == "Failed"
    ]
    return min(failed)[2] if failed else None


def node_failure_text(key: str, state: NodeState) -> str:
    code = f", exit code {state.exit_code}" if state.exit_code is not None else ""
    detail = f": {state.message}" if state.message else ""
    return f"{key} failed ({state.reason or 'Error'}{code}){detail}"


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_LISTED])
    return shown + (f" +{len(keys) - _LISTED} more" if len(keys) > _LISTED else "")


def progress_message(
    graph: RunGraph,
    states: Mapping[str, NodeState],
    policies: Mapping[str, EffectivePolicy],
    *,
    suspended: bool,
    stopping_after: str | None,
) -> str:
    """`3/6 done; c not started (FailedCreate): cannot create the pod: ...; running: a, b;
    entities[2] retry 2/3 at 12:00:05Z; ...`"""
    total = len(graph.nodes)
    done = sum(1 for state in states.values() if state.phase == "Succeeded")
    parts = [f"{done}/{total} done"]
    by_phase: dict[str, list[str]] = {}
    for node in graph.nodes:
        by_phase.setdefault(states[node.key].phase, []).append(node.key)
    if suspended:
        parts.insert(0, "suspended")
    if stopping_after is not None:
        parts.append(f"stopping: {node_failure_text(stopping_after, states[stopping_after])}")
    running = by_phase.get("Running", [])
    stuck = [key for key in running if states[key].not_starting]
    started = [key for key in running if not states[key].not_starting]
    if stuck:  # the fact that needs someone: first
        state = states[stuck[0]]
        more = f" (+{len(stuck) - 1} more not started)" if len(stuck) > 1 else ""
        parts.append(f"{stuck[0]} not started ({state.reason}): {state.message}{more}")
    if started:
        parts.append(f"running: {_listing(started)}")
    waiting = by_phase.get("Waiting", [])
    if waiting:
        key = min(waiting, key=lambda k: _when(states[k].next_retry_at))
        state = states[key]
        limit = policies[graph.by_key[key].stage.name].limit
        when = f" at {format_clock(state.next_retry_at)}" if state.next_retry_at else ""
        more = f" (+{len(waiting) - 1} more waiting)" if len(waiting) > 1 else ""
        if state.provider_failures:
            circuits = ", ".join(sorted(state.provider_failures))
            parts.append(
                f"{key} relaunch{when}, no retry used if circuit {circuits} opens first{more}"
            )
        else:
            parts.append(f"{key} retry {state.failures}/{limit}{when}{more}")
    blocked = by_phase.get("Blocked", [])
    if blocked:
        state = states[blocked[0]]
        more = f" (+{len(blocked) - 1} more blocked)" if len(blocked) > 1 else ""
        parts.append(f"{blocked[0]} blocked: {state.message or 'circuit open'}{more}")
    failed = by_phase.get("Failed", [])
    if failed and stopping_after is None:
        parts.append(f"failed: {_listing(failed)}")
    return truncate_utf8("; ".join(parts), RUN_MESSAGE_BYTES)
