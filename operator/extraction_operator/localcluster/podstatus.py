"""What a kubelet knows about one pod it runs, and the pod status it reports from that.

`PodRun` is the local record (process, times, exit, why it was stopped); `pod_status` renders it
as the `status` a real kubelet writes, deterministically (times come from the record, not from
the clock), so comparing it with the stored status tells whether a write is needed at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .jobcontroller import timestamp
from .podspec import POD_IP, PodPaths
from .processes import StageProcess

JSON = dict[str, Any]

# Status keys the runner owns; anything else in a pod's status is left alone.
POD_STATUS_KEYS = frozenset(
    {
        "phase",
        "conditions",
        "containerStatuses",
        "startTime",
        "podIP",
        "podIPs",
        "hostIP",
        "hostIPs",
        "qosClass",
        "reason",
        "message",
    }
)


# Conditions another component writes first; the runner reports them only where none exists.
SERVER_OWNED_CONDITIONS = frozenset({"PodScheduled"})


@dataclass
class PodRun:
    """The runner's record of one pod it accepted."""

    uid: str
    namespace: str
    name: str
    paths: PodPaths
    pod: JSON
    accepted_at: datetime
    process: StageProcess | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int | None = None
    termination_message: str = ""
    waiting_reason: str = "ContainerCreating"
    waiting_message: str = ""
    start_error: str = ""  # the pod can never run: it fails with StartError
    pod_reason: str = ""  # Evicted, DeadlineExceeded, NodeLost: why the runner stopped it
    pod_message: str = ""
    lost: bool = False  # found Running with no process of ours: the runner restarted
    stop_pending: bool = False  # the Job controller wants it stopped (deadline, limit, success)
    kill_requested: bool = False  # termination has begun
    deleted: bool = False
    reported_final: bool = False
    config_retry_at: float = 0.0  # time.monotonic() before which no (re)start is tried
    restart_count: int = 0  # restarts in place (a real cluster's node, restartPolicy allowing)
    last_terminated: JSON | None = None  # the previous run's `terminated` state

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.running

    @property
    def finished(self) -> bool:
        """The pod reached its end here: exited, failed to start, lost, or stopped unstarted."""
        if self.exit_code is not None or self.start_error or self.lost:
            return True
        return self.kill_requested and self.process is None


def _condition(kind: str, status: bool, when: datetime, reason: str = "") -> JSON:
    cond: JSON = {
        "type": kind,
        "status": "True" if status else "False",
        "lastTransitionTime": timestamp(when),
    }
    if reason:
        cond["reason"] = reason
    return cond


