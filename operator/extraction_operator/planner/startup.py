"""Has a stage attempt started, and if not, why: read from its Job, its pods and their Events.

A stage attempt can fail to start in three places, and each says so somewhere else:
- the Job controller cannot create the pod (a missing ServiceAccount, an exhausted
  ResourceQuota, a LimitRange, an admission webhook): only a `FailedCreate` Warning Event on the
  Job says it, and the Job controller keeps retrying;
- the scheduler cannot place the pod (a missing or unbound claim, no node with room, taints):
  the pod's `PodScheduled` condition is `False` with the scheduler's explanation;
- the kubelet cannot start the container (image pull errors, a missing Secret or ConfigMap, a
  runtime error): the container's `waiting` state, or, for a pod stuck in `ContainerCreating`,
  a Warning Event on the pod (`FailedMount`, `FailedAttachVolume`, `FailedCreatePodSandBox`).
Each of these may go away by itself (the user creates the ServiceAccount, quota frees up), so this
module only describes the attempt as it is now; the planner decides what to do about it.

Pure and tolerant: any of the inputs may be half-written, foreign or garbage."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from .fields import as_list, as_map, as_str
from .messages import clean_message
from .timefmt import parse_time
from .types import StartProblem

STAGE_CONTAINER = "stage"
FAILED_CREATE = "FailedCreate"
UNSCHEDULABLE = "Unschedulable"
# Waiting reasons of a container on its way to run, not stuck.
BENIGN_WAITING = frozenset({"ContainerCreating", "PodInitializing"})
# A container that never ran because the runtime could not run its command (restartPolicy Never
# turns this into a terminated state at once: exit code 128).
START_ERROR_REASONS = frozenset({"StartError", "ContainerCannotRun"})
JOB_EVENT_REASONS = frozenset({FAILED_CREATE})
# What explains a pod stuck in `ContainerCreating`, whose status says nothing more.
POD_EVENT_REASONS = frozenset({"FailedMount", "FailedAttachVolume", "FailedCreatePodSandBox"})
EVENT_REASONS = JOB_EVENT_REASONS | POD_EVENT_REASONS
# A pod Event older than this no longer explains the pod: the kubelet repeats a mount or sandbox
# failure about every two minutes while it lasts.
POD_EVENT_FRESHNESS = timedelta(minutes=3)
# Reasons documented in docs/api.md and given their own metric label; any other reason is still
# shown on the node verbatim, and counted as `Other`.
KNOWN_REASONS = (
    FAILED_CREATE,
    UNSCHEDULABLE,
    "SchedulingGated",
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "RegistryUnavailable",
    "ImageInspectError",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
    "PreStartHookError",
    "PostStartHookError",
    *sorted(POD_EVENT_REASONS),
)
OTHER = "Other"
# One cause under two names: on every retry the kubelet alternates `ErrImagePull` (with the
# registry's answer) and `ImagePullBackOff` ("Back-off pulling image ..."). Reported once.
CONTINUES = {"ImagePullBackOff": "ErrImagePull"}
_REASON = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,63}$")


@dataclass(frozen=True)
class StartObservation:
    pending: bool  # positive evidence the stage container has not run yet
    container_started_at: datetime | None
    problem: StartProblem | None


NOT_PENDING = StartObservation(False, None, None)


def cause_of(reason: str) -> str:
    """The cause a reason names (`ImagePullBackOff` continues `ErrImagePull`)."""
    return CONTINUES.get(reason, reason)


def metric_reason(reason: str) -> str:
    """A bounded metric label for a start-problem reason."""
    return reason if reason in KNOWN_REASONS else OTHER


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _reason(value: Any, fallback: str) -> str:
    text = as_str(value)
    return text if text is not None and _REASON.fullmatch(text) else fallback


def _problem(reason: str, message: str) -> StartProblem:
    return StartProblem(reason, clean_message(message) or reason)


def _event_time(event: Mapping[str, Any]) -> datetime | None:
    """The last time the cluster saw this: core/v1 and events.k8s.io Events keep it in different
    fields, and the correlator bumps `lastTimestamp` / `series` on every repeat."""
    series = as_map(event.get("series"))
    candidates = (
        parse_time(event.get("lastTimestamp")),
        parse_time(series.get("lastObservedTime")),
        parse_time(event.get("eventTime")),
        parse_time(event.get("firstTimestamp")),
        parse_time(as_map(event.get("metadata")).get("creationTimestamp")),
    )
    known = [moment for moment in candidates if moment is not None]
    return max(known) if known else None


def _newest_event(
    events: Sequence[Mapping[str, Any]], kind: str, uid: str, reasons: frozenset[str]
) -> tuple[Mapping[str, Any], datetime | None] | None:
    found: list[tuple[float, str, Mapping[str, Any], datetime | None]] = []
    for raw in events:
        event = as_map(raw)
        involved = as_map(event.get("involvedObject"))
        if involved.get("kind") != kind or event.get("reason") not in reasons:
            continue
        their_uid = as_str(involved.get("uid"))
        if uid and their_uid and their_uid != uid:
            continue  # an Event about an earlier object of the same name
        moment = _event_time(event)
        name = as_str(as_map(event.get("metadata")).get("name")) or ""
        found.append((moment.timestamp() if moment else 0.0, name, event, moment))
    if not found:
        return None
    _, _, event, moment = max(found, key=lambda item: (item[0], item[1]))
    return event, moment


def _created_problem(job_uid: str, events: Sequence[Mapping[str, Any]]) -> StartProblem | None:
    newest = _newest_event(events, "Job", job_uid, JOB_EVENT_REASONS)
    if newest is None:
        return None
    text = as_str(newest[0].get("message")) or "the Job controller could not create it"
    text = text.removeprefix("Error creating: ")
    return _problem(FAILED_CREATE, f"cannot create the pod: {text}")


def _scheduling_problem(status: Mapping[str, Any]) -> StartProblem | None:
    for condition in as_list(status.get("conditions")):
        condition = as_map(condition)
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            reason = _reason(condition.get("reason"), UNSCHEDULABLE)
            text = as_str(condition.get("message")) or "no reason given"
            return _problem(reason, f"cannot schedule the pod: {text}")
    return None


def _container_statuses(status: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Init containers first (they run first), then the stage container, then any sidecar."""
    regular = [as_map(item) for item in as_list(status.get("containerStatuses"))]
    regular.sort(key=lambda item: item.get("name") != STAGE_CONTAINER)
    return [as_map(item) for item in as_list(status.get("initContainerStatuses"))] + regular


