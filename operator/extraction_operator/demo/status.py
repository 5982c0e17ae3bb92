"""Read what the demo shows out of raw ExtractionRun objects, tolerating anything malformed.

The demo reads runs as plain JSON from the API server; a half-written or unexpected status must
never crash the live view, so every accessor here falls back to an empty value instead of raising.
Nodes come back in the order of the DAG as written (`spec.stages`, shards by index), which is the
order a person reads a pipeline in. The CLI (`extraction-operator get` / `watch`) reads the same
rows, plus the stage graph (`spec_stages`) for its tree, the run's times and its circuits.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from extraction_operator.api.constants import ANNOTATION_REDRIVE, MAX_SHARDS

JSON = Mapping[str, Any]

TERMINAL_RUN_PHASES = frozenset({"Succeeded", "Failed"})
_SHARD_NODE = re.compile(r"^(?P<stage>.+)\[(?P<shard>\d+)\]$")


@dataclass(frozen=True)
class NodeRow:
    """One node of a run as the view shows it."""

    name: str
    phase: str
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None
    next_retry_at: datetime | None
    exit_code: int | None
    reason: str
    message: str
    job_name: str = ""  # the Job of the current or last attempt (`extraction-operator logs`)

    def duration(self, now: datetime) -> float | None:
        """Seconds from start to finish (or to `now` while running); None before it starts."""
        if self.started_at is None:
            return None
        end = self.finished_at or now
        return max(0.0, (end - self.started_at).total_seconds())


def mapping(value: Any) -> JSON:
    return value if isinstance(value, Mapping) else {}


def text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp (`2026-11-23T03:30:52Z`) as an aware datetime, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def run_key(run: JSON) -> str:
    """`namespace/name`, how runs are named on screen and in the summary."""
    meta = mapping(run.get("metadata"))
    return f"{text(meta.get('namespace')) or 'default'}/{text(meta.get('name'))}"


def run_phase(run: JSON) -> str:
    return text(mapping(run.get("status")).get("phase")) or "Pending"


def is_stalled(run: JSON) -> bool:
    """True when the operator says the run cannot progress without a change (kstatus Stalled)."""
    conditions = mapping(run.get("status")).get("conditions")
    if not isinstance(conditions, list):
        return False
    return any(
        isinstance(c, Mapping) and c.get("type") == "Stalled" and c.get("status") == "True"
        for c in conditions
    )


def is_finished(run: JSON) -> bool:
    """Succeeded, Failed, or Stalled (an invalid spec never runs: waiting for it is pointless)."""
    return run_phase(run) in TERMINAL_RUN_PHASES or is_stalled(run)


@dataclass(frozen=True)
class StageInfo:
    """One stage of `spec.stages` as the views draw it: where it is, how wide, what it follows."""

    name: str
    index: int
    shards: int
    depends_on: tuple[str, ...]

    @property
    def nodes(self) -> list[str]:
        """`stage`, or `stage[0]`..`stage[n-1]` when it fans out."""
        if self.shards == 1:
            return [self.name]
        return [f"{self.name}[{i}]" for i in range(self.shards)]


def spec_stages(run: JSON) -> list[StageInfo]:
    """The stages in spec order, the first of each name only; `depends_on` keeps only names of
    other stages of the run (a malformed or cyclic graph still draws, it never raises)."""
    stages = mapping(run.get("spec")).get("stages")
    found: dict[str, StageInfo] = {}
    raw_deps: dict[str, list[str]] = {}
    if isinstance(stages, list):
        for index, stage in enumerate(stages):
            name = text(mapping(stage).get("name"))
            if not name or name in found:
                continue
            # A hostile `shards` value must not expand into a huge table.
            shards = max(1, min(_int_or_none(mapping(stage).get("shards")) or 1, MAX_SHARDS))
            found[name] = StageInfo(name, index, shards, ())
            deps = mapping(stage).get("dependsOn")
            raw_deps[name] = [text(d) for d in deps] if isinstance(deps, list) else []
    result = []
    for name, info in found.items():
        deps = tuple(dict.fromkeys(d for d in raw_deps[name] if d in found and d != name))
        result.append(StageInfo(info.name, info.index, info.shards, deps))
    return result


def redrive_pending(run: JSON) -> bool:
    """True while a re-drive asked for (the `extraction.dev/redrive` annotation) has not been acted
    on yet (`status.redrive` still has another value): a finished run is about to run again."""
    annotations = mapping(mapping(run.get("metadata")).get("annotations"))
    asked = annotations.get(ANNOTATION_REDRIVE)
    return isinstance(asked, str) and asked != mapping(run.get("status")).get("redrive")


def _spec_stages(run: JSON) -> dict[str, tuple[int, int]]:
    """Stage name -> (position in spec.stages, shard count)."""
    return {stage.name: (stage.index, stage.shards) for stage in spec_stages(run)}


def expected_nodes(run: JSON) -> list[str]:
    """The nodes the spec expands into: a stage, or `stage[0]`..`stage[n-1]` when it fans out."""
    return [
        node
        for stage, (_, shards) in _spec_stages(run).items()
        for node in ([stage] if shards == 1 else [f"{stage}[{i}]" for i in range(shards)])
    ]


def _sort_key(name: str, order: Mapping[str, int]) -> tuple[int, str, int]:
    match = _SHARD_NODE.match(name)
    stage, shard = (match.group("stage"), int(match.group("shard"))) if match else (name, -1)
    return (order.get(stage, len(order)), stage, shard)


def node_rows(run: JSON) -> list[NodeRow]:
    """The run's nodes from `status.nodes`, in DAG order; nodes with no status yet appear as
    Pending so the whole pipeline (every shard included) is visible from the first frame."""
    nodes = mapping(mapping(run.get("status")).get("nodes"))
    order = {stage: index for stage, (index, _) in _spec_stages(run).items()}
    names = set(nodes) | set(expected_nodes(run))
    rows = []
    for name in sorted(names, key=lambda n: _sort_key(n, order)):
        node = mapping(nodes.get(name))
        rows.append(
            NodeRow(
                name=name,
                phase=text(node.get("phase")) or "Pending",
                attempts=_int_or_none(node.get("attempts")) or 0,
                started_at=parse_time(node.get("startedAt")),
                finished_at=parse_time(node.get("finishedAt")),
                next_retry_at=parse_time(node.get("nextRetryAt")),
                exit_code=_int_or_none(node.get("exitCode")),
                reason=text(node.get("reason")),
                message=text(node.get("message")),
                job_name=text(node.get("jobName")),
            )
        )
    return rows


# Which phase a fan-out stage shows for its shards: the first of these any shard is in, unless
# every shard is in the same phase.
_GROUP_PHASE_ORDER = ("Failed", "Running", "Blocked", "Waiting", "Pending", "Skipped", "Succeeded")


def group_phase(phases: list[str]) -> str:
    """The phase of a fan-out stage from its shards' phases: theirs when they agree; else Failed
    when one failed, Running while some shards are done and others not, and so on."""
    if not phases:
        return "Pending"
    if len(set(phases)) == 1:
        return phases[0]
    if "Failed" in phases:
        return "Failed"
    if "Succeeded" in phases and any(p in ("Pending", "Waiting") for p in phases):
        return "Running"  # under way: some shards are done, the rest are coming
    return next((p for p in _GROUP_PHASE_ORDER if p in phases), phases[0])


def phase_counts(phases: list[str]) -> str:
    """`1 Succeeded, 2 Running`, in the order of `_GROUP_PHASE_ORDER` (others last)."""
    order = {phase: i for i, phase in enumerate(_GROUP_PHASE_ORDER)}
    counted: dict[str, int] = {}
    for phase in phases:
        counted[phase] = counted.get(phase, 0) + 1
    ordered = sorted(counted, key=lambda p: (order.get(p, len(order)), p))
    return ", ".join(f"{counted[p]} {p}" for p in ordered)


def run_times(run: JSON) -> tuple[datetime | None, datetime | None]:
    """(`status.startedAt`, `status.finishedAt`)."""
    status = mapping(run.get("status"))
    return parse_time(status.get("startedAt")), parse_time(status.get("finishedAt"))


def is_suspended(run: JSON) -> bool:
    return mapping(run.get("spec")).get("suspend") is True


def circuit_summary(run: JSON) -> str:
    """`status.circuitSummary`, on one line (`llm: open, next probe 12:03:05Z`)."""
    return " ".join(text(mapping(run.get("status")).get("circuitSummary")).split())


@dataclass(frozen=True)
class CircuitRow:
    """One circuit breaker of a run, as the operator mirrors it in `status.circuits`."""

    name: str
    state: str
    failures: int
    opened_at: datetime | None
    last_error: str
    next_probe_at: datetime | None = None


def circuit_rows(run: JSON) -> list[CircuitRow]:
    """The run's circuits by name; empty when the run has none (or the status is malformed)."""
    circuits = mapping(mapping(run.get("status")).get("circuits"))
    rows = []
    for name in sorted(circuits):
        circuit = mapping(circuits[name])
        rows.append(
            CircuitRow(
                name=str(name),
                state=text(circuit.get("state")) or "closed",
                failures=_int_or_none(circuit.get("failures")) or 0,
                opened_at=parse_time(circuit.get("openedAt")),
                last_error=" ".join(text(circuit.get("lastError")).split()),
                next_probe_at=parse_time(circuit.get("nextProbeAt")),
            )
        )
    return rows


def format_duration(seconds: float | None) -> str:
    """`0.4s`, `12s`, `3m05s`; a dash before the node starts.

    Kubernetes timestamps usually have whole seconds, so a whole number of seconds is shown
    without a fraction it does not have, and zero as `<1s` rather than a misleading `0.0s`."""
    if seconds is None:
        return "-"
    if seconds < 60:
        if float(seconds).is_integer():
            return f"{seconds:.0f}s" if seconds else "<1s"
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest:02d}s"
