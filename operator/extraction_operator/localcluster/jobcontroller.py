"""The Job controller's decisions, as a pure function of (Job, its Pods, now).

Follows the batch/v1 Job controller closely enough for an operator to not tell the difference:

- `succeeded` / `failed` count the Job's pods in those phases, never decreasing (the stored
  counts are a floor, so a deleted finished pod is not forgotten), plus pods that vanished while
  still active (the real controller counts those as failed thanks to its tracking finalizer);
  `active` counts pods neither finished nor being deleted; `ready` counts pods whose `Ready`
  condition is True; zero counts are omitted, as the real API omits them.
- `startTime` is set when the Job first runs and reset when it resumes from suspension, so
  `activeDeadlineSeconds` is measured from it.
- A failure (pods failed more than `backoffLimit` times -> `BackoffLimitExceeded`;
  `activeDeadlineSeconds` passed -> `DeadlineExceeded`) first adds `FailureTarget`, kills the
  active pods, and adds `Failed` once none is left, like Kubernetes 1.31+. Success adds
  `SuccessCriteriaMet`, then `Complete` with `completionTime`.
- `suspend: true` deletes the active pods, starts nothing and sets `Suspended`; resuming sets it
  False with reason `JobResumed`.
- Completions: a Job needs `completions` (default 1) successful pods and runs at most
  `parallelism` (default 1) at once; indexed completion mode is not emulated.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

JSON = dict[str, Any]

DEADLINE_MESSAGE = "Job was active longer than specified deadline"
BACKOFF_MESSAGE = "Job has reached the specified backoff limit"
POD_DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # the API server's generateName alphabet
_FINISHED = ("Complete", "Failed")


def timestamp(moment: datetime) -> str:
    """RFC 3339 with second precision in UTC, as Kubernetes writes metav1.Time."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def phase_of(pod: JSON) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def is_finished_pod(pod: JSON) -> bool:
    return phase_of(pod) in ("Succeeded", "Failed")


def is_active_pod(pod: JSON) -> bool:
    return not is_finished_pod(pod) and not (pod.get("metadata") or {}).get("deletionTimestamp")


def is_ready_pod(pod: JSON) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(
        isinstance(c, dict) and c.get("type") == "Ready" and c.get("status") == "True"
        for c in conditions
    )


