"""Run-level behaviour: deadline, suspend, re-drive, invalid spec, conditions, size, determinism."""

from __future__ import annotations

import random
from datetime import timedelta

from planner_kit import (
    NOW,
    FakeCluster,
    condition,
    created_nodes,
    event_reasons,
    no_jitter,
    observed,
    snapshot,
    spec,
    stage,
    status_bytes,
)

from extraction_operator.planner import ObservedJob, plan_run

# ------------------------------------------------------------------------------- run deadline


def test_run_deadline_deletes_active_jobs_and_fails_the_run() -> None:
    cluster = FakeCluster(
        spec(stage("a"), stage("b"), stage("c", "a"), parallelism=2, activeDeadlineSeconds=100)
    )
    plan = cluster.step()
    assert plan.requeue_after == 100
    cluster.tick(60)
    cluster.finish("b")
    plan = cluster.step()
    assert plan.requeue_after == 40
    cluster.tick(40)
    before = dict(cluster.jobs)
    plan = cluster.step()
    assert plan.delete_jobs == ["xr-a-1"]
    assert "xr-a-1" in before
    assert plan.create_jobs == []
    assert plan.status["phase"] == "Failed"
    nodes = plan.status["nodes"]
    assert (nodes["a"]["phase"], nodes["a"]["reason"]) == ("Failed", "DeadlineExceeded")
    assert (nodes["c"]["phase"], nodes["c"]["reason"]) == ("Skipped", "DeadlineExceeded")
    assert nodes["b"]["phase"] == "Succeeded"
    assert condition(plan.status, "Stalled")["reason"] == "DeadlineExceeded"
    assert "activeDeadlineSeconds" in plan.status["message"]
    assert "RunFailed" in event_reasons(plan)
    assert plan.requeue_after is None
    again = cluster.step()
    assert not again.status_changed
    assert condition(again.status, "Stalled")["reason"] == "DeadlineExceeded"


def test_run_deadline_that_passed_while_the_operator_was_down() -> None:
    run_spec = spec(stage("a"), stage("b", "a"), activeDeadlineSeconds=60)
    status = plan_run(snapshot(run_spec)).status
    jobs = [observed("xr-a-1", "a", 1)]
    plan = plan_run(snapshot(run_spec, status, jobs, now=NOW + timedelta(hours=3)))
    assert plan.delete_jobs == ["xr-a-1"]
    assert plan.status["phase"] == "Failed"
    assert condition(plan.status, "Stalled")["reason"] == "DeadlineExceeded"


def test_a_job_that_succeeded_before_the_deadline_still_counts() -> None:
    run_spec = spec(stage("a"), activeDeadlineSeconds=60)
    status = plan_run(snapshot(run_spec)).status
    jobs = [observed("xr-a-1", "a", 1, "Succeeded", exit_code=0, finished_at=NOW)]
    plan = plan_run(snapshot(run_spec, status, jobs, now=NOW + timedelta(seconds=90)))
    assert plan.status["phase"] == "Succeeded"


def test_deadline_is_measured_from_the_redrive() -> None:
    cluster = FakeCluster(spec(stage("a"), activeDeadlineSeconds=100, retry=no_jitter(limit=0)))
    cluster.step()
    cluster.tick(50)
    cluster.finish("a", 1)
    cluster.step()
    cluster.tick(500)
    cluster.redrive = "1"
    plan = cluster.step()
    assert created_nodes(plan) == ["a"]
    assert plan.requeue_after == 100
    cluster.tick(99)
    assert cluster.step().status["phase"] == "Running"
    cluster.tick(1)
    assert cluster.step().status["phase"] == "Failed"


def test_failed_run_before_the_deadline_keeps_its_own_reason_later() -> None:
    cluster = FakeCluster(spec(stage("a"), activeDeadlineSeconds=100, retry=no_jitter(limit=0)))
    cluster.step()
    cluster.finish("a", 1)
    cluster.step()
    cluster.tick(1000)
    plan = cluster.step()
    assert condition(plan.status, "Stalled")["reason"] == "Error"
    assert not plan.status_changed


# ------------------------------------------------------------------------------------ suspend


def test_suspend_launches_nothing_and_resume_continues() -> None:
    run_spec = spec(stage("a"), stage("b", "a"))
    cluster = FakeCluster(run_spec)
    cluster.step()
    cluster.run_spec = {**run_spec, "suspend": True}
    plan = cluster.step()
    assert plan.status["phase"] == "Suspended"
    assert plan.status["message"].startswith("suspended; 0/2 done; running: a")
    assert condition(plan.status, "Ready")["reason"] == "Suspended"
    assert condition(plan.status, "Reconciling")["status"] == "False"
    assert "RunSuspended" in event_reasons(plan)
    cluster.finish("a")  # the active Job finishes and is accounted
    plan = cluster.step()
    assert cluster.node("a")["phase"] == "Succeeded"
    assert plan.create_jobs == []
    assert plan.status["phase"] == "Suspended"
    cluster.run_spec = run_spec
    plan = cluster.step()
    assert created_nodes(plan) == ["b"]
    assert plan.status["phase"] == "Running"
    assert "RunResumed" in event_reasons(plan)


