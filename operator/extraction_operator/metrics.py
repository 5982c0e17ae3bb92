"""Prometheus metrics of the operator.

Label cardinality is bounded on purpose: no run, node or Job names as labels (a cluster can hold
thousands of runs), only small closed sets (phase, outcome, reason) and circuit names, which are a
handful per installation (`llm`, `embeddings`). Per-run detail belongs in status and Events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from extraction_operator.planner.node_state import wire_phase_in_flight
from extraction_operator.planner.startup import cause_of, metric_reason

RUN_PHASES = ("Pending", "Running", "Succeeded", "Failed", "Suspended")
DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, float("inf"))


class _RunPhaseCollector(Collector):
    """Counts runs per phase at scrape time from the operator's cache, so a deleted run can never
    leave a stale gauge behind."""

    def __init__(self, source: Callable[[], Iterable[str]]) -> None:
        self._source = source

    def collect(self) -> Iterable[GaugeMetricFamily]:
        counts = dict.fromkeys(RUN_PHASES, 0)
        for phase in self._source():
            counts[phase] = counts.get(phase, 0) + 1
        family = GaugeMetricFamily(
            "extraction_runs", "ExtractionRuns known to the operator, by phase", labels=["phase"]
        )
        for phase, count in counts.items():
            family.add_metric([phase], count)
        yield family


class Metrics:
    """Every metric the operator exports, in one registry of its own (tests embed operators)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.stage_attempts = Counter(
            "extraction_stage_attempts",
            "Finished stage attempts by outcome",
            ["outcome"],
            registry=r,
        )
        self.stage_duration = Histogram(
            "extraction_stage_duration_seconds",
            "Wall time of finished stage attempts",
            ["outcome"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.job_launches = Counter(
            "extraction_job_launches", "Stage Jobs created (adoptions excluded)", registry=r
        )
        self.job_adoptions = Counter(
            "extraction_job_adoptions", "Stage Jobs found existing and adopted", registry=r
        )
        self.retries = Counter("extraction_retries", "Stage retries scheduled", registry=r)
        self.start_problems = Counter(
            "extraction_stage_start_problems",
            "Causes that kept a stage attempt's pod from starting, each counted once per attempt "
            "(reason: FailedCreate, Unschedulable, ErrImagePull, CreateContainerConfigError, "
            "..., Other)",
            ["reason"],
            registry=r,
        )
        self.circuit_transitions = Counter(
            "extraction_circuit_transitions",
            "Circuit breaker transitions seen by the operator",
            ["circuit", "state"],
            registry=r,
        )
        self.runs_with_open_circuit = Gauge(
            "extraction_runs_with_open_circuit",
            "Runs whose breaker annotation shows an open or half-open circuit",
            registry=r,
        )
        self.reconcile_duration = Histogram(
            "extraction_reconcile_duration_seconds",
            "Time to reconcile one run (plan and writes)",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.reconcile_errors = Counter(
            "extraction_reconcile_errors", "Reconciles that failed, by kind", ["kind"], registry=r
        )
        self.status_conflicts = Counter(
            "extraction_status_conflicts",
            "Status writes that lost a compare-and-swap race and were re-planned",
            registry=r,
        )
        self.redrives = Counter(
            "extraction_redrives", "Re-drives, by trigger", ["trigger"], registry=r
        )
        self.spec_handler_calls = Counter(
            "extraction_spec_handler_invocations",
            "Invocations of the run's spec handlers (create/update/resume)",
            ["cause"],
            registry=r,
        )

    def watch_run_phases(self, source: Callable[[], Iterable[str]]) -> None:
        self.registry.register(_RunPhaseCollector(source))

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        start_http_server(port, addr=addr, registry=self.registry)

    def record_node_transitions(
        self, old_nodes: Mapping[str, Any], new_nodes: Mapping[str, Any]
    ) -> None:
        """Count finished attempts, scheduled retries and newly reported start problems from the
        change of node status."""
        for key, new in new_nodes.items():
            if not isinstance(new, Mapping):
                continue
            old = old_nodes.get(key) if isinstance(old_nodes.get(key), Mapping) else {}
            assert isinstance(old, Mapping)
            for reason in new_start_causes(old, new):
                self.start_problems.labels(metric_reason(reason)).inc()
            finished_attempt = new.get("attempts") == old.get("attempts") and wire_phase_in_flight(
                old
            )
            if not finished_attempt or wire_phase_in_flight(new):
                continue
            outcome = _outcome(new)
            self.stage_attempts.labels(outcome).inc()
            duration = _duration(new)
            if duration is not None:
                self.stage_duration.labels(outcome).observe(duration)
            if new.get("phase") == "Waiting":
                self.retries.inc()


def _reasons(node: Mapping[str, Any]) -> list[str]:
    value = node.get("startProblems")
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def new_start_causes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Start-problem reasons in `new` whose cause `old` (the same attempt) had not reported: the
    ones the planner posted a `StageCannotStart` Event for."""
    same_attempt = old.get("attempts") == new.get("attempts")
    seen = {cause_of(reason) for reason in _reasons(old)} if same_attempt else set()
    fresh: list[str] = []
    for reason in _reasons(new):
        if cause_of(reason) not in seen:
            seen.add(cause_of(reason))
            fresh.append(reason)
    return fresh


def _outcome(node: Mapping[str, Any]) -> str:
    if node.get("phase") == "Succeeded":
        return "succeeded"
    reason = str(node.get("reason") or "Error")
    return {
        "CircuitOpen": "circuit_open",
        "DeadlineExceeded": "deadline_exceeded",
        "PodLost": "pod_lost",
        "NonRetryable": "non_retryable",
        "StartDeadlineExceeded": "start_deadline_exceeded",
        "StartError": "start_error",
    }.get(reason, "error")


def _duration(node: Mapping[str, Any]) -> float | None:
    try:
        start = datetime.fromisoformat(str(node["startedAt"]).replace("Z", "+00:00"))
        end = datetime.fromisoformat(str(node["finishedAt"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return None
    return max((end - start).total_seconds(), 0.0)