def controller_uid(obj: JSON) -> str | None:
    """The uid of the object's controller (ownerReference with controller: true), if any."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if isinstance(ref, dict) and ref.get("controller"):
            return str(ref.get("uid") or "") or None
    return None


def condition(obj: JSON, kind: str) -> JSON | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == kind:
            return cond
    return None


def is_finished_job(job: JSON) -> bool:
    return any((condition(job, k) or {}).get("status") == "True" for k in _FINISHED)


def set_condition(
    conditions: list[JSON], kind: str, status: str, reason: str, message: str, now: datetime
) -> None:
    """Add or update a condition in place; transition times change only when status does."""
    for cond in conditions:
        if cond.get("type") == kind:
            if cond.get("status") != status:
                cond["lastTransitionTime"] = timestamp(now)
                cond["lastProbeTime"] = timestamp(now)
            cond.update(status=status, reason=reason, message=message)
            return
    conditions.append(
        {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message,
            "lastProbeTime": timestamp(now),
            "lastTransitionTime": timestamp(now),
        }
    )


@dataclass
class JobPlan:
    """What the controller should do for one Job."""

    status: JSON
    create_pods: int = 0
    kill: list[tuple[JSON, str, str]] = field(default_factory=list)  # (pod, reason, message)
    delete: list[JSON] = field(default_factory=list)


def _int(value: object, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def plan_job(
    job: JSON, pods: list[JSON], now: datetime, *, gone: Mapping[str, str] | None = None
) -> JobPlan:
    """Decide the Job's status and actions.

    `pods` are the pods the Job controls; `gone` maps the uids of its pods that no longer exist
    to the phase they ended in (`Failed` for a pod deleted while still active), as seen by the
    caller watching them go, so a finished pod deleted before its Job was updated still counts.
    """
    spec = job.get("spec") or {}
    old = job.get("status") or {}
    conditions: list[JSON] = [dict(c) for c in old.get("conditions") or [] if isinstance(c, dict)]
    active = [p for p in pods if is_active_pod(p)]
    ended = dict(gone or {})
    for pod in pods:
        if is_finished_pod(pod):
            ended[str((pod.get("metadata") or {}).get("uid"))] = phase_of(pod)
    outcomes = list(ended.values())
    succeeded = max(_int(old.get("succeeded"), 0), outcomes.count("Succeeded"))
    failed = max(_int(old.get("failed"), 0), outcomes.count("Failed"))
    status: JSON = {
        key: old[key] for key in ("startTime", "completionTime") if old.get(key) is not None
    }
    plan = JobPlan(status=status)

    def finish() -> JobPlan:
        for key, value in (("active", len(active)), ("succeeded", succeeded), ("failed", failed)):
            if value:
                status[key] = value
        status["ready"] = sum(is_ready_pod(p) for p in active)
        if conditions:
            status["conditions"] = conditions
        return plan

    def succeed() -> JobPlan:
        message = "Reached expected number of succeeded pods"
        set_condition(conditions, "SuccessCriteriaMet", "True", "CompletionsReached", message, now)
        plan.kill = [(p, "", "") for p in active]
        if not active:
            set_condition(conditions, "Complete", "True", "CompletionsReached", message, now)
            status["completionTime"] = timestamp(now)
        return finish()

    if is_finished_job(job):
        plan.kill = [(p, "", "") for p in active]
        return finish()

    completions = max(1, _int(spec.get("completions"), 1))
    parallelism = max(0, _int(spec.get("parallelism"), 1))
    suspended = bool(spec.get("suspend"))
    target = condition({"status": {"conditions": conditions}}, "FailureTarget")
    failing = target is not None and target.get("status") == "True"
    met = condition({"status": {"conditions": conditions}}, "SuccessCriteriaMet")
    if not failing and ((met or {}).get("status") == "True" or succeeded >= completions):
        return succeed()
    if not failing and suspended:
        plan.delete = active
        active = []
        status.pop("startTime", None)
        set_condition(conditions, "Suspended", "True", "JobSuspended", "Job suspended", now)
        return finish()
    if not failing:
        was_suspended = (condition(job, "Suspended") or {}).get("status") == "True"
        if was_suspended:
            set_condition(conditions, "Suspended", "False", "JobResumed", "Job resumed", now)
            status["startTime"] = timestamp(now)
        status.setdefault("startTime", timestamp(now))
        started = parse_time(status["startTime"]) or now
        deadline = spec.get("activeDeadlineSeconds")
        if failed > _int(spec.get("backoffLimit"), 6):
            set_condition(conditions, "FailureTarget", "True", "BackoffLimitExceeded",
                          BACKOFF_MESSAGE, now)  # fmt: skip
            failing = True
        elif isinstance(deadline, int) and now >= started + timedelta(seconds=deadline):
            set_condition(conditions, "FailureTarget", "True", "DeadlineExceeded",
                          DEADLINE_MESSAGE, now)  # fmt: skip
            failing = True
    if failing:
        target = condition({"status": {"conditions": conditions}}, "FailureTarget") or {}
        reason = str(target.get("reason") or "")
        if reason == "DeadlineExceeded":
            plan.kill = [(p, "DeadlineExceeded", POD_DEADLINE_MESSAGE) for p in active]
        else:
            plan.kill = [(p, "", "") for p in active]
        if not active:
            set_condition(conditions, "Failed", "True", reason, str(target.get("message")), now)
        return finish()

    plan.create_pods = max(0, min(parallelism, completions - succeeded) - len(active))
    return finish()


def status_patch(current: JSON, desired: JSON) -> JSON | None:
    """A merge patch turning `current` status into `desired` (None when they already agree);
    keys that must disappear are sent as null."""
    if current == desired:
        return None
    patch: JSON = {key: value for key, value in desired.items() if current.get(key) != value}
    patch.update({key: None for key in current if key not in desired})
    return patch or None


def pod_suffix(job_uid: str, index: int) -> str:
    """The 5-character name suffix of the Job's `index`-th pod: random-looking like the API
    server's generateName, but derived from (Job uid, index), so a create whose answer was lost
    (a timeout) and is retried hits `409 AlreadyExists` instead of starting a second pod."""
    digest = hashlib.sha256(f"{job_uid}/{index}".encode()).digest()
    return "".join(_SUFFIX_ALPHABET[b % len(_SUFFIX_ALPHABET)] for b in digest[:5])


def pod_for_job(job: JSON, node_name: str, index: int) -> JSON:
    """The Job's `index`-th Pod, as the Job controller creates it."""
    meta = job.get("metadata") or {}
    template = (job.get("spec") or {}).get("template") or {}
    tmeta = template.get("metadata") or {}
    name = str(meta.get("name"))
    uid = str(meta.get("uid") or "")
    suffix = pod_suffix(uid, index)
    labels = dict(tmeta.get("labels") or {})
    labels.update(
        {
            "batch.kubernetes.io/controller-uid": uid,
            "batch.kubernetes.io/job-name": name,
            "controller-uid": uid,
            "job-name": name,
        }
    )
    pod_spec = dict(template.get("spec") or {})
    pod_spec["nodeName"] = node_name
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{name[:57]}-{suffix}",
            "namespace": meta.get("namespace") or "default",
            "labels": labels,
            "annotations": dict(tmeta.get("annotations") or {}),
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": name,
                    "uid": uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": pod_spec,
    }
