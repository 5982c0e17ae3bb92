"""Attempts whose pod cannot start: the cause on the node and in the run's message, one Event per
cause and attempt (across re-plans and restarts), the start deadline, and a cause that goes away
in time. Also the stage's run time, now counted from its container's start."""

from __future__ import annotations

from datetime import timedelta

from planner_kit import (
    NOW,
    FakeCluster,
    condition,
    event_reasons,
    no_jitter,
    observed,
    snapshot,
    spec,
    stage,
)

from extraction_operator.planner import plan_run
from extraction_operator.planner.node_state import parse_node_state, serialize_node_state
from extraction_operator.planner.types import StartProblem

SA = 'cannot create the pod: pods "xr-a-1-x" is forbidden: serviceaccount "nope" not found'


def stuck_cluster(**fields: object) -> FakeCluster:
    """Stage `a` launched, and its Job controller cannot create the pod."""
    cluster = FakeCluster(spec(stage("a"), **fields))
    cluster.step()
    cluster.tick(1)
    cluster.cannot_start("a", "FailedCreate", SA)
    return cluster


def cannot_start_events(plan: object) -> list[str]:
    return [e.message for e in plan.events if e.reason == "StageCannotStart"]  # type: ignore[attr-defined]


def test_the_cause_is_on_the_node_and_in_the_run_message_with_one_warning_event() -> None:
    cluster = stuck_cluster()
    plan = cluster.step()
    node = cluster.node("a")
    # Not "Running": the pod has not started, and the node says why, as a pod would.
    assert node["phase"] == "Pending"
    assert (node["reason"], node["message"]) == ("FailedCreate", SA)
    assert node["startProblems"] == ["FailedCreate"]
    assert node["attempts"] == 1
    assert node["jobName"] == "xr-a-1"
    assert plan.status["phase"] == "Running"
    assert plan.status["message"] == f"0/1 done; a not started (FailedCreate): {SA}"
    assert "running:" not in plan.status["message"]
    [warning] = plan.events
    assert (warning.type, warning.reason) == ("Warning", "StageCannotStart")
    assert warning.message == (
        f"a attempt 1 cannot start (FailedCreate): {SA}; the attempt ends at 12:10:01Z unless "
        "it starts (startTimeoutSeconds 600s)"
    )
    # The start deadline: the launch (12:00:00, floored) + 600 s, rounded up to never be short.
    assert plan.requeue_after == 600
    assert condition(plan.status, "Reconciling")["status"] == "True"
    assert condition(plan.status, "Stalled")["status"] == "False"


def test_re_planning_the_same_cause_reports_nothing_new() -> None:
    cluster = stuck_cluster()
    cluster.step()
    for _ in range(3):
        cluster.tick(5)
        plan = cluster.step()
        assert plan.events == []
        assert not plan.status_changed


def test_a_restarted_operator_does_not_report_it_again() -> None:
    """Status is the only memory: a fresh planner reading the written status stays quiet."""
    cluster = stuck_cluster()
    cluster.step()
    written = dict(cluster.status)
    again = plan_run(snapshot(cluster.run_spec, written, list(cluster.jobs.values()), now=NOW))
    assert again.events == []
    assert not again.status_changed


def test_a_stuck_attempt_holds_its_slot_and_is_not_launched_twice() -> None:
    cluster = FakeCluster(spec(stage("a"), stage("b"), parallelism=1))
    cluster.step()
    cluster.cannot_start("a", "Unschedulable", "cannot schedule the pod: 0/1 nodes available")
    for _ in range(3):
        cluster.tick(10)
        plan = cluster.step()
        assert plan.create_jobs == []
    assert cluster.node("a")["attempts"] == 1
    assert cluster.node("b")["phase"] == "Pending"


