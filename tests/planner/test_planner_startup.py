"""Why an attempt has not started, read from its raw Job, pods and Warning Events (synthetic
observations shaped as kube-apiserver v1.36, the Job controller, the scheduler and the kubelet
write them)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from extraction_operator.planner import ObservedJob, observe_job
from extraction_operator.planner.startup import (
    cause_of,
    metric_reason,
    pod_start_signature,
)
from extraction_operator.planner.types import StartProblem

NOW = datetime(2026, 11, 23, 12, 0, 30, tzinfo=UTC)
SA_MESSAGE = (
    'Error creating: pods "xr-only-1-8x2kq" is forbidden: error looking up service account '
    'default/nope: serviceaccount "nope" not found'
)


def job(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "xr-only-1",
            "uid": "job-uid",
            "labels": {"extraction.dev/run": "xr", "extraction.dev/attempt": "1"},
            "annotations": {"extraction.dev/node": "only"},
        },
        "status": {"startTime": "2026-11-23T12:00:00Z", "active": 1, **status},
    }


def event(
    kind: str,
    reason: str,
    message: str,
    *,
    uid: str,
    last: str = "2026-11-23T12:00:01Z",
    name: str = "ev1",
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "default"},
        "involvedObject": {"kind": kind, "name": "x", "uid": uid},
        "reason": reason,
        "message": message,
        "type": "Warning",
        "lastTimestamp": last,
    }


def pod(
    *,
    phase: str = "Pending",
    conditions: list[dict[str, Any]] | None = None,
    state: dict[str, Any] | None = None,
    init: list[dict[str, Any]] | None = None,
    created: str = "2026-11-23T12:00:01Z",
    name: str = "xr-only-1-abcde",
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase, "conditions": conditions or []}
    if state is not None:
        status["containerStatuses"] = [{"name": "stage", "state": state}]
    if init is not None:
        status["initContainerStatuses"] = init
    return {
        "metadata": {"name": name, "uid": "pod-uid", "creationTimestamp": created},
        "status": status,
    }


def waiting(reason: str, message: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"reason": reason}
    if message is not None:
        body["message"] = message
    return {"waiting": body}


def observed(
    pods: list[dict[str, Any]], events: list[dict[str, Any]] | None = None, **status: Any
) -> ObservedJob:
    item = observe_job(job(**status), pods, events or [], NOW)
    assert item is not None
    return item


# --------------------------------------------------------------- the Job controller cannot create


def test_no_pod_and_a_failed_create_event_is_the_job_controllers_reason() -> None:
    item = observed([], [event("Job", "FailedCreate", SA_MESSAGE, uid="job-uid")])
    assert item.pending
    assert item.start_problem == StartProblem(
        "FailedCreate",
        'cannot create the pod: pods "xr-only-1-8x2kq" is forbidden: error looking up service '
        'account default/nope: serviceaccount "nope" not found',
    )


def test_no_pod_and_no_event_yet_is_pending_without_a_reason() -> None:
    item = observed([])
    assert item.pending
    assert item.start_problem is None


def test_an_event_about_an_earlier_job_of_the_same_name_is_ignored() -> None:
    """A run deleted and created again reuses Job names; the old Job's Events live an hour."""
    item = observed([], [event("Job", "FailedCreate", SA_MESSAGE, uid="old-job-uid")])
    assert item.start_problem is None


def test_the_newest_failed_create_wins() -> None:
    quota = 'Error creating: pods "p" is forbidden: exceeded quota: q, requested: pods=1'
    events = [
        event("Job", "FailedCreate", SA_MESSAGE, uid="job-uid", last="2026-11-23T12:00:05Z"),
        event("Job", "FailedCreate", quota, uid="job-uid", last="2026-11-23T12:00:09Z", name="b"),
    ]
    item = observed([], events)
    assert item.start_problem is not None
    assert "exceeded quota" in item.start_problem.message