def test_suspended_from_the_start() -> None:
    plan = plan_run(snapshot(spec(stage("a"), suspend=True)))
    assert plan.create_jobs == []
    assert plan.status["phase"] == "Suspended"
    assert plan.requeue_after is None


def test_suspend_holds_due_retries() -> None:
    run_spec = spec(stage("a"), retry=no_jitter(limit=2, initial=5))
    cluster = FakeCluster(run_spec)
    cluster.step()
    cluster.finish("a", 1)
    cluster.step()
    cluster.run_spec = {**run_spec, "suspend": True}
    cluster.tick(60)
    assert cluster.step().create_jobs == []
    cluster.run_spec = run_spec
    assert created_nodes(cluster.step()) == ["a"]


# ------------------------------------------------------------------------------------ re-drive


def _failed_run() -> FakeCluster:
    cluster = FakeCluster(spec(stage("a"), stage("b", "a"), retry=no_jitter(limit=1)))
    cluster.step()
    cluster.finish("a", 1)
    cluster.step()
    cluster.tick(10)
    cluster.step()
    cluster.finish("a", 1, message="broken")
    plan = cluster.step()
    assert plan.status["phase"] == "Failed"
    return cluster


def test_redrive_resets_failed_and_skipped_nodes_and_keeps_attempt_numbers() -> None:
    cluster = _failed_run()
    cluster.tick(100)
    cluster.redrive = "2026-11-23T12:05"
    plan = cluster.step()
    assert created_nodes(plan) == ["a"]
    assert plan.create_jobs[0]["metadata"]["name"] == "xr-a-3"
    assert cluster.node("a")["attempts"] == 3
    assert "failures" not in cluster.node("a")
    assert cluster.node("b")["phase"] == "Pending"
    assert plan.status["phase"] == "Running"
    assert "finishedAt" not in plan.status
    assert plan.status["redrive"] == "2026-11-23T12:05"
    assert plan.status["redrivenAt"] == "2026-11-23T12:01:50Z"
    assert event_reasons(plan)[0] == "Redriven"
    assert condition(plan.status, "Stalled")["status"] == "False"
    cluster.finish("a")
    assert created_nodes(cluster.step()) == ["b"]
    cluster.finish("b")
    assert cluster.step().status["phase"] == "Succeeded"


def test_the_same_redrive_value_acts_once() -> None:
    cluster = _failed_run()
    cluster.redrive = "x"
    cluster.step()
    cluster.finish("a", 1)
    cluster.step()
    cluster.tick(10)
    cluster.step()
    cluster.finish("a", 1)
    plan = cluster.step()
    assert plan.status["phase"] == "Failed"
    assert "Redriven" not in event_reasons(plan)
    assert cluster.step().create_jobs == []


def test_redrive_annotation_on_a_fresh_run_is_just_recorded() -> None:
    plan = plan_run(snapshot(spec(stage("a")), redrive="initial"))
    assert plan.status["redrive"] == "initial"
    assert "redrivenAt" not in plan.status
    assert "Redriven" not in event_reasons(plan)


def test_a_finished_run_never_launches_without_a_redrive() -> None:
    cluster = _failed_run()
    cluster.tick(3600)
    plan = cluster.step()
    assert plan.create_jobs == []
    assert not plan.status_changed


# -------------------------------------------------------------------------------- invalid spec