def test_when_the_cause_goes_away_the_attempt_carries_on_by_itself() -> None:
    cluster = stuck_cluster()
    cluster.step()
    cluster.tick(20)
    cluster.cannot_start("a", None)  # the ServiceAccount exists now: the pod is created
    plan = cluster.step()
    node = cluster.node("a")
    assert node["phase"] == "Running"
    assert "reason" not in node
    assert "message" not in node
    assert node["startProblems"] == ["FailedCreate"]  # reported once, for this attempt
    assert plan.events == []
    assert plan.status["message"] == "0/1 done; running: a"
    cluster.tick(5)
    cluster.starts("a")
    assert cluster.step().create_jobs == []
    cluster.tick(700)  # past the start deadline: it started, so nothing ends it
    plan = cluster.step()
    assert cluster.node("a")["phase"] == "Running"
    assert plan.delete_jobs == []
    cluster.finish("a")
    cluster.step()
    assert cluster.node("a")["phase"] == "Succeeded"
    assert "startProblems" not in cluster.node("a")
    assert cluster.status["phase"] == "Succeeded"


def test_the_start_deadline_ends_the_attempt_deletes_its_job_and_uses_a_retry() -> None:
    cluster = stuck_cluster(retry=no_jitter(limit=1, initial=10))
    cluster.step()
    cluster.tick(599)
    assert cluster.step().delete_jobs == []
    cluster.tick(1)  # 601 s after the launch's floored second: at least 600 s after it
    plan = cluster.step()
    node = cluster.node("a")
    assert node["phase"] == "Waiting"
    assert node["reason"] == "StartDeadlineExceeded"
    assert node["message"] == (
        f"the pod did not start within startTimeoutSeconds (600s): FailedCreate: {SA}"
    )
    assert node["failures"] == 1
    assert plan.delete_jobs == ["xr-a-1"]
    assert event_reasons(plan) == ["RetryScheduled"]
    # The retry is a new attempt with a new Job; the old one's problems are forgotten.
    cluster.tick(10)
    plan = cluster.step()
    assert [job["metadata"]["name"] for job in plan.create_jobs] == ["xr-a-2"]
    assert "startProblems" not in cluster.node("a")
    cluster.cannot_start("a", "FailedCreate", SA)
    assert cannot_start_events(cluster.step()) != []  # a new attempt reports its cause anew
    cluster.tick(601)
    plan = cluster.step()
    node = cluster.node("a")
    assert (node["phase"], node["reason"]) == ("Failed", "StartDeadlineExceeded")
    assert plan.status["phase"] == "Failed"
    assert "StartDeadlineExceeded" in plan.status["message"]
    assert condition(plan.status, "Stalled")["reason"] == "StartDeadlineExceeded"
    assert plan.delete_jobs == ["xr-a-2"]


def test_a_start_deadline_with_no_cause_says_so() -> None:
    cluster = FakeCluster(spec(stage("a"), retry=no_jitter(limit=0)))
    cluster.step()
    cluster.cannot_start("a", None)
    cluster.tick(601)
    cluster.step()
    assert cluster.node("a")["message"] == (
        "the pod did not start within startTimeoutSeconds (600s); the cluster gave no reason "
        "(see kubectl describe pod)"
    )


def test_a_start_deadline_after_an_earlier_cause_names_it() -> None:
    cluster = stuck_cluster(retry=no_jitter(limit=0))
    cluster.step()
    cluster.tick(5)
    cluster.cannot_start("a", None)
    cluster.step()
    cluster.tick(600)
    cluster.step()
    assert cluster.node("a")["message"] == (
        "the pod did not start within startTimeoutSeconds (600s) (earlier: FailedCreate)"
    )


def test_the_stage_start_timeout_overrides_the_runs() -> None:
    cluster = FakeCluster(
        spec(stage("a", startTimeoutSeconds=30), stage("b"), startTimeoutSeconds=120)
    )
    cluster.step()
    cluster.cannot_start("a", "Unschedulable", "0/1 nodes")
    cluster.cannot_start("b", "Unschedulable", "0/1 nodes")
    plan = cluster.step()
    assert plan.requeue_after == 31
    cluster.tick(31)
    plan = cluster.step()
    assert plan.delete_jobs == ["xr-a-1"]
    assert "(30s)" in cluster.node("a")["message"]
    assert cluster.node("b")["phase"] == "Pending"  # stuck, 90 s to go
    assert cluster.node("b")["reason"] == "Unschedulable"


