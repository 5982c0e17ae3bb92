"""Turn a raw batch/v1 Job, its pods and their Warning Events into an `ObservedJob`: the only
facts the planner uses. Whether an active Job's pod has started, and why not, is `startup.py`'s.

Pure and defensive: the shell feeds it whatever the watch delivered, which may be a half-written
object, a Job someone else labelled, or a pod already gone. Anything that is not one of our stage
Jobs gives None; anything missing inside one of ours gives a None field, never an exception.

`awaits_pod_facts` says when a failed Job's pod is still worth waiting for: the pod's exit code
decides how a plain failure is classified, but a Job that failed for its deadline is classified
without it, and its pods are exactly the ones that never report (the Job controller deletes
them when `activeDeadlineSeconds` passes)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from extraction_operator.api.constants import LABEL_ATTEMPT, LABEL_RUN

from .classify import DEADLINE_EXCEEDED
from .fields import as_list, as_map, as_str
from .naming import ANNOTATION_NODE
from .startup import NOT_PENDING, observe_start
from .timefmt import parse_time
from .types import JobPhase, ObservedJob

STAGE_CONTAINER = "stage"


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return None


def _true_condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for condition in as_list(status.get("conditions")):
        condition = as_map(condition)
        if condition.get("type") == kind and condition.get("status") == "True":
            return condition
    return None


def _job_phase(status: Mapping[str, Any]) -> JobPhase:
    if _true_condition(status, "Complete") is not None:
        return "Succeeded"
    if _true_condition(status, "Failed") is not None:
        return "Failed"
    return "Active"


def _stage_container_status(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    statuses = [
        as_map(item) for item in as_list(as_map(pod.get("status")).get("containerStatuses"))
    ]
    for item in statuses:
        if item.get("name") == STAGE_CONTAINER:
            return item
    return statuses[0] if statuses else {}


def _terminated(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    container = _stage_container_status(pod)
    for key in ("state", "lastState"):
        terminated = as_map(as_map(container.get(key)).get("terminated"))
        if terminated:
            return terminated
    return None


def _pod_reason(pod: Mapping[str, Any]) -> str | None:
    status = as_map(pod.get("status"))
    reason = as_str(status.get("reason"))
    if reason:
        return reason
    disruption = _true_condition(status, "DisruptionTarget")
    return as_str(disruption.get("reason")) if disruption else None


def _pod_sort_key(pod: Mapping[str, Any]) -> tuple[int, str, str]:
    """Prefer a pod whose stage container terminated, then the newest, then by name (stable)."""
    created = as_str(as_map(pod.get("metadata")).get("creationTimestamp")) or ""
    name = as_str(as_map(pod.get("metadata")).get("name")) or ""
    return (1 if _terminated(pod) is not None else 0, created, name)


def _deciding_pod(pods: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    candidates = [pod for pod in pods if isinstance(pod, Mapping)]
    return max(candidates, key=_pod_sort_key) if candidates else None


def observe_job(
    job: Mapping[str, Any],
    pods: Sequence[Mapping[str, Any]],
    events: Sequence[Mapping[str, Any]] = (),
    now: datetime | None = None,
) -> ObservedJob | None:
    """Pure conversion of a raw Job (+ its pods, + Warning Events about it and its pods) into an
    ObservedJob. `now` only judges whether a pod Event is recent enough to explain the pod.

    None if the Job lacks our run label, a numeric attempt label, or the node annotation."""
    raw: object = job  # the watch may hand us anything; the signature is the happy path
    if not isinstance(raw, Mapping):
        return None
    metadata = as_map(job.get("metadata"))
    labels = as_map(metadata.get("labels"))
    annotations = as_map(metadata.get("annotations"))
    name = as_str(metadata.get("name"))
    node = as_str(annotations.get(ANNOTATION_NODE))
    attempt = _int(labels.get(LABEL_ATTEMPT))
    if name is None or node is None or attempt is None or attempt < 1:
        return None
    if as_str(labels.get(LABEL_RUN)) is None:
        return None
    status = as_map(job.get("status"))
    phase = _job_phase(status)
    failed = _true_condition(status, "Failed")
    pod = _deciding_pod(pods)
    terminated = _terminated(pod) if pod is not None else None
    exit_code = _int(terminated.get("exitCode")) if terminated else None
    message = as_str(terminated.get("message")) if terminated else None
    finished_at: datetime | None = parse_time(status.get("completionTime"))
    if finished_at is None and failed is not None:
        finished_at = parse_time(failed.get("lastTransitionTime"))
    start = observe_start(job, pods, events, now) if phase == "Active" else NOT_PENDING
    return ObservedJob(
        name=name,
        node=node,
        attempt=attempt,
        uid=as_str(metadata.get("uid")) or "",
        phase=phase,
        failure_reason=as_str(failed.get("reason")) if failed is not None else None,
        exit_code=exit_code,
        message=message,
        pod_reason=_pod_reason(pod) if pod is not None else None,
        started_at=parse_time(status.get("startTime")),
        finished_at=finished_at,
        deleting=metadata.get("deletionTimestamp") is not None,
        job_message=as_str(failed.get("message")) if failed is not None else None,
        exit_reason=as_str(terminated.get("reason")) if terminated else None,
        pending=start.pending,
        start_problem=start.problem,
        container_started_at=start.container_started_at,
    )


def awaits_pod_facts(job: ObservedJob) -> bool:
    """True for a failed Job whose classification still lacks its pod's facts (exit code or pod
    reason), which normally arrive a moment after the Job's own condition (separate watches).

    A deadline failure never waits: `DeadlineExceeded` decides the failure kind whatever the
    exit code, and on a real cluster the Job controller deletes the pods of a Job past its
    `activeDeadlineSeconds`, so the facts waited for would never come."""
    if job.phase != "Failed" or job.failure_reason == DEADLINE_EXCEEDED:
        return False
    return job.exit_code is None and job.pod_reason is None