def test_an_events_k8s_io_event_counts_by_its_series_time() -> None:
    old = event("Job", "FailedCreate", SA_MESSAGE, uid="job-uid", last="2026-11-23T12:00:05Z")
    new = event("Job", "FailedCreate", "Error creating: admission webhook denied", uid="job-uid")
    del new["lastTimestamp"]
    new["eventTime"] = "2026-11-23T12:00:02.000000Z"
    new["series"] = {"count": 4, "lastObservedTime": "2026-11-23T12:00:20.000000Z"}
    item = observed([], [old, new])
    assert item.start_problem is not None
    assert item.start_problem.message == "cannot create the pod: admission webhook denied"


def test_a_failed_create_from_before_the_pod_existed_no_longer_counts() -> None:
    """The user created the ServiceAccount: the Job controller's next try made the pod."""
    events = [event("Job", "FailedCreate", SA_MESSAGE, uid="job-uid")]
    item = observed([pod(state=waiting("ContainerCreating"))], events)
    assert item.pending
    assert item.start_problem is None


# ------------------------------------------------------------------ the scheduler cannot place it


def test_an_unschedulable_pod_carries_the_schedulers_message() -> None:
    message = (
        '0/1 nodes are available: persistentvolumeclaim "corpus" not found. preemption: 0/1 '
        "nodes are available: 1 Preemption is not helpful for scheduling."
    )
    condition = {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": message,
    }
    item = observed([pod(conditions=[condition])])
    assert item.pending
    assert item.start_problem == StartProblem(
        "Unschedulable", f"cannot schedule the pod: {message}"
    )


def test_a_scheduled_pod_is_not_unschedulable() -> None:
    condition = {"type": "PodScheduled", "status": "True"}
    item = observed([pod(conditions=[condition], state=waiting("ContainerCreating"))])
    assert item.pending
    assert item.start_problem is None


# ---------------------------------------------------------------- the kubelet cannot start it


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("CreateContainerConfigError", 'configmap "settings" not found'),
        ("CreateContainerConfigError", "couldn't find key token in Secret default/llm"),
        ("ErrImagePull", 'failed to pull image "ghcr.io/acme/x:1": not found'),
        ("ImagePullBackOff", 'Back-off pulling image "ghcr.io/acme/x:1"'),
        ("InvalidImageName", 'Failed to apply default image tag "Bad Image": invalid reference'),
        ("CreateContainerError", "context deadline exceeded"),
        ("RunContainerError", "exec: no such file"),
    ],
)
def test_a_waiting_container_says_why(reason: str, message: str) -> None:
    item = observed([pod(state=waiting(reason, message))])
    assert item.pending
    assert item.start_problem == StartProblem(reason, f"cannot start container stage: {message}")


def test_an_init_container_stuck_pulling_is_named() -> None:
    init = [{"name": "istio-init", "state": waiting("ImagePullBackOff", "Back-off pulling")}]
    item = observed([pod(state=waiting("PodInitializing"), init=init)])
    assert item.start_problem == StartProblem(
        "ImagePullBackOff", "cannot start container istio-init: Back-off pulling"
    )


def test_an_unspeakable_waiting_reason_is_shown_under_a_safe_name() -> None:
    item = observed([pod(state=waiting("not a reason!", "odd"))])
    assert item.start_problem == StartProblem(
        "ContainerWaiting", "cannot start container stage: odd"
    )


def test_a_waiting_reason_without_a_message_still_says_something() -> None:
    item = observed([pod(state=waiting("ErrImageNeverPull"))])
    assert item.start_problem == StartProblem(
        "ErrImageNeverPull", "cannot start container stage: waiting (ErrImageNeverPull)"
    )


def test_secrets_in_a_waiting_message_are_scrubbed() -> None:
    item = observed([pod(state=waiting("CreateContainerError", "password=hunter22 rejected"))])
    assert item.start_problem is not None
    assert "hunter22" not in item.start_problem.message


def test_a_fresh_failed_mount_event_explains_a_pod_stuck_creating() -> None:
    mount = event(
        "Pod",
        "FailedMount",
        'MountVolume.SetUp failed for volume "workspace" : mount failed',
        uid="pod-uid",
        last="2026-11-23T12:00:20Z",
    )
    item = observed([pod(state=waiting("ContainerCreating"))], [mount])
    assert item.start_problem == StartProblem(
        "FailedMount",
        'cannot set up the pod: MountVolume.SetUp failed for volume "workspace" : mount failed',
    )


