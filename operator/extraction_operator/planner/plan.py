"""`plan_run`: from one snapshot of a run to everything the shell should do about it.

The steps, in order, each a method of `_Planner`:
1. re-drive (a new `extraction.dev/redrive` value resets Failed/Skipped nodes);
2. account the Jobs (adopt newer attempts, settle finished ones, notice lost ones, say why an
   attempt cannot start, end attempts past their start deadline or stage timeout);
3. the run deadline (fail what is unfinished, delete what is active);
4. skip what can no longer run (failFast, or dependants of failed nodes);
5. launch what is ready, within `parallelism` and the circuit gates;
6. derive the run's phase, message, conditions, Events and the next timer.
Pure: the snapshot is the whole input and `snapshot.now` the only clock.

Choices the design left open, made here:
- An invalid spec leaves the run `Pending` (or its terminal phase) with `Stalled` True, reason
  `InvalidSpec`: it never started, and nothing it could do would make it progress.
- A terminal run (Succeeded/Failed) stays terminal until a re-drive, even if a late Job turns up
  (that Job is deleted, never accounted into a new run phase).
- The run deadline keeps counting while the run is suspended (suspend stops launches, not time).
- Under failFast, nodes waiting for a retry or a circuit are `Skipped` along with pending ones.
- A re-drive annotation seen on a run with nothing failed is only recorded (no reset, no Event).
- `status.circuits` is not the planner's: whatever the shell put there is carried over as is."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from extraction_operator.api.models import ExtractionRunSpec
from extraction_operator.api.validation import Problem, parse_spec

from .access import access_condition
from .accounting import adopt_newer_jobs, settle_provider_failure, settle_running
from .backoff import EffectivePolicy, effective_policy
from .classify import CIRCUIT_OPEN, DEADLINE_EXCEEDED
from .conditions import DesiredCondition, build_conditions
from .context import NodeContext
from .events import EventLog
from .gates import Blockage, blockage
from .jobs import build_job
from .messages import clean_message, truncate_utf8
from .node_state import LAUNCHABLE, TERMINAL, NodeState, parse_node_state, serialize_node_state
from .nodes import Node, RunGraph, build_graph, topological_order
from .outage import PROVIDER_OUTAGE, ProbeSlots, probing_circuits
from .run_record import RunRecord, parse_run_record
from .starting import start_timeout
from .summary import RunFailure, first_failed, node_failure_text, progress_message
from .timefmt import as_utc, ceil_second, floor_second, format_clock, format_time, seconds_until
from .types import CircuitGate, ObservedJob, Plan, RunSnapshot

# Node messages share this budget: at worst (every node failed with a 1 KiB message) each is cut
# down so a run of MAX_NODES stays well inside etcd's object limit. Above it, messages shrink.
NODE_MESSAGE_BUDGET = 200 * 1024
MIN_NODE_MESSAGE = 96


def plan_run(snapshot: RunSnapshot) -> Plan:
    """The plan for one run. Never raises for bad spec or status: they become conditions."""
    old_status: Mapping[str, Any] = snapshot.status if isinstance(snapshot.status, Mapping) else {}
    spec, problems = parse_spec(snapshot.spec)
    if spec is None or problems:
        return _plan_invalid_spec(snapshot, old_status, problems)
    return _Planner(snapshot, spec, old_status).plan()


def _plan_invalid_spec(
    snapshot: RunSnapshot, old_status: Mapping[str, Any], problems: list[Problem]
) -> Plan:
    """An invalid spec launches nothing: the run is `Pending` (it never started) or keeps its
    terminal phase, with `Stalled` True / reason `InvalidSpec` naming every problem."""
    now = as_utc(snapshot.now)
    detail = "; ".join(str(problem) for problem in problems) or "spec could not be parsed"
    message = truncate_utf8(f"invalid spec: {detail}", 4096)
    record = parse_run_record(old_status)
    status: dict[str, Any] = {
        "phase": record.phase if record.terminal else "Pending",
        "observedGeneration": snapshot.generation,
        "message": message,
    }
    for key in (
        "startedAt",
        "finishedAt",
        "progress",
        "nodes",
        "circuits",
        "redrive",
        "redrivenAt",
    ):
        if key in old_status and old_status[key] not in (None, "", {}):
            status[key] = old_status[key]
    status["conditions"] = build_conditions(
        old_status.get("conditions"),
        [
            DesiredCondition("Ready", "False", "InvalidSpec", message),
            DesiredCondition("Reconciling", "False", "InvalidSpec", message),
            DesiredCondition("Stalled", "True", "InvalidSpec", message),
        ],
        snapshot.generation,
        now,
    )
    log = EventLog()
    if old_status.get("message") != message:
        log.run("Warning", "InvalidSpec", message)
    return Plan(
        status=status,
        status_changed=status != dict(old_status),
        events=log.finish(),
    )


class _Planner:
    def __init__(
        self, snapshot: RunSnapshot, spec: ExtractionRunSpec, old_status: Mapping[str, Any]
    ) -> None:
        self.snapshot = snapshot
        self.spec = spec
        self.old_status = old_status
        self.now = as_utc(snapshot.now)
        self.graph: RunGraph = build_graph(spec)
        self.record: RunRecord = parse_run_record(old_status)
        self.old_phase = self.record.phase
        raw_nodes = old_status.get("nodes")
        raw_nodes = raw_nodes if isinstance(raw_nodes, Mapping) else {}
        self.states: dict[str, NodeState] = {
            node.key: parse_node_state(raw_nodes.get(node.key)) for node in self.graph.nodes
        }
        self.policies: dict[str, EffectivePolicy] = {
            stage.name: effective_policy(spec, stage) for stage in spec.stages
        }
        self.start_timeouts: dict[str, int] = {
            stage.name: start_timeout(spec, stage) for stage in spec.stages
        }
        self.gates: dict[str, CircuitGate] = {
            name: dataclasses.replace(
                gate, retry_at=as_utc(gate.retry_at) if gate.retry_at else None
            )
            for name, gate in snapshot.circuits.items()
        }
        self.jobs: dict[str, list[ObservedJob]] = {node.key: [] for node in self.graph.nodes}
        for job in snapshot.jobs:
            if job.node in self.jobs:
                self.jobs[job.node].append(job)
        for jobs in self.jobs.values():
            jobs.sort(key=lambda job: (job.attempt, job.name))
        self.log = EventLog()
        self.timers: list[datetime] = []
        self.create: list[dict[str, Any]] = []
        self.deletions: list[str] = []  # attempts ended by a deadline the operator enforces
        self.deadline_hit = False

    # ------------------------------------------------------------------------------- steps

    def plan(self) -> Plan:
        self._redrive()
        self._account_jobs()
        deadline = self._deadline()
        if not self.record.terminal and deadline is not None and self.now >= deadline:
            self._expire()
        stopping_after = self._skip_unreachable()
        if self._may_launch(stopping_after):
            self._launch()
        deadline = self._deadline()  # the first launch starts the clock
        if deadline is not None:
            self.timers.append(deadline)
        return self._finish(stopping_after)

    def _redrive(self) -> None:
        value = self.snapshot.redrive
        if value is None or value == self.record.redrive:
            return
        self.record.redrive = value
        resettable = [
            node
            for node in self.graph.nodes
            if self.states[node.key].phase in ("Failed", "Skipped")
        ]
        if not resettable and self.record.phase != "Failed":
            return  # nothing to re-drive (e.g. the annotation was set at creation): just note it
        for node in resettable:
            state = self.states[node.key]
            state.phase = "Pending"
            state.failures = 0
            state.clear_outcome()
        self.record.phase = "Running"
        self.record.redriven_at = floor_second(self.now)
        self.log.run(
            "Normal",
            "Redriven",
            f"re-drive {value!r}: {len(resettable)} failed or skipped node(s) reset to Pending",
            first=True,
        )

    def _context(self, node: Node) -> NodeContext:
        return NodeContext(
            run_uid=self.snapshot.uid,
            policy=self.policies[node.stage.name],
            gates=self.gates,
            now=self.now,
            log=self.log,
            launched=frozenset(self.snapshot.launched),
            start_timeout=self.start_timeouts[node.stage.name],
            deletions=self.deletions,
        )

    def _account_jobs(self) -> None:
        for node in self.graph.nodes:
            state = self.states[node.key]
            jobs = self.jobs[node.key]
            ctx = self._context(node)
            adopt_newer_jobs(node, state, jobs, ctx)
            if state.phase == "Running" and self.record.started_at is None:
                self.record.started_at = state.started_at or floor_second(self.now)
            for recheck in (
                settle_running(node, state, jobs, ctx),
                settle_provider_failure(node, state, ctx),
            ):
                if recheck is not None:
                    self.timers.append(recheck)

    def _deadline(self) -> datetime | None:
        seconds = self.spec.active_deadline_seconds
        start = self.record.started_at
        if seconds is None or start is None:
            return None
        if self.record.redriven_at is not None and self.record.redriven_at > start:
            start = self.record.redriven_at
        return start + timedelta(seconds=seconds)

    def _expire(self) -> None:
        """The run deadline passed (maybe while the operator was down): stop everything."""
        self.deadline_hit = True
        message = f"the run's activeDeadlineSeconds ({self.spec.active_deadline_seconds}s) passed"
        for node in self.graph.nodes:
            state = self.states[node.key]
            if state.phase in TERMINAL:
                continue
            state.phase = "Failed" if state.phase != "Pending" else "Skipped"
            state.clear_outcome()
            if state.phase == "Failed":
                state.finished_at = floor_second(self.now)
            state.reason = DEADLINE_EXCEEDED
            state.message = message

    def _skip(self, state: NodeState, reason: str, message: str) -> None:
        state.phase = "Skipped"
        state.clear_outcome()
        state.reason = reason
        state.message = message

    def _skip_unreachable(self) -> str | None:
        """Mark nodes that can no longer run `Skipped`. Returns the failed node that stops the
        run under failFast, or None."""
        first = first_failed(self.graph, self.states)
        if first is not None and self.spec.fail_fast:
            for node in self.graph.nodes:
                state = self.states[node.key]
                if state.phase in LAUNCHABLE:
                    self._skip(state, "FailFast", f"not run: {first} failed and failFast is set")
            return first
        for node in topological_order(self.graph):
            state = self.states[node.key]
            if state.phase not in LAUNCHABLE:
                continue
            broken = next(
                (
                    dep
                    for dep in node.dependencies
                    if self.states[dep].phase in ("Failed", "Skipped")
                ),
                None,
            )
            if broken is not None:
                why = self.states[broken].phase.lower()
                self._skip(state, "DependencyFailed", f"not run: dependency {broken} {why}")
        return None

    def _may_launch(self, stopping_after: str | None) -> bool:
        return not (
            self.record.terminal
            or self.spec.suspend
            or self.deadline_hit
            or stopping_after is not None
        )

    def _active_count(self) -> int:
        # Every Active Job of this run counts, even one of a node the spec no longer has.
        active = {job.name for job in self.snapshot.jobs if job.phase == "Active"}
        for key, state in self.states.items():
            if state.phase == "Running":
                active.add(state.job_name or f"[{key}]")
        return len(active)

    def _probe_slots(self) -> ProbeSlots:
        """A running node guarded by a recovering circuit is its prober (see `outage`)."""
        slots = ProbeSlots()
        for node in self.graph.nodes:
            if self.states[node.key].phase == "Running":
                slots.occupy(node.stage.circuits, node.key)
        return slots

    def _launch(self) -> None:
        capacity = self.spec.parallelism - self._active_count()
        slots = self._probe_slots()
        for node in self.graph.nodes:
            state = self.states[node.key]
            if state.phase not in LAUNCHABLE:
                continue
            if any(self.states[dep].phase != "Succeeded" for dep in node.dependencies):
                continue
            # A Waiting node waits out its backoff; a Blocked one goes as soon as its circuits let
            # it (its nextRetryAt is when they may next be probed, which a close makes moot).
            if state.phase == "Waiting" and state.next_retry_at and state.next_retry_at > self.now:
                self.timers.append(state.next_retry_at)
                continue
            blocked = blockage(node.stage.circuits, self.gates, self.now)
            if blocked is not None:
                self._block(node, state, blocked)
                continue
            probing = probing_circuits(node.stage.circuits, self.gates)
            taken = slots.holder(probing)
            if taken is not None:
                self._await_probe(node, state, *taken)
                continue
            if capacity <= 0:
                continue
            self._start(node, state)
            capacity -= 1
            if probing:
                slots.occupy(probing, node.key)
                self.log.node(
                    node.stage.name,
                    node.key,
                    "Normal",
                    "StageProbing",
                    f"{node.key} launched to probe circuit {', '.join(probing)}; "
                    "the other stages it guards wait for the verdict",
                )

    def _block(self, node: Node, state: NodeState, blocked: Blockage) -> None:
        until = ceil_second(blocked.until)
        if state.phase != "Blocked":
            names = ", ".join(blocked.circuits)
            self.log.node(
                node.stage.name,
                node.key,
                "Normal",
                "StageBlocked",
                f"{node.key} waits for circuit {names} (open until {format_clock(until)})",
            )
        state.phase = "Blocked"
        state.next_retry_at = until
        self.timers.append(until)
        if state.reason == PROVIDER_OUTAGE:
            return  # its message says why it waits, which outlasts any one recovery time
        state.reason = CIRCUIT_OPEN
        state.message = (
            f"circuit {', '.join(blocked.circuits)} open; launch at {format_clock(until)}"
        )

    def _await_probe(self, node: Node, state: NodeState, circuit: str, prober: str) -> None:
        """Hold a node while another of the run's pods probes its recovering circuit; the
        circuit's next transition (an annotation change) wakes the run up again."""
        if state.phase != "Blocked":
            self.log.node(
                node.stage.name,
                node.key,
                "Normal",
                "StageBlocked",
                f"{node.key} waits while {prober} probes circuit {circuit}",
            )
        state.phase = "Blocked"
        state.next_retry_at = None
        if state.reason == PROVIDER_OUTAGE:
            return
        state.reason = CIRCUIT_OPEN
        state.message = f"circuit {circuit} recovering: waiting while {prober} probes it"

    def _start(self, node: Node, state: NodeState) -> None:
        attempt = state.attempts + 1
        manifest = build_job(
            spec=self.spec,
            node=node,
            attempt=attempt,
            run_name=self.snapshot.name,
            namespace=self.snapshot.namespace,
            run_uid=self.snapshot.uid,
            spellings=self.graph.spellings,
        )
        self.create.append(manifest)
        state.phase = "Running"
        state.attempts = attempt
        state.job_name = manifest["metadata"]["name"]
        state.started_at = floor_second(self.now)
        state.clear_outcome()
        if self.record.started_at is None:
            self.record.started_at = floor_second(self.now)
        self.log.node(
            node.stage.name,
            node.key,
            "Normal",
            "StageStarted",
            f"{node.key}: started attempt {attempt} (job {state.job_name})",
        )

    # ------------------------------------------------------------------------------ result

    def _phase(self) -> str:
        if self.record.terminal:
            return self.record.phase  # terminal is sticky until a re-drive
        phases = [state.phase for state in self.states.values()]
        if all(phase in TERMINAL for phase in phases):
            return "Succeeded" if all(phase == "Succeeded" for phase in phases) else "Failed"
        if self.spec.suspend:
            return "Suspended"
        return "Pending" if self.record.started_at is None else "Running"

    def _failure(self, finished_at: datetime | None) -> RunFailure:
        deadline = self._deadline()
        if self.deadline_hit or (
            deadline is not None and finished_at is not None and finished_at >= deadline
        ):
            return RunFailure(
                DEADLINE_EXCEEDED,
                f"the run exceeded its activeDeadlineSeconds "
                f"({self.spec.active_deadline_seconds}s)",
            )
        first = first_failed(self.graph, self.states)
        if first is None:
            return RunFailure("Failed", "the run failed")
        state = self.states[first]
        return RunFailure(state.reason or "Error", node_failure_text(first, state))

    def _conditions(
        self, phase: str, message: str, failure: RunFailure | None
    ) -> list[DesiredCondition]:
        if phase == "Succeeded":
            return [
                DesiredCondition("Ready", "True", "Succeeded", message),
                DesiredCondition("Reconciling", "False", "Succeeded", message),
                DesiredCondition("Stalled", "False", "Succeeded", message),
            ]
        if phase == "Failed" and failure is not None:
            return [
                DesiredCondition("Ready", "False", failure.reason, message),
                DesiredCondition("Reconciling", "False", failure.reason, message),
                DesiredCondition("Stalled", "True", failure.reason, message),
            ]
        if phase == "Suspended":
            return [
                DesiredCondition("Ready", "False", "Suspended", message),
                DesiredCondition("Reconciling", "False", "Suspended", message),
                DesiredCondition("Stalled", "False", "Suspended", message),
            ]
        phases = {state.phase for state in self.states.values()}
        reason = (
            "Running"
            if "Running" in phases
            else "WaitingForRetry"
            if "Waiting" in phases
            else "CircuitOpen"
            if "Blocked" in phases
            else "Pending"
        )
        return [
            DesiredCondition("Ready", "False", reason, message),
            DesiredCondition("Reconciling", "True", reason, message),
            DesiredCondition("Stalled", "False", reason, message),
        ]

    def _apply_message_budget(self) -> None:
        """Shrink node messages when together they would outgrow the status budget. Done on the
        state itself, before anything quotes a message, so a re-plan reads back what it wrote."""
        kept = [
            state for state in self.states.values() if state.message and state.phase != "Succeeded"
        ]
        total = sum(len((state.message or "").encode("utf-8")) for state in kept)
        if total <= NODE_MESSAGE_BUDGET:
            return
        cap = max(MIN_NODE_MESSAGE, NODE_MESSAGE_BUDGET // len(kept))
        for state in kept:
            state.message = clean_message(state.message, cap)

    def _nodes_status(self) -> dict[str, Any]:
        return {node.key: serialize_node_state(self.states[node.key]) for node in self.graph.nodes}

    def _run_events(self, phase: str, message: str) -> None:
        if phase == self.old_phase:
            return
        if phase == "Succeeded":
            self.log.run("Normal", "RunSucceeded", message)
        elif phase == "Failed":
            self.log.run("Warning", "RunFailed", message)
        elif phase == "Suspended":
            self.log.run("Normal", "RunSuspended", message)
        elif self.old_phase == "Suspended":
            self.log.run("Normal", "RunResumed", message)

    def _delete_jobs(self, phase: str) -> list[str]:
        """Attempts the operator ended (a start deadline, a stage timeout), and the active Jobs of
        a run that is over (the run deadline, or a Job adopted too late)."""
        names = dict.fromkeys(self.deletions)
        if phase in ("Succeeded", "Failed"):
            names.update(
                dict.fromkeys(
                    job.name
                    for node in self.graph.nodes
                    for job in self.jobs[node.key]
                    if job.phase == "Active" and not job.deleting
                )
            )
        return list(names)

    def _finish(self, stopping_after: str | None) -> Plan:
        self._apply_message_budget()
        phase = self._phase()
        terminal = phase in ("Succeeded", "Failed")
        if terminal:
            self.record.finished_at = self.record.finished_at or floor_second(self.now)
        else:
            self.record.finished_at = None
        failure = self._failure(self.record.finished_at) if phase == "Failed" else None
        if failure is not None:
            message = failure.message
        elif phase == "Succeeded":
            message = f"{len(self.graph.nodes)}/{len(self.graph.nodes)} done"
        else:
            message = progress_message(
                self.graph,
                self.states,
                self.policies,
                suspended=phase == "Suspended",
                stopping_after=stopping_after,
            )
        message = truncate_utf8(message, 1024)
        done = sum(1 for state in self.states.values() if state.phase == "Succeeded")
        status: dict[str, Any] = {
            "phase": phase,
            "observedGeneration": self.snapshot.generation,
        }
        if self.record.started_at is not None:
            status["startedAt"] = format_time(self.record.started_at)
        if self.record.finished_at is not None:
            status["finishedAt"] = format_time(self.record.finished_at)
        status["progress"] = f"{done}/{len(self.graph.nodes)}"
        status["message"] = message
        access = access_condition(
            any(stage.circuits for stage in self.spec.stages),
            self.snapshot.breaker_access,
            self.old_status.get("conditions"),
            self.log,
        )
        status["conditions"] = build_conditions(
            self.old_status.get("conditions"),
            self._conditions(phase, message, failure) + access,
            self.snapshot.generation,
            self.now,
        )
        status["nodes"] = self._nodes_status()
        circuits = self.old_status.get("circuits")
        if isinstance(circuits, Mapping) and circuits:
            status["circuits"] = dict(circuits)  # written by the shell from the annotation
        if self.record.redrive is not None:
            status["redrive"] = self.record.redrive
        if self.record.redriven_at is not None:
            status["redrivenAt"] = format_time(self.record.redriven_at)
        self._run_events(phase, message)
        timers = [] if terminal else [t for t in self.timers if t > self.now]
        requeue = min((seconds_until(t, self.now) for t in timers), default=None)
        return Plan(
            status=status,
            status_changed=status != dict(self.old_status),
            create_jobs=self.create,
            delete_jobs=self._delete_jobs(phase),
            events=self.log.finish(),
            requeue_after=requeue,
        )