def _waiting_problem(status: Mapping[str, Any]) -> StartProblem | None:
    for container in _container_statuses(status):
        waiting = as_map(as_map(container.get("state")).get("waiting"))
        reason = as_str(waiting.get("reason"))
        if not waiting or reason in BENIGN_WAITING:
            continue
        name = as_str(container.get("name")) or STAGE_CONTAINER
        shown = _reason(reason, "ContainerWaiting")
        text = as_str(waiting.get("message")) or f"waiting ({reason or 'no reason given'})"
        return _problem(shown, f"cannot start container {name}: {text}")
    return None


def _pod_event_problem(
    pod_uid: str, events: Sequence[Mapping[str, Any]], now: datetime | None
) -> StartProblem | None:
    if now is None:
        return None
    newest = _newest_event(events, "Pod", pod_uid, POD_EVENT_REASONS)
    if newest is None or newest[1] is None or now - newest[1] > POD_EVENT_FRESHNESS:
        return None
    event = newest[0]
    reason = _reason(event.get("reason"), "FailedMount")
    text = as_str(event.get("message")) or reason
    return _problem(reason, f"cannot set up the pod: {text}")


def _stage_status(status: Mapping[str, Any]) -> Mapping[str, Any]:
    statuses = [as_map(item) for item in as_list(status.get("containerStatuses"))]
    for item in statuses:
        if item.get("name") == STAGE_CONTAINER:
            return item
    return statuses[0] if statuses else {}


def container_started_at(pod: Mapping[str, Any]) -> tuple[bool, datetime | None]:
    """(has the stage container ever run, when it started). A container the runtime could not
    start (`StartError`) never ran, whatever its terminated state says."""
    container = _stage_status(as_map(pod.get("status")))
    for key in ("state", "lastState"):
        state = as_map(container.get(key))
        running = as_map(state.get("running"))
        if running:
            return True, parse_time(running.get("startedAt"))
        terminated = as_map(state.get("terminated"))
        if terminated and terminated.get("reason") not in START_ERROR_REASONS:
            return True, parse_time(terminated.get("startedAt"))
    return False, None


def _newest_pod(pods: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    candidates = [pod for pod in pods if isinstance(pod, Mapping)]
    if not candidates:
        return None

    def key(pod: Mapping[str, Any]) -> tuple[str, str]:
        meta = as_map(pod.get("metadata"))
        return (as_str(meta.get("creationTimestamp")) or "", as_str(meta.get("name")) or "")

    return max(candidates, key=key)


def observe_start(
    job: Mapping[str, Any],
    pods: Sequence[Mapping[str, Any]],
    events: Sequence[Mapping[str, Any]],
    now: datetime | None,
) -> StartObservation:
    """The start state of an active Job. `events` are Warning Events about the Job and its pods
    (others are ignored); `now` judges how fresh a pod Event is (None: pod Events ignored)."""
    job_meta = as_map(job.get("metadata"))
    job_status = as_map(job.get("status"))
    pod = _newest_pod(pods)
    started, started_at = container_started_at(pod) if pod is not None else (False, None)
    if started:
        return StartObservation(False, started_at, None)
    if any(_count(job_status.get(key)) > 0 for key in ("ready", "succeeded", "failed")):
        return NOT_PENDING  # a pod ran (or runs) even if this view of it lags
    if pod is None:
        return StartObservation(
            True, None, _created_problem(as_str(job_meta.get("uid")) or "", events)
        )
    if as_map(pod.get("status")).get("phase") in ("Succeeded", "Failed"):
        return NOT_PENDING  # over: the Job's own verdict follows
    pod_uid = as_str(as_map(pod.get("metadata")).get("uid")) or ""
    problem = pod_problem(pod) or _pod_event_problem(pod_uid, events, now)
    return StartObservation(True, None, problem)


def pod_problem(pod: Mapping[str, Any]) -> StartProblem | None:
    """What the pod's own status says keeps it from starting (not its Events)."""
    status = as_map(pod.get("status"))
    return _scheduling_problem(status) or _waiting_problem(status)


def pod_start_signature(pod: Mapping[str, Any]) -> tuple[bool, StartProblem | None]:
    """(has the stage container run, the pod's start problem): when this changes, so may the
    plan of the pod's run. Anything else a pod update says cannot matter before it ends."""
    started, _ = container_started_at(pod)
    return started, None if started else pod_problem(pod)
