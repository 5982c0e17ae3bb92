"""The shell's part in reporting stage pods that do not start: it hands the planner the Warning
Events of a run's Jobs and pods, wakes the run when one arrives or a pod's start state changes,
deletes the Job of an attempt past its start deadline, posts each cause's Event once, and counts
the causes by a bounded reason."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import kopf
import pytest
from reconcile_kit import NOW, FakeApi, event_messages, run_body

from extraction_operator.controller.handlers import (
    EVENT_FIELD_SELECTOR,
    _pod_event_matters,
    _pod_start_changed,
    configure_settings,
    event_key,
)
from extraction_operator.controller.options import OperatorOptions
from extraction_operator.controller.reconcile import Reconciler
from extraction_operator.metrics import Metrics
from extraction_operator.planner.types import StartProblem

KEY = ("ns", "xr")
SPEC = {
    "image": "img",
    "serviceAccountName": "nope",
    "retry": {"limit": 0},
    "startTimeoutSeconds": 30,
    "stages": [{"name": "a", "command": ["true"]}],
}
SA = (
    'Error creating: pods "xr-a-1-x8k2q" is forbidden: error looking up service account '
    'ns/nope: serviceaccount "nope" not found'
)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self):  # type: ignore[no-untyped-def]
        return self.now


def _job(name: str = "xr-a-1") -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "uid": f"uid-{name}",
            "labels": {"extraction.dev/run": "xr", "extraction.dev/attempt": "1"},
            "annotations": {"extraction.dev/node": "a"},
            "ownerReferences": [{"uid": "run-uid", "controller": True}],
        },
        "status": {"startTime": "2026-11-23T12:00:00Z", "active": 1},
    }


def _failed_create(job: str = "xr-a-1", message: str = SA) -> dict[str, Any]:
    return {
        "metadata": {"name": f"{job}.17a", "namespace": "ns"},
        "involvedObject": {"kind": "Job", "name": job, "uid": f"uid-{job}", "namespace": "ns"},
        "reason": "FailedCreate",
        "message": message,
        "type": "Warning",
        "lastTimestamp": "2026-11-23T12:00:01Z",
    }


def _no_pods(_: str) -> Sequence[Mapping[str, Any]]:
    return ()


def _events(*events: dict[str, Any]):  # type: ignore[no-untyped-def]
    def of(kind: str, name: str) -> Sequence[Mapping[str, Any]]:
        return [
            e
            for e in events
            if e["involvedObject"]["kind"] == kind and e["involvedObject"]["name"] == name
        ]

    return of


def _value(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def test_a_failed_create_reaches_the_node_once_and_the_deadline_deletes_the_job() -> None:
    api, clock, metrics = FakeApi(), Clock(), Metrics()
    reconciler = Reconciler(api, metrics, clock=clock, instance="op")  # type: ignore[arg-type]
    await reconciler.reconcile(KEY, run_body(spec=SPEC), [], _no_pods)  # launches xr-a-1
    status = api.writes[-1]
    events = _events(_failed_create())
    clock.now = NOW + timedelta(seconds=2)
    result = await reconciler.reconcile(
        KEY, run_body(spec=SPEC, status=status, rv=2), [_job()], _no_pods, events
    )
    await reconciler.drain_events(1.0)
    node = api.writes[-1]["nodes"]["a"]
    assert (node["phase"], node["reason"]) == ("Pending", "FailedCreate")
    assert node["message"] == (
        'cannot create the pod: pods "xr-a-1-x8k2q" is forbidden: error looking up service '
        'account ns/nope: serviceaccount "nope" not found'
    )
    assert "a not started (FailedCreate)" in api.writes[-1]["message"]
    [warning] = event_messages(api, "StageCannotStart")
    assert 'serviceaccount "nope" not found' in warning
    assert result.requeue_after == 29  # the start deadline: launch + 30 s (+ 1, rounded up)
    assert _value(metrics, "extraction_stage_start_problems_total", reason="FailedCreate") == 1

    # The same cause on the next pass, and after a restart (a new reconciler): nothing new.
    status = api.writes[-1]
    for fresh in (reconciler, Reconciler(api, metrics, clock=clock, instance="op-2")):  # type: ignore[arg-type]
        writes = len(api.writes)
        await fresh.reconcile(
            KEY, run_body(spec=SPEC, status=status, rv=3), [_job()], _no_pods, events
        )
        await fresh.drain_events(1.0)
        assert len(api.writes) == writes or api.writes[-1]["nodes"] == status["nodes"]
    assert len(event_messages(api, "StageCannotStart")) == 1
    assert _value(metrics, "extraction_stage_start_problems_total", reason="FailedCreate") == 1

    # The start deadline: the attempt ends, its Job is deleted.
    api.jobs["xr-a-1"] = _job()
    clock.now = NOW + timedelta(seconds=31)
    await reconciler.reconcile(
        KEY, run_body(spec=SPEC, status=status, rv=4), [_job()], _no_pods, events
    )
    node = api.writes[-1]["nodes"]["a"]
    assert (node["phase"], node["reason"]) == ("Failed", "StartDeadlineExceeded")
    assert "xr-a-1" not in api.jobs
    assert (
        _value(metrics, "extraction_stage_attempts_total", outcome="start_deadline_exceeded") == 1
    )


def test_the_operator_watches_only_warning_events() -> None:
    settings = kopf.OperatorSettings()
    configure_settings(settings, OperatorOptions(kubeconfig=None))
    assert EVENT_FIELD_SELECTOR == "type=Warning"
    assert settings.watching.field_selectors.collect(kopf.Resource("", "v1", "events")) == [
        "type=Warning"
    ]


@pytest.mark.parametrize(
    ("body", "key"),
    [
        (_failed_create(), ("ns", "Job", "xr-a-1")),
        (
            {
                "reason": "FailedMount",
                "involvedObject": {"kind": "Pod", "name": "xr-a-1-abcde"},
            },
            ("ns", "Pod", "xr-a-1-abcde"),
        ),
        ({"reason": "BackOff", "involvedObject": {"kind": "Pod", "name": "p"}}, None),
        ({"reason": "FailedCreate", "involvedObject": {"kind": "ReplicaSet", "name": "r"}}, None),
        ({"reason": "FailedCreate", "involvedObject": {"kind": "Job"}}, None),
        ({"reason": "FailedCreate", "involvedObject": "garbage"}, None),
        ({}, None),
    ],
)
def test_only_events_that_explain_a_stage_pod_are_kept(
    body: dict[str, Any], key: tuple[str, str, str] | None
) -> None:
    assert event_key("ns", body) == key


def _pod(uid: str = "p1", **status: Any) -> dict[str, Any]:
    return {"metadata": {"uid": uid}, "status": status}


def test_a_pod_wakes_its_run_when_its_start_state_changes_and_only_then() -> None:
    starts: dict[str, tuple[bool, StartProblem | None]] = {}
    creating = _pod(containerStatuses=[{"name": "stage", "state": {"waiting": {}}}])
    stuck = _pod(
        containerStatuses=[
            {
                "name": "stage",
                "state": {"waiting": {"reason": "CreateContainerConfigError", "message": "no cm"}},
            }
        ]
    )
    running = _pod(
        phase="Running",
        containerStatuses=[
            {"name": "stage", "state": {"running": {"startedAt": "2026-11-23T12:00:05Z"}}}
        ],
    )

    def changed(kind: str, pod: dict[str, Any]) -> bool:
        return _pod_start_changed(starts, kind, pod["metadata"], pod)

    assert not changed("ADDED", creating)  # on its way, nothing to say yet
    assert changed("MODIFIED", stuck)  # a cause to show
    assert not changed("MODIFIED", stuck)  # the same again
    assert changed("MODIFIED", creating)  # the cause went away
    assert changed("MODIFIED", running)  # started: its run time counts from now
    assert not changed("MODIFIED", running)
    assert not _pod_event_matters("MODIFIED", running["metadata"], running["status"])
    assert not changed("DELETED", running)
    assert starts == {}