def test_without_evidence_that_the_pod_has_not_started_nothing_is_ended() -> None:
    """No pod facts at all (a lagging watch, an older emulator): never fail on a guess."""
    cluster = FakeCluster(spec(stage("a")))
    cluster.step()
    cluster.tick(10_000)
    plan = cluster.step()
    assert cluster.node("a")["phase"] == "Running"
    assert plan.delete_jobs == []


def test_a_new_cause_is_reported_and_an_old_one_is_not_repeated() -> None:
    cluster = stuck_cluster()
    cluster.step()
    quota = "cannot create the pod: exceeded quota: q"
    cluster.cannot_start("a", "Unschedulable", "cannot schedule the pod: 0/1 nodes")
    plan = cluster.step()
    assert len(cannot_start_events(plan)) == 1
    assert cluster.node("a")["startProblems"] == ["FailedCreate", "Unschedulable"]
    cluster.cannot_start("a", "FailedCreate", quota)
    plan = cluster.step()
    assert cannot_start_events(plan) == []
    assert cluster.node("a")["message"] == quota  # the node always shows the cause as it is


def test_image_pull_back_off_keeps_the_registrys_words_and_is_one_cause() -> None:
    cluster = FakeCluster(spec(stage("a")))
    cluster.step()
    pull = 'cannot start container stage: failed to pull image "x": not found'
    cluster.cannot_start("a", "ErrImagePull", pull)
    assert len(cannot_start_events(cluster.step())) == 1
    cluster.cannot_start("a", "ImagePullBackOff", 'cannot start container stage: Back-off "x"')
    plan = cluster.step()
    assert plan.events == []
    assert not plan.status_changed
    assert (cluster.node("a")["reason"], cluster.node("a")["message"]) == ("ErrImagePull", pull)


def test_back_off_seen_first_then_the_pull_error_is_still_one_event() -> None:
    cluster = FakeCluster(spec(stage("a")))
    cluster.step()
    cluster.cannot_start("a", "ImagePullBackOff", "back-off")
    assert len(cannot_start_events(cluster.step())) == 1
    cluster.cannot_start("a", "ErrImagePull", "not found")
    plan = cluster.step()
    assert cannot_start_events(plan) == []
    assert cluster.node("a")["reason"] == "ErrImagePull"


def test_a_fan_out_that_cannot_start_is_one_aggregated_event() -> None:
    cluster = FakeCluster(spec(stage("a", shards=6), parallelism=6))
    cluster.step()
    for shard in range(6):
        cluster.cannot_start(f"a[{shard}]", "FailedCreate", SA)
    plan = cluster.step()
    [event] = plan.events
    assert event.reason == "StageCannotStart"
    assert event.message.startswith("6 nodes of stage a: a[0], a[1], a[2], a[3], a[4] and 1 more")
    assert "a[0] not started (FailedCreate)" in plan.status["message"]
    assert "(+5 more not started)" in plan.status["message"]


def test_the_job_deadline_backstop_during_a_start_problem_is_a_start_failure() -> None:
    """The operator was away at the start deadline; the Job's activeDeadlineSeconds fired."""
    cluster = stuck_cluster(retry=no_jitter(limit=0))
    cluster.step()
    cluster.tick(700)
    cluster.finish("a", 0, failure_reason="DeadlineExceeded")
    cluster.step()
    node = cluster.node("a")
    assert node["reason"] == "StartDeadlineExceeded"
    assert "FailedCreate" in node["message"]


def test_a_job_deleted_at_its_start_deadline_by_a_lost_pass_is_still_a_start_failure() -> None:
    cluster = stuck_cluster(retry=no_jitter(limit=0))
    cluster.step()
    cluster.tick(600)
    del cluster.jobs["xr-a-1"]  # deleted by a pass whose status write lost its race
    cluster.step()
    assert cluster.node("a")["reason"] == "StartDeadlineExceeded"


