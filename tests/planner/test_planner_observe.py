"""`observe_job`: raw Job + pods -> ObservedJob, tolerant of whatever the watch delivers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from extraction_operator.planner import awaits_pod_facts, observe_job


def raw_job(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "xr-right-3-2",
            "uid": "u1",
            "labels": {
                "extraction.dev/run": "xr",
                "extraction.dev/attempt": "2",
                "extraction.dev/node": "right-3",
            },
            "annotations": {"extraction.dev/node": "right[3]"},
        },
        "status": status,
    }


def pod(exit_code: int | None = None, message: str | None = None, **status: Any) -> dict:
    container: dict[str, Any] = {"name": "stage"}
    if exit_code is not None:
        terminated: dict[str, Any] = {"exitCode": exit_code}
        if message is not None:
            terminated["message"] = message
        container["state"] = {"terminated": terminated}
    return {"metadata": {"name": "p"}, "status": {"containerStatuses": [container], **status}}


def test_active_job() -> None:
    job = observe_job(raw_job(startTime="2026-11-23T12:00:00Z", active=1), [])
    assert job is not None
    assert (job.name, job.node, job.attempt, job.uid, job.phase) == (
        "xr-right-3-2",
        "right[3]",
        2,
        "u1",
        "Active",
    )
    assert job.started_at == datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    assert job.finished_at is None


def test_succeeded_job() -> None:
    job = observe_job(
        raw_job(
            conditions=[{"type": "Complete", "status": "True"}],
            completionTime="2026-11-23T12:01:00Z",
        ),
        [pod(0)],
    )
    assert job is not None
    assert job.phase == "Succeeded"
    assert job.exit_code == 0
    assert job.finished_at == datetime(2026, 11, 23, 12, 1, tzinfo=UTC)


def test_failed_job_reads_exit_code_and_termination_message_from_the_pod() -> None:
    failed = {
        "type": "Failed",
        "status": "True",
        "reason": "BackoffLimitExceeded",
        "message": "Job has reached the specified backoff limit",
        "lastTransitionTime": "2026-11-23T12:02:00Z",
    }
    job = observe_job(raw_job(conditions=[failed]), [pod(3, "ValueError: bad chunk")])
    assert job is not None
    assert job.phase == "Failed"
    assert job.failure_reason == "BackoffLimitExceeded"
    assert job.exit_code == 3
    assert job.message == "ValueError: bad chunk"
    assert job.finished_at == datetime(2026, 11, 23, 12, 2, tzinfo=UTC)


def test_the_job_condition_message_is_kept_apart_from_the_stage_message() -> None:
    failed = {"type": "Failed", "status": "True", "reason": "DeadlineExceeded", "message": "late"}
    job = observe_job(raw_job(conditions=[failed]), [])
    assert job is not None
    assert (job.failure_reason, job.exit_code, job.message) == ("DeadlineExceeded", None, None)
    assert job.job_message == "late"


def test_a_silent_failure_carries_no_backoff_limit_text() -> None:
    """Exit 3, no termination message, no log: the Job's condition speaks of the backoffLimit 0
    the operator sets, which is not the stage's message."""
    failed = {
        "type": "Failed",
        "status": "True",
        "reason": "BackoffLimitExceeded",
        "message": "Job has reached the specified backoff limit",
    }
    job = observe_job(raw_job(conditions=[failed]), [pod(3)])
    assert job is not None
    assert job.exit_code == 3
    assert job.message is None


def test_the_container_termination_reason_is_read() -> None:
    failed = {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}
    killed = pod(137)
    killed["status"]["containerStatuses"][0]["state"]["terminated"]["reason"] = "OOMKilled"
    job = observe_job(raw_job(conditions=[failed]), [killed])
    assert job is not None
    assert job.exit_reason == "OOMKilled"


def test_a_deadline_failure_does_not_wait_for_pod_facts() -> None:
    """The Job controller deletes the pods of a Job past its deadline: nothing more will come."""
    deadline = {"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}
    backoff = {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}
    late = observe_job(raw_job(conditions=[deadline]), [])
    plain = observe_job(raw_job(conditions=[backoff]), [])
    reported = observe_job(raw_job(conditions=[backoff]), [pod(1)])
    running = observe_job(raw_job(), [])
    assert late is not None
    assert plain is not None
    assert reported is not None
    assert running is not None
    assert not awaits_pod_facts(late)
    assert awaits_pod_facts(plain)
    assert not awaits_pod_facts(reported)
    assert not awaits_pod_facts(running)


def test_evicted_pod_and_disruption_target_are_reported() -> None:
    failed = {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}
    evicted = observe_job(raw_job(conditions=[failed]), [pod(reason="Evicted")])
    assert evicted is not None
    assert evicted.pod_reason == "Evicted"
    disrupted = pod(
        137,
        conditions=[
            {"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler"}
        ],
    )
    preempted = observe_job(raw_job(conditions=[failed]), [disrupted])
    assert preempted is not None
    assert preempted.pod_reason == "PreemptionByScheduler"


def test_deleting_job() -> None:
    raw = raw_job()
    raw["metadata"]["deletionTimestamp"] = "2026-11-23T12:00:00Z"
    job = observe_job(raw, [])
    assert job is not None
    assert job.deleting


@pytest.mark.parametrize(
    "mangle",
    [
        lambda j: j["metadata"]["annotations"].clear(),
        lambda j: j["metadata"]["labels"].pop("extraction.dev/run"),
        lambda j: j["metadata"]["labels"].update({"extraction.dev/attempt": "two"}),
        lambda j: j["metadata"]["labels"].update({"extraction.dev/attempt": "0"}),
        lambda j: j.pop("metadata"),
    ],
)
def test_foreign_or_mangled_jobs_are_ignored(mangle: Any) -> None:
    raw = raw_job()
    mangle(raw)
    assert observe_job(raw, []) is None


def test_garbage_inside_our_job_does_not_crash() -> None:
    raw = raw_job(conditions="nope", startTime=5, completionTime="not a time")
    job = observe_job(raw, [{"status": {"containerStatuses": [None, 3]}}, "junk"])  # type: ignore[list-item]
    assert job is not None
    assert job.phase == "Active"
    assert job.started_at is None
    assert observe_job("junk", []) is None  # type: ignore[arg-type]