def test_a_stale_pod_event_does_not_explain_the_pod_any_more() -> None:
    stale = (NOW - timedelta(minutes=4)).strftime("%Y-%m-%dT%H:%M:%SZ")
    mount = event("Pod", "FailedMount", "mount failed", uid="pod-uid", last=stale)
    item = observed([pod(state=waiting("ContainerCreating"))], [mount])
    assert item.start_problem is None


def test_pod_events_are_ignored_without_a_clock() -> None:
    mount = event("Pod", "FailedMount", "mount failed", uid="pod-uid")
    item = observe_job(job(), [pod(state=waiting("ContainerCreating"))], [mount])
    assert item is not None
    assert item.pending
    assert item.start_problem is None


# ---------------------------------------------------------------------- started, or finished


def test_a_running_stage_container_has_started() -> None:
    running = {"running": {"startedAt": "2026-11-23T12:00:07Z"}}
    item = observed([pod(phase="Running", state=running)])
    assert not item.pending
    assert item.start_problem is None
    assert item.container_started_at == datetime(2026, 11, 23, 12, 0, 7, tzinfo=UTC)


def test_a_ready_count_on_the_job_means_started_even_if_the_pod_view_lags() -> None:
    item = observed([pod(state=waiting("ContainerCreating"))], ready=1)
    assert not item.pending


def test_a_finished_job_is_never_pending() -> None:
    failed = {"conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}]}
    item = observe_job({**job(), "status": failed}, [], [], NOW)
    assert item is not None
    assert (item.phase, item.pending, item.start_problem) == ("Failed", False, None)


def test_a_container_that_could_not_start_never_ran() -> None:
    """restartPolicy Never: the runtime's exec failure is a terminated state, exit code 128."""
    terminated = {
        "terminated": {
            "exitCode": 128,
            "reason": "StartError",
            "message": 'exec: "extract": executable file not found in $PATH',
            "startedAt": "1970-01-01T00:00:00Z",
        }
    }
    item = observed([pod(phase="Failed", state=terminated)])
    assert not item.pending  # over: the Job's Failed condition follows
    assert item.container_started_at is None
    assert item.exit_reason == "StartError"


def test_the_newest_pod_decides() -> None:
    old = pod(state=waiting("ErrImagePull", "old"), created="2026-11-23T12:00:01Z", name="a")
    new = pod(state=waiting("ContainerCreating"), created="2026-11-23T12:00:09Z", name="b")
    assert observed([new, old]).start_problem is None


@pytest.mark.parametrize(
    ("pods", "events"),
    [
        (["garbage", None, 3], [None, "x", {"involvedObject": "nope"}]),
        ([{"status": "bad"}], [{"reason": "FailedCreate", "involvedObject": {"kind": "Job"}}]),
        ([{"status": {"conditions": "bad", "containerStatuses": [None, 1]}}], []),
        ([{"status": {"containerStatuses": [{"name": "stage", "state": {"waiting": 7}}]}}], []),
    ],
)
def test_garbage_never_raises(pods: list[Any], events: list[Any]) -> None:
    item = observe_job(job(), pods, events, NOW)
    assert item is not None


# ---------------------------------------------------------------------------- small helpers


def test_image_pull_back_off_continues_err_image_pull() -> None:
    assert cause_of("ImagePullBackOff") == "ErrImagePull"
    assert cause_of("FailedCreate") == "FailedCreate"


def test_metric_reasons_are_a_closed_set() -> None:
    assert metric_reason("FailedCreate") == "FailedCreate"
    assert metric_reason("CreateContainerConfigError") == "CreateContainerConfigError"
    assert metric_reason("SomethingNew") == "Other"


def test_a_pods_start_signature_changes_only_with_what_matters() -> None:
    creating = pod(state=waiting("ContainerCreating"))
    assert pod_start_signature(creating) == (False, None)
    stuck = pod(state=waiting("CreateContainerConfigError", 'secret "llm" not found'))
    assert pod_start_signature(stuck)[1] is not None
    running = pod(phase="Running", state={"running": {"startedAt": "2026-11-23T12:00:07Z"}})
    assert pod_start_signature(running) == (True, None)
