"""Builders and a tiny simulated cluster for the planner tests.

`FakeCluster` plays the shell: it applies a plan's creates and deletes to a dict of Jobs, lets a
test finish Jobs with chosen outcomes, and feeds the planner's own status back in, the way the
kopf shell does between reconciles."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from extraction_operator.api.constants import LABEL_ATTEMPT
from extraction_operator.planner import (
    ANNOTATION_NODE,
    CircuitGate,
    ObservedJob,
    Plan,
    RunSnapshot,
    plan_run,
)
from extraction_operator.planner.types import StartProblem

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
RUN = "xr"
UID = "0b6c1c7e-uid"


def stage(name: str, *deps: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "dependsOn": list(deps), "command": ["run", name], **fields}


def spec(*stages: dict[str, Any], **fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"image": "img:1", "stages": list(stages)}
    out.update(fields)
    return out


def no_jitter(limit: int = 3, initial: float = 10, factor: float = 2, maximum: float = 300) -> dict:
    return {
        "limit": limit,
        "backoff": {
            "initialSeconds": initial,
            "factor": factor,
            "maxSeconds": maximum,
            "jitter": "none",
        },
    }


def snapshot(
    run_spec: dict[str, Any],
    status: dict[str, Any] | None = None,
    jobs: list[ObservedJob] | tuple[ObservedJob, ...] = (),
    *,
    now: datetime = NOW,
    redrive: str | None = None,
    circuits: dict[str, CircuitGate] | None = None,
    generation: int = 1,
    name: str = RUN,
) -> RunSnapshot:
    return RunSnapshot(
        name=name,
        namespace="ns",
        uid=UID,
        generation=generation,
        created_at=NOW,
        spec=run_spec,
        status=status or {},
        redrive=redrive,
        jobs=tuple(jobs),
        circuits=circuits or {},
        now=now,
    )


def observed(
    name: str,
    node: str,
    attempt: int,
    phase: str = "Active",
    *,
    exit_code: int | None = None,
    message: str | None = None,
    failure_reason: str | None = None,
    pod_reason: str | None = None,
    started_at: datetime | None = NOW,
    finished_at: datetime | None = None,
    deleting: bool = False,
    pending: bool = False,
    start_problem: StartProblem | None = None,
    container_started_at: datetime | None = None,
    exit_reason: str | None = None,
) -> ObservedJob:
    return ObservedJob(
        name=name,
        node=node,
        attempt=attempt,
        uid=f"uid-{name}",
        phase=phase,  # type: ignore[arg-type]
        failure_reason=failure_reason,
        exit_code=exit_code,
        message=message,
        pod_reason=pod_reason,
        started_at=started_at,
        finished_at=finished_at,
        deleting=deleting,
        pending=pending,
        start_problem=start_problem,
        container_started_at=container_started_at,
        exit_reason=exit_reason,
    )


def created_nodes(plan: Plan) -> list[str]:
    return [job["metadata"]["annotations"][ANNOTATION_NODE] for job in plan.create_jobs]


def event_reasons(plan: Plan) -> list[str]:
    return [event.reason for event in plan.events]


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(item for item in status["conditions"] if item["type"] == kind)


def status_bytes(status: dict[str, Any]) -> int:
    return len(json.dumps(status, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


@dataclass
class FakeCluster:
    """A run's Jobs and status, advanced by applying plans."""

    run_spec: dict[str, Any]
    now: datetime = NOW
    status: dict[str, Any] = field(default_factory=dict)
    jobs: dict[str, ObservedJob] = field(default_factory=dict)
    redrive: str | None = None
    circuits: dict[str, CircuitGate] = field(default_factory=dict)
    history: list[Plan] = field(default_factory=list)

    def snapshot(self) -> RunSnapshot:
        return snapshot(
            self.run_spec,
            self.status,
            list(self.jobs.values()),
            now=self.now,
            redrive=self.redrive,
            circuits=self.circuits,
        )

    def step(self) -> Plan:
        """Plan, then do what the plan says (create, delete, write status). A deleted Job lingers
        (`deleting`, its pod terminating) until the next step, as the garbage collector makes it
        on a real cluster: the planner must not count on it being gone at once."""
        self.collect_garbage()
        plan = plan_run(self.snapshot())
        for manifest in plan.create_jobs:
            meta = manifest["metadata"]
            self.jobs[meta["name"]] = observed(
                meta["name"],
                meta["annotations"][ANNOTATION_NODE],
                int(meta["labels"][LABEL_ATTEMPT]),
                started_at=self.now,
            )
        for name in plan.delete_jobs:
            if name in self.jobs:
                self.jobs[name] = replace(self.jobs[name], deleting=True)
        self.status = plan.status
        self.history.append(plan)
        return plan

    def collect_garbage(self) -> None:
        """Jobs deleted by an earlier step are gone now."""
        self.jobs = {name: job for name, job in self.jobs.items() if not job.deleting}

    def active(self) -> list[ObservedJob]:
        return [job for job in self.jobs.values() if job.phase == "Active" and not job.deleting]

    def job_of(self, node: str) -> ObservedJob:
        """The newest Job of a node."""
        return max((j for j in self.jobs.values() if j.node == node), key=lambda j: j.attempt)

    def finish(
        self,
        node: str,
        exit_code: int = 0,
        *,
        message: str | None = None,
        failure_reason: str | None = None,
        pod_reason: str | None = None,
    ) -> None:
        job = self.job_of(node)
        assert job.phase == "Active", f"{job.name} already finished"
        self.jobs[job.name] = replace(
            job,
            phase="Succeeded" if exit_code == 0 and failure_reason is None else "Failed",
            exit_code=exit_code,
            message=message,
            failure_reason=failure_reason or (None if exit_code == 0 else "BackoffLimitExceeded"),
            pod_reason=pod_reason,
            finished_at=self.now,
        )

    def cannot_start(self, node: str, reason: str | None = None, message: str = "") -> None:
        """The node's current Job has not started; `reason` (None: the cluster gives none)."""
        job = self.job_of(node)
        problem = StartProblem(reason, message or f"{reason} message") if reason else None
        self.jobs[job.name] = replace(job, pending=True, start_problem=problem)

    def starts(self, node: str) -> None:
        """The node's current Job's stage container starts running now."""
        job = self.job_of(node)
        self.jobs[job.name] = replace(
            job, pending=False, start_problem=None, container_started_at=self.now
        )

    def tick(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def node(self, key: str) -> dict[str, Any]:
        return self.status["nodes"][key]
