"""The planner's inputs and output: plain frozen data, so the kopf shell and the tests build them
the same way and a plan can be compared with another for equality (determinism)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

JobPhase = Literal["Active", "Succeeded", "Failed"]
GateState = Literal["closed", "open", "half-open"]
EventType = Literal["Normal", "Warning"]


@dataclass(frozen=True)
class StartProblem:
    """Why an attempt's pod has not started, as the cluster says it: the Job controller's
    `FailedCreate`, the scheduler's `Unschedulable`, a container's waiting reason
    (`ErrImagePull`, `CreateContainerConfigError`, ...) or a pod Warning Event (`FailedMount`).
    `message` is already worded for a person (see `startup.py`)."""

    reason: str
    message: str


@dataclass(frozen=True)
class ObservedJob:
    """One stage Job of this run, with what its pod said (see `observe.observe_job`)."""

    name: str
    node: str  # node key: "chunk" or "right[3]" (annotation extraction.dev/node)
    attempt: int
    uid: str
    phase: JobPhase
    failure_reason: str | None  # Job condition reason: DeadlineExceeded, BackoffLimitExceeded...
    exit_code: int | None  # pod containerStatuses[].state.terminated.exitCode
    message: str | None  # the stage's termination message (or log tail), nothing else
    pod_reason: str | None  # pod status.reason ("Evicted") or a DisruptionTarget reason
    started_at: datetime | None  # Job status.startTime
    finished_at: datetime | None  # completionTime, or the Failed condition's lastTransitionTime
    deleting: bool = False  # metadata.deletionTimestamp set
    # The Job controller's Failed condition message. Kept apart from `message` because it is
    # often about the operator's own settings ("Job has reached the specified backoff limit" is
    # about the backoffLimit 0 it always sets), not about what the stage did.
    job_message: str | None = None
    exit_reason: str | None = None  # terminated.reason of the stage container: OOMKilled, Error...
    # Positive evidence that the attempt has not started yet: the Job is active and has no pod,
    # or its pod's stage container has never run. False when unknown (no evidence either way),
    # so a start deadline never fires on a guess.
    pending: bool = False
    start_problem: StartProblem | None = None  # why it has not started, when the cluster says
    container_started_at: datetime | None = None  # when the stage container started running


@dataclass(frozen=True)
class CircuitGate:
    """The operator's view of one named breaker, derived by the shell from the run annotation."""

    state: GateState
    retry_at: datetime | None  # while open: when the recovery time passes
    # Bumped by every transition of the circuit: a stage's provider failure admitted under an
    # older generation happened before the circuit opened (see `outage.attribute`).
    generation: int = 0


@dataclass(frozen=True)
class BreakerAccess:
    """Whether the run's stage pods may keep its circuit breakers (read and patch the run), as the
    shell last learnt it; `message` names the ServiceAccount, what is missing, and the fix."""

    allowed: bool
    message: str


@dataclass(frozen=True)
class RunSnapshot:
    """Everything the planner may know about one run. `now` is its only clock."""

    name: str
    namespace: str
    uid: str
    generation: int
    created_at: datetime
    spec: Mapping[str, Any]
    status: Mapping[str, Any]
    redrive: str | None
    jobs: Sequence[ObservedJob]
    circuits: Mapping[str, CircuitGate]
    now: datetime
    # Jobs this operator process created itself whose launch the status may not record yet (its
    # status write lost a compare-and-swap, e.g. to kopf's own annotation patch). Such a Job is a
    # launch to finish recording, not an adoption: only a Job nobody here created is adopted.
    launched: frozenset[str] = frozenset()
    # None: not known this time (not checked, or the check failed): the last verdict stands.
    breaker_access: BreakerAccess | None = None


@dataclass(frozen=True)
class PlannedEvent:
    """A Kubernetes Event the shell should post on the run."""

    type: EventType
    reason: str
    message: str


@dataclass
class Plan:
    """What the shell should do, in this order: create Jobs, delete Jobs, write status (only when
    `status_changed`), post events, and look again after `requeue_after` seconds."""

    status: dict[str, Any]
    status_changed: bool
    create_jobs: list[dict[str, Any]] = field(default_factory=list)
    delete_jobs: list[str] = field(default_factory=list)
    events: list[PlannedEvent] = field(default_factory=list)
    requeue_after: float | None = None