def test_the_run_time_counts_from_the_containers_start() -> None:
    cluster = FakeCluster(spec(stage("a", timeoutSeconds=60), retry=no_jitter(limit=0)))
    cluster.step()
    cluster.cannot_start("a", None)
    cluster.tick(100)  # waiting to start is not run time
    plan = cluster.step()
    assert plan.delete_jobs == []
    cluster.starts("a")
    plan = cluster.step()
    assert plan.requeue_after == 60
    cluster.tick(59)
    assert cluster.step().delete_jobs == []
    cluster.tick(1)
    plan = cluster.step()
    node = cluster.node("a")
    assert (node["phase"], node["reason"]) == ("Failed", "DeadlineExceeded")
    assert node["message"] == "the stage ran longer than its timeoutSeconds (60s)"
    assert plan.delete_jobs == ["xr-a-1"]


def test_a_start_error_is_a_failure_that_uses_a_retry() -> None:
    cluster = FakeCluster(spec(stage("a"), retry=no_jitter(limit=1)))
    cluster.step()
    job = cluster.job_of("a")
    cluster.jobs[job.name] = observed(
        job.name,
        "a",
        1,
        "Failed",
        exit_code=128,
        message='exec: "extract": executable file not found in $PATH',
        failure_reason="BackoffLimitExceeded",
        exit_reason="StartError",
        finished_at=NOW,
    )
    plan = cluster.step()
    node = cluster.node("a")
    assert (node["phase"], node["reason"], node["exitCode"]) == ("Waiting", "StartError", 128)
    assert node["message"] == (
        'the container could not start: exec: "extract": executable file not found in $PATH'
    )
    assert event_reasons(plan) == ["RetryScheduled"]


def test_a_re_drive_starts_clean() -> None:
    cluster = stuck_cluster(retry=no_jitter(limit=0))
    cluster.step()
    cluster.tick(600)
    cluster.step()
    assert cluster.status["phase"] == "Failed"
    cluster.redrive = "again"
    cluster.step()
    node = cluster.node("a")
    assert node["attempts"] == 2
    assert "startProblems" not in node


def test_the_wire_form_round_trips() -> None:
    state = parse_node_state(
        {
            "phase": "Pending",
            "attempts": 1,
            "jobName": "xr-a-1",
            "reason": "FailedCreate",
            "message": SA,
            "startProblems": ["FailedCreate"],
        }
    )
    assert state.phase == "Running"
    assert state.not_starting
    assert serialize_node_state(state)["phase"] == "Pending"


def test_a_pending_node_without_a_matching_start_problem_stays_pending() -> None:
    for raw in (
        {"phase": "Pending", "attempts": 0, "reason": "FailedCreate", "startProblems": ["X"]},
        {"phase": "Pending", "attempts": 2, "reason": "Y", "startProblems": ["FailedCreate"]},
        {"phase": "Pending", "attempts": 2, "reason": "X", "startProblems": "X"},
        {"phase": "Pending", "attempts": 2, "startProblems": [None, 3, "X"]},
    ):
        assert parse_node_state(raw).phase == "Pending", raw


def test_a_problem_with_a_long_message_still_leads_with_the_deadline() -> None:
    cluster = FakeCluster(spec(stage("a"), retry=no_jitter(limit=0)))
    cluster.step()
    cluster.jobs["xr-a-1"] = observed(
        "xr-a-1", "a", 1, pending=True, start_problem=StartProblem("Unschedulable", "x" * 1000)
    )
    cluster.tick(601)
    cluster.step()
    message = cluster.node("a")["message"]
    assert message.startswith("the pod did not start within startTimeoutSeconds (600s)")
    assert len(message.encode()) <= 1024


def test_the_start_deadline_counts_from_the_launch_even_after_a_restart() -> None:
    cluster = stuck_cluster(retry=no_jitter(limit=0))
    cluster.step()
    later = NOW + timedelta(seconds=601)
    plan = plan_run(
        snapshot(cluster.run_spec, cluster.status, list(cluster.jobs.values()), now=later)
    )
    assert plan.status["nodes"]["a"]["reason"] == "StartDeadlineExceeded"
    assert plan.delete_jobs == ["xr-a-1"]
