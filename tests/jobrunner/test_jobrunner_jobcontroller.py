"""Unit tests of the Job controller's pure decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from extraction_operator.localcluster.jobcontroller import (
    controller_uid,
    plan_job,
    pod_for_job,
    status_patch,
    timestamp,
)

JSON = dict[str, Any]
NOW = datetime(2026, 11, 23, 4, 0, 0, tzinfo=UTC)


def make_job(status: JSON | None = None, **spec: Any) -> JSON:
    return {
        "metadata": {"name": "j", "namespace": "ns", "uid": "job-uid"},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": {"extraction.dev/run": "r"}},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c"}]},
            },
            **spec,
        },
        "status": status or {},
    }


def make_pod(phase: str, *, ready: bool = False, deleting: bool = False, uid: str = "p") -> JSON:
    meta: JSON = {"name": f"j-{uid}", "uid": uid}
    if deleting:
        meta["deletionTimestamp"] = timestamp(NOW)
    conds = [{"type": "Ready", "status": "True" if ready else "False"}]
    return {"metadata": meta, "status": {"phase": phase, "conditions": conds}}


def types(status: JSON) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c.get("reason", "")) for c in status.get("conditions", [])}


def test_new_job_gets_one_pod_and_a_start_time() -> None:
    plan = plan_job(make_job(), [], NOW)
    assert plan.create_pods == 1
    assert plan.status == {"startTime": timestamp(NOW), "ready": 0}


def test_active_pod_is_counted_and_not_duplicated() -> None:
    plan = plan_job(make_job(), [make_pod("Running", ready=True)], NOW)
    assert plan.create_pods == 0
    assert plan.status["active"] == 1
    assert plan.status["ready"] == 1


def test_success_completes_the_job() -> None:
    job = make_job({"startTime": timestamp(NOW - timedelta(seconds=5))})
    plan = plan_job(job, [make_pod("Succeeded")], NOW)
    assert plan.status["succeeded"] == 1
    assert plan.status["completionTime"] == timestamp(NOW)
    assert types(plan.status) == {
        "SuccessCriteriaMet": ("True", "CompletionsReached"),
        "Complete": ("True", "CompletionsReached"),
    }
    assert plan.create_pods == 0


def test_failure_beyond_backoff_limit_fails_the_job() -> None:
    plan = plan_job(make_job(), [make_pod("Failed")], NOW)
    assert plan.status["failed"] == 1
    assert types(plan.status)["Failed"] == ("True", "BackoffLimitExceeded")
    assert "completionTime" not in plan.status
    assert plan.create_pods == 0


def test_failure_within_backoff_limit_replaces_the_pod() -> None:
    job = make_job(backoffLimit=2)
    assert plan_job(job, [make_pod("Failed", uid="a")], NOW).create_pods == 1
    two = [make_pod("Failed", uid="a"), make_pod("Failed", uid="b")]
    assert plan_job(job, two, NOW).create_pods == 1
    three = [*two, make_pod("Failed", uid="c")]
    assert types(plan_job(job, three, NOW).status)["Failed"][1] == "BackoffLimitExceeded"


def test_counts_never_decrease_and_gone_pods_still_count() -> None:
    job = make_job({"failed": 1, "startTime": timestamp(NOW)}, backoffLimit=3)
    assert plan_job(job, [], NOW).status["failed"] == 1
    gone = {"b": "Failed", "c": "Failed"}
    assert plan_job(job, [make_pod("Failed", uid="a")], NOW, gone=gone).status["failed"] == 3


def test_success_criteria_met_wins_over_later_failures() -> None:
    met = {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached"}
    job = make_job({"conditions": [met], "startTime": timestamp(NOW)}, backoffLimit=0)
    plan = plan_job(job, [make_pod("Failed", uid="x")], NOW, gone={"y": "Succeeded"})
    assert types(plan.status)["Complete"] == ("True", "CompletionsReached")
    assert "Failed" not in types(plan.status)


def test_deadline_kills_active_pods_then_fails() -> None:
    start = timestamp(NOW - timedelta(seconds=10))
    job = make_job({"startTime": start}, activeDeadlineSeconds=5)
    running = make_pod("Running")
    plan = plan_job(job, [running], NOW)
    assert [(p, r) for p, r, _ in plan.kill] == [(running, "DeadlineExceeded")]
    assert types(plan.status) == {"FailureTarget": ("True", "DeadlineExceeded")}
    job["status"] = plan.status
    after = plan_job(job, [make_pod("Failed")], NOW)
    assert types(after.status)["Failed"] == ("True", "DeadlineExceeded")
    assert after.create_pods == 0


def test_deadline_not_reached_keeps_running() -> None:
    job = make_job({"startTime": timestamp(NOW - timedelta(seconds=4))}, activeDeadlineSeconds=5)
    plan = plan_job(job, [make_pod("Running")], NOW)
    assert plan.kill == []
    assert "conditions" not in plan.status


def test_suspend_deletes_active_pods_and_resume_restarts_the_clock() -> None:
    job = make_job({"startTime": timestamp(NOW - timedelta(hours=1))}, suspend=True)
    running = make_pod("Running")
    plan = plan_job(job, [running], NOW)
    assert plan.delete == [running]
    assert plan.create_pods == 0
    assert "startTime" not in plan.status
    assert types(plan.status)["Suspended"] == ("True", "JobSuspended")
    resumed = make_job(plan.status, suspend=False, activeDeadlineSeconds=60)
    later = NOW + timedelta(minutes=5)
    plan = plan_job(resumed, [], later)
    assert plan.create_pods == 1
    assert plan.status["startTime"] == timestamp(later)
    assert types(plan.status)["Suspended"] == ("False", "JobResumed")


def test_finished_job_kills_leftovers_and_creates_nothing() -> None:
    job = make_job({"conditions": [{"type": "Failed", "status": "True"}]}, backoffLimit=5)
    plan = plan_job(job, [make_pod("Running")], NOW)
    assert plan.create_pods == 0
    assert len(plan.kill) == 1


def test_terminating_pods_are_not_active() -> None:
    plan = plan_job(make_job(backoffLimit=1), [make_pod("Running", deleting=True)], NOW)
    assert "active" not in plan.status
    assert plan.create_pods == 1


def test_malformed_fields_fall_back_to_defaults() -> None:
    job = make_job({"failed": "many", "conditions": ["junk"]}, backoffLimit="x")
    plan = plan_job(job, [], NOW)
    assert plan.create_pods == 1


def test_status_patch_nulls_removed_keys_and_is_none_when_equal() -> None:
    assert status_patch({"a": 1}, {"a": 1}) is None
    assert status_patch({"a": 1, "b": 2}, {"a": 3}) == {"a": 3, "b": None}


def test_pod_names_are_random_looking_but_stable_per_index() -> None:
    first = pod_for_job(make_job(), "n", 0)["metadata"]["name"]
    assert first == pod_for_job(make_job(), "n", 0)["metadata"]["name"]
    assert first != pod_for_job(make_job(), "n", 1)["metadata"]["name"]
    other = make_job()
    other["metadata"]["uid"] = "another-uid"
    assert first != pod_for_job(other, "n", 0)["metadata"]["name"]


def test_pod_for_job_carries_labels_owner_and_node() -> None:
    pod = pod_for_job(make_job(), "node-1", 0)
    meta = pod["metadata"]
    assert meta["name"].startswith("j-")
    assert len(meta["name"]) == len("j-") + 5
    assert meta["labels"] == {
        "extraction.dev/run": "r",
        "batch.kubernetes.io/controller-uid": "job-uid",
        "batch.kubernetes.io/job-name": "j",
        "controller-uid": "job-uid",
        "job-name": "j",
    }
    assert controller_uid(pod) == "job-uid"
    assert meta["ownerReferences"][0]["kind"] == "Job"
    assert pod["spec"]["nodeName"] == "node-1"
    assert pod["spec"]["restartPolicy"] == "Never"