def pod_status(run: PodRun) -> JSON:
    """The pod status a kubelet would report for this run."""
    container = ((run.pod.get("spec") or {}).get("containers") or [{}])[0]
    cstatus: JSON = {
        "name": str(container.get("name") or "main") if isinstance(container, dict) else "main",
        "image": str(container.get("image") or "") if isinstance(container, dict) else "",
        "imageID": "",
        "restartCount": run.restart_count,
        "ready": run.running,
        "started": run.running,
        "lastState": {"terminated": run.last_terminated} if run.last_terminated else {},
    }
    if run.process is not None:
        cstatus["containerID"] = f"local://{run.process.pid}"
    phase = "Pending"
    if run.start_error:
        phase = "Failed"
        cstatus["state"] = {
            "terminated": {
                "exitCode": 128,
                "reason": "StartError",
                "message": run.start_error,
                "startedAt": timestamp(run.accepted_at),
                "finishedAt": timestamp(run.finished_at or run.accepted_at),
            }
        }
    elif run.lost:
        phase = "Failed"
        cstatus["state"] = {
            "terminated": {
                "exitCode": 137,
                "reason": "ContainerStatusUnknown",
                "message": "The container could not be located when the pod was terminated",
                "startedAt": timestamp(run.started_at or run.accepted_at),
                "finishedAt": timestamp(run.finished_at or run.accepted_at),
            }
        }
    elif run.exit_code is not None and run.started_at and run.finished_at:
        ok = run.exit_code == 0 and not run.pod_reason
        phase = "Succeeded" if ok else "Failed"
        terminated: JSON = {
            "exitCode": run.exit_code,
            "reason": "Completed" if run.exit_code == 0 else "Error",
            "startedAt": timestamp(run.started_at),
            "finishedAt": timestamp(run.finished_at),
        }
        if run.termination_message:
            terminated["message"] = run.termination_message
        cstatus["state"] = {"terminated": terminated}
    elif run.kill_requested and run.process is None:
        phase = "Failed"  # stopped before its process (re)started
        last = run.last_terminated
        cstatus["state"] = (
            {"terminated": last} if last else {"waiting": {"reason": "ContainerCreating"}}
        )
    elif run.running and run.started_at:
        phase = "Running"
        cstatus["state"] = {"running": {"startedAt": timestamp(run.started_at)}}
    else:
        waiting: JSON = {"reason": run.waiting_reason}
        if run.waiting_message:
            waiting["message"] = run.waiting_message
        cstatus["state"] = {"waiting": waiting}
        if run.restart_count:
            phase = "Running"  # started before, waiting to restart: a crash-looping pod

    ready = phase == "Running" and run.running
    ready_since = run.finished_at if phase in ("Succeeded", "Failed") else run.started_at
    not_ready_reason = {"Succeeded": "PodCompleted", "Failed": "PodFailed"}.get(
        phase, "ContainersNotReady"
    )
    when_ready = ready_since or run.accepted_at
    conditions = [
        _condition("PodReadyToStartContainers", True, run.accepted_at),
        _condition("Initialized", True, run.accepted_at),
        _condition("Ready", ready, when_ready, "" if ready else not_ready_reason),
        _condition("ContainersReady", ready, when_ready, "" if ready else not_ready_reason),
        _condition("PodScheduled", True, run.accepted_at),
    ]
    if run.pod_reason == "Evicted":
        conditions.append(
            _condition(
                "DisruptionTarget", True, run.finished_at or run.accepted_at, "TerminationByKubelet"
            )
        )
    status: JSON = {
        "phase": phase,
        "conditions": conditions,
        "hostIP": POD_IP,
        "hostIPs": [{"ip": POD_IP}],
        "podIP": POD_IP,
        "podIPs": [{"ip": POD_IP}],
        "startTime": timestamp(run.accepted_at),
        "qosClass": "BestEffort",
        "containerStatuses": [cstatus],
    }
    if run.pod_reason and phase == "Failed":
        status["reason"] = run.pod_reason
        status["message"] = run.pod_message
    return status


def keep_server_fields(current: JSON, desired: JSON) -> JSON:
    """`desired` with what others own in the stored status kept as they wrote it.

    The scheduler writes `PodScheduled` and the API server `qosClass` (immutable once set);
    conditions of types the runner never writes (a `DisruptionTarget` from the eviction API, a
    readiness gate's condition) stay. A kubelet's strategic merge patch keeps them by merging
    conditions by type; the runner's merge patch replaces the whole list, so it carries them.
    """
    stored = [c for c in current.get("conditions") or [] if isinstance(c, dict)]
    by_type = {c.get("type"): c for c in stored}
    ours = [c for c in desired.get("conditions") or [] if isinstance(c, dict)]
    conditions = [
        by_type[c["type"]] if c["type"] in SERVER_OWNED_CONDITIONS and c["type"] in by_type else c
        for c in ours
    ]
    own_types = {c["type"] for c in ours}
    conditions += [c for c in stored if c.get("type") not in own_types]
    kept = {**desired, "conditions": conditions}
    if current.get("qosClass"):
        kept["qosClass"] = current["qosClass"]
    return kept


def status_differs(current: JSON, desired: JSON) -> bool:
    """True when a key the runner owns differs (other writers' keys are ignored)."""
    return any(current.get(key) != desired.get(key) for key in POD_STATUS_KEYS)


def status_update(current: JSON, desired: JSON) -> JSON:
    """A merge patch for the owned keys: changed values, and null for owned keys now absent."""
    patch = {key: value for key, value in desired.items() if current.get(key) != value}
    patch.update({key: None for key in POD_STATUS_KEYS if key in current and key not in desired})
    return patch