def test_cycle_and_unknown_dependency_stall_the_run_naming_both() -> None:
    run_spec = spec(stage("chunk", "mentions"), stage("mentions", "chunk"), stage("link", "nope"))
    plan = plan_run(snapshot(run_spec))
    assert plan.create_jobs == []
    assert plan.status["phase"] == "Pending"
    stalled = condition(plan.status, "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "InvalidSpec")
    assert "chunk -> mentions -> chunk" in stalled["message"]
    assert "spec.stages[2].dependsOn[0]" in stalled["message"]
    assert "'nope'" in stalled["message"]
    assert condition(plan.status, "Ready")["status"] == "False"
    assert condition(plan.status, "Reconciling")["status"] == "False"
    assert [(e.type, e.reason) for e in plan.events] == [("Warning", "InvalidSpec")]
    assert plan.requeue_after is None
    again = plan_run(snapshot(run_spec, plan.status))
    assert not again.status_changed
    assert again.events == []


def test_schema_errors_are_reported_with_their_field() -> None:
    plan = plan_run(snapshot({"stages": [{"name": "a", "shards": 0}], "image": "i"}))
    assert "spec.stages[0].shards" in plan.status["message"]
    assert plan.create_jobs == []
    garbage = plan_run(snapshot("not a spec", {"phase": ["x"]}))  # type: ignore[arg-type]
    assert condition(garbage.status, "Stalled")["reason"] == "InvalidSpec"


# ---------------------------------------------------------------------------------- conditions


def test_last_transition_time_changes_only_with_the_condition_status() -> None:
    cluster = FakeCluster(spec(stage("a"), stage("b", "a")))
    cluster.step()
    reconciling = condition(cluster.status, "Reconciling")
    cluster.tick(30)
    cluster.finish("a")
    cluster.step()
    assert (
        condition(cluster.status, "Reconciling")["lastTransitionTime"]
        == reconciling["lastTransitionTime"]
    )
    cluster.tick(30)
    cluster.finish("b")
    cluster.step()
    done = condition(cluster.status, "Reconciling")
    assert done["status"] == "False"
    assert done["lastTransitionTime"] == "2026-11-23T12:01:00Z"
    assert condition(cluster.status, "Ready")["lastTransitionTime"] == "2026-11-23T12:01:00Z"


# --------------------------------------------------------------------------------- status size


def test_status_of_a_huge_run_with_every_node_failed_stays_under_512_kib() -> None:
    stages = [stage("wide", shards=500)] + [stage(f"stage-{i:02d}") for i in range(99)]
    run_spec = spec(*stages, failFast=False, retry=no_jitter(limit=0), parallelism=1000)
    first = plan_run(snapshot(run_spec))
    assert len(first.create_jobs) == 599
    assert len(first.events) < 110  # aggregated per stage
    noisy = "é" * 2000  # worst case: every message at the 1 KiB cap, multi-byte
    jobs = [
        observed(
            job["metadata"]["name"],
            job["metadata"]["annotations"]["extraction.dev/node"],
            1,
            "Failed",
            exit_code=1,
            message=noisy,
            finished_at=NOW,
            failure_reason="BackoffLimitExceeded",
        )
        for job in first.create_jobs
    ]
    plan = plan_run(snapshot(run_spec, first.status, jobs, now=NOW + timedelta(seconds=5)))
    assert plan.status["phase"] == "Failed"
    assert status_bytes(plan.status) < 512 * 1024
    assert all(
        len(node.get("message", "").encode("utf-8")) <= 1024
        for node in plan.status["nodes"].values()
    )
    again = plan_run(snapshot(run_spec, plan.status, jobs, now=NOW + timedelta(seconds=6)))
    assert not again.status_changed


def test_succeeded_nodes_keep_the_stages_termination_message() -> None:
    cluster = FakeCluster(spec(stage("a")))
    cluster.step()
    cluster.finish("a", message="processed 10 chunks token=sk-abcdefghijklmnopqrstuvwx")
    cluster.step()
    node = cluster.node("a")
    assert node["message"].startswith("processed 10 chunks")
    assert "sk-abcdefghijklmnopqrstuvwx" not in node["message"], "secrets are scrubbed"
    assert "exitCode" not in node


# ------------------------------------------------------------------------------- determinism


def test_same_inputs_same_plan_whatever_the_job_order() -> None:
    run_spec = spec(stage("a", shards=4), stage("b", "a"), parallelism=3, retry={"limit": 3})
    jobs: list[ObservedJob] = [
        observed("xr-a-0-1", "a[0]", 1, "Failed", exit_code=1, finished_at=NOW),
        observed("xr-a-1-1", "a[1]", 1, "Succeeded", exit_code=0, finished_at=NOW),
        observed("xr-a-2-1", "a[2]", 1, "Failed", exit_code=3, finished_at=NOW),
    ]
    status = plan_run(snapshot(run_spec)).status
    later = NOW + timedelta(seconds=1)
    plan = plan_run(snapshot(run_spec, status, jobs, now=later))
    assert plan == plan_run(snapshot(run_spec, status, jobs, now=later))
    shuffled = list(jobs)
    random.Random(4).shuffle(shuffled)
    assert plan == plan_run(snapshot(run_spec, status, shuffled, now=later))


def test_a_finished_run_deletes_a_late_job_instead_of_continuing() -> None:
    run_spec = spec(stage("a"), stage("b", "a"), retry=no_jitter(limit=0))
    cluster = FakeCluster(run_spec)
    cluster.step()
    cluster.finish("a", 1)
    assert cluster.step().status["phase"] == "Failed"
    # A Job the shell created just before a crash shows up after the run ended.
    late = observed("xr-a-2", "a", 2)
    cluster.jobs[late.name] = late
    plan = cluster.step()
    assert plan.status["phase"] == "Failed"
    assert plan.create_jobs == []
    assert plan.delete_jobs == ["xr-a-2"]
    assert plan.requeue_after is None


def test_jobs_already_being_deleted_are_not_deleted_again() -> None:
    run_spec = spec(stage("a"), stage("b"), parallelism=2, activeDeadlineSeconds=10)
    status = plan_run(snapshot(run_spec)).status
    jobs = [observed("xr-a-1", "a", 1, deleting=True), observed("xr-b-1", "b", 1)]
    plan = plan_run(snapshot(run_spec, status, jobs, now=NOW + timedelta(seconds=11)))
    assert plan.delete_jobs == ["xr-b-1"]


def test_circuit_summary_written_by_the_shell_is_kept() -> None:
    circuits = {"llm": {"state": "open", "failures": 5}}
    plan = plan_run(snapshot(spec(stage("a")), {"circuits": circuits}))
    assert plan.status["circuits"] == circuits
