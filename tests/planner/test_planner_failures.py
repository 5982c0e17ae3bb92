"""Failure classification, retries with backoff, circuits, lost Jobs, failFast and adoption."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
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
)

from extraction_operator.planner import CircuitGate, plan_run


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_retries_wait_exponentially_then_fail_with_the_stages_own_message() -> None:
    cluster = FakeCluster(spec(stage("a"), stage("b", "a"), retry=no_jitter(limit=3)))
    cluster.step()
    expected_delays = [10, 20, 40]
    for attempt, delay in enumerate(expected_delays, start=1):
        cluster.tick(3)
        cluster.finish("a", 1, message=f"flaky {attempt}")
        plan = cluster.step()
        node = cluster.node("a")
        assert node["phase"] == "Waiting"
        assert node["failures"] == attempt
        assert node["reason"] == "Error"
        assert node["exitCode"] == 1
        assert node["message"] == f"flaky {attempt}"
        assert parse(node["nextRetryAt"]) - cluster.now == timedelta(seconds=delay)
        assert plan.requeue_after == delay
        assert event_reasons(plan) == ["RetryScheduled"]
        assert f"retry {attempt}/3" in plan.status["message"]
        cluster.tick(delay - 1)
        assert cluster.step().create_jobs == []  # not before nextRetryAt
        cluster.tick(1)
        plan = cluster.step()
        assert created_nodes(plan) == ["a"]
        assert cluster.node("a")["attempts"] == attempt + 1
        assert plan.create_jobs[0]["metadata"]["name"] == f"xr-a-{attempt + 1}"
    cluster.finish("a", 4, message="ValueError: still broken")
    plan = cluster.step()
    node = cluster.node("a")
    assert node["phase"] == "Failed"
    assert node["failures"] == 4
    assert node["exitCode"] == 4
    assert node["message"] == "ValueError: still broken"
    assert cluster.node("b")["phase"] == "Skipped"
    assert plan.status["phase"] == "Failed"
    assert "ValueError: still broken" in plan.status["message"]
    assert "exit code 4" in plan.status["message"]
    assert event_reasons(plan) == ["StageFailed", "RunFailed"]
    assert [event.type for event in plan.events] == ["Warning", "Warning"]
    stalled = condition(plan.status, "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "Error")
    assert condition(plan.status, "Ready")["status"] == "False"
    assert condition(plan.status, "Reconciling")["status"] == "False"
    assert plan.requeue_after is None


def test_stage_retry_override_wins() -> None:
    cluster = FakeCluster(
        spec(stage("a", retry={"limit": 0}), retry=no_jitter(limit=5)),
    )
    cluster.step()
    cluster.finish("a", 1)
    assert cluster.step().status["nodes"]["a"]["phase"] == "Failed"


def test_full_jitter_delays_stay_inside_their_bounds() -> None:
    retry = {"limit": 6, "backoff": {"initialSeconds": 4, "factor": 3, "maxSeconds": 50}}
    cluster = FakeCluster(spec(stage("a"), retry=retry))
    cluster.step()
    for failures in range(1, 7):
        cluster.finish("a", 1)
        cluster.step()
        gap = (parse(cluster.node("a")["nextRetryAt"]) - cluster.now).total_seconds()
        cap = min(50, 4 * 3 ** (failures - 1))
        assert 0 <= gap <= cap + 1  # +1: nextRetryAt is rounded up to a whole second
        cluster.tick(gap)
        assert created_nodes(cluster.step()) == ["a"]


def test_non_retryable_exit_code_fails_at_once() -> None:
    cluster = FakeCluster(
        spec(stage("a"), retry={"limit": 3, "nonRetryableExitCodes": [2]}),
    )
    cluster.step()
    cluster.finish("a", 2, message="bad input file")
    plan = cluster.step()
    node = cluster.node("a")
    assert (node["phase"], node["reason"], node["exitCode"]) == ("Failed", "NonRetryable", 2)
    assert plan.status["phase"] == "Failed"
    assert condition(plan.status, "Stalled")["reason"] == "NonRetryable"


def test_stage_deadline_is_deadline_exceeded_and_retried() -> None:
    cluster = FakeCluster(spec(stage("a", timeoutSeconds=60), retry=no_jitter(limit=0)))
    cluster.step()
    cluster.finish("a", 143, failure_reason="DeadlineExceeded")
    cluster.step()
    node = cluster.node("a")
    assert (node["phase"], node["reason"]) == ("Failed", "DeadlineExceeded")


def test_a_stage_deadline_message_names_the_timeout() -> None:
    cluster = FakeCluster(spec(stage("a", timeoutSeconds=60), retry=no_jitter(limit=0)))
    cluster.step()
    # The Job controller deleted the pod: no exit code, only the Job's condition.
    job = cluster.job_of("a")
    cluster.jobs[job.name] = replace(
        job,
        phase="Failed",
        failure_reason="DeadlineExceeded",
        job_message="Job was active longer than specified deadline",
        finished_at=cluster.now,
    )
    cluster.step()
    node = cluster.node("a")
    assert (node["phase"], node["reason"]) == ("Failed", "DeadlineExceeded")
    assert node["message"] == "the stage ran longer than its timeoutSeconds (60s)"


def _silent_failure(exit_code: int, **fields: object) -> dict:
    """A node whose attempt exited `exit_code` with no termination message and no log."""
    run_spec = spec(stage("a"), retry=no_jitter(limit=1, initial=10))
    job = observed(
        "xr-a-1",
        "a",
        1,
        "Failed",
        exit_code=exit_code,
        failure_reason="BackoffLimitExceeded",
        finished_at=NOW,
    )
    job = replace(job, job_message="Job has reached the specified backoff limit", **fields)
    status = {"phase": "Running", "nodes": {"a": {"phase": "Running", "attempts": 1}}}
    plan = plan_run(snapshot(run_spec, status, [job], now=NOW))
    texts = [plan.status["message"], *(event.message for event in plan.events)]
    assert all("backoff limit" not in text for text in texts), texts
    node: dict = plan.status["nodes"]["a"]
    return node


def test_a_silent_failure_says_what_is_known_and_where_to_look() -> None:
    node = _silent_failure(3)
    assert (node["phase"], node["reason"], node["exitCode"]) == ("Waiting", "Error", 3)
    assert node["message"] == (
        "stage exited with code 3 and wrote no termination message; see kubectl logs job/xr-a-1"
    )


def test_a_silent_failure_names_a_telling_container_reason() -> None:
    node = _silent_failure(137, exit_reason="OOMKilled")
    assert node["message"].startswith("stage exited with code 137 (OOMKilled) and wrote no")


def test_a_silent_failure_whose_pod_is_gone_does_not_quote_the_backoff_limit() -> None:
    run_spec = spec(stage("a"), retry=no_jitter(limit=1))
    job = observed("xr-a-1", "a", 1, "Failed", failure_reason="BackoffLimitExceeded")
    job = replace(job, job_message="Job has reached the specified backoff limit", finished_at=NOW)
    status = {"phase": "Running", "nodes": {"a": {"phase": "Running", "attempts": 1}}}
    node = plan_run(snapshot(run_spec, status, [job])).status["nodes"]["a"]
    assert node["reason"] == "PodLost"
    assert "backoff limit" not in node["message"]
    assert "exit code is unknown" in node["message"]


@pytest.mark.parametrize(
    ("pod_reason", "exit_code"),
    [("Evicted", 137), ("PreemptionByScheduler", 143), (None, None)],
)
def test_evicted_or_vanished_pods_are_pod_lost(
    pod_reason: str | None, exit_code: int | None
) -> None:
    run_spec = spec(stage("a"), retry=no_jitter(limit=1))
    job = observed(
        "xr-a-1",
        "a",
        1,
        "Failed",
        exit_code=exit_code,
        pod_reason=pod_reason,
        failure_reason="BackoffLimitExceeded",
        finished_at=NOW,
    )
    status = {"phase": "Running", "nodes": {"a": {"phase": "Running", "attempts": 1}}}
    plan = plan_run(snapshot(run_spec, status, [job]))
    node = plan.status["nodes"]["a"]
    assert (node["phase"], node["reason"]) == ("Waiting", "PodLost")


def test_job_gone_is_pod_lost_only_after_the_grace() -> None:
    cluster = FakeCluster(spec(stage("a"), retry=no_jitter(limit=1)))
    cluster.step()
    cluster.jobs.clear()  # deleted by hand, or not yet in the shell's index
    cluster.tick(4)
    plan = cluster.step()
    assert cluster.node("a")["phase"] == "Running"
    assert plan.requeue_after == 6  # re-check when the 10 s grace is over
    assert not plan.events
    cluster.tick(6)
    plan = cluster.step()
    node = cluster.node("a")
    assert (node["phase"], node["reason"], node["failures"]) == ("Waiting", "PodLost", 1)
    assert "xr-a-1" in node["message"]
    cluster.tick(10)
    assert created_nodes(cluster.step()) == ["a"]
    assert cluster.node("a")["attempts"] == 2


def test_circuit_open_exit_blocks_without_using_a_retry() -> None:
    recovery = NOW + timedelta(seconds=30)
    cluster = FakeCluster(
        spec(
            stage("a", circuits=["llm"]),
            circuitBreakers={"llm": {}},
            retry=no_jitter(limit=0),
        )
    )
    cluster.step()
    cluster.circuits = {"llm": CircuitGate("open", recovery)}
    cluster.finish("a", 75, message="circuit llm is open")
    plan = cluster.step()
    node = cluster.node("a")
    assert node["phase"] == "Blocked"
    assert node["reason"] == "CircuitOpen"
    assert "failures" not in node  # did not count against the limit of 0
    assert node["nextRetryAt"] == "2026-11-23T12:00:30Z"
    assert plan.requeue_after == 30
    assert event_reasons(plan) == ["StageBlocked"]
    cluster.tick(29)
    assert cluster.step().create_jobs == []
    cluster.tick(1)
    cluster.circuits = {"llm": CircuitGate("half-open", None)}
    plan = cluster.step()
    assert created_nodes(plan) == ["a"]
    assert cluster.node("a")["attempts"] == 2
    cluster.finish("a")
    assert cluster.step().status["phase"] == "Succeeded"


def test_circuit_open_exit_with_closed_gate_waits_initial_seconds() -> None:
    cluster = FakeCluster(
        spec(stage("a", circuits=["llm"]), circuitBreakers={"llm": {}}, retry=no_jitter(initial=7))
    )
    cluster.step()
    cluster.finish("a", 75)
    plan = cluster.step()
    node = cluster.node("a")
    assert (node["phase"], node["reason"], node.get("failures", 0)) == (
        "Waiting",
        "CircuitOpen",
        0,
    )
    assert plan.requeue_after == 7
    cluster.tick(7)
    assert created_nodes(cluster.step()) == ["a"]


def test_open_circuit_blocks_a_pending_stage_until_recovery() -> None:
    recovery = NOW + timedelta(seconds=45)
    run_spec = spec(stage("a", circuits=["llm"]), stage("b"), circuitBreakers={"llm": {}})
    gates = {"llm": CircuitGate("open", recovery)}
    plan = plan_run(snapshot(run_spec, circuits=gates))
    assert created_nodes(plan) == ["b"]
    node = plan.status["nodes"]["a"]
    assert node["phase"] == "Blocked"
    assert node["reason"] == "CircuitOpen"
    assert "llm" in node["message"]
    assert "12:00:45Z" in node["message"]
    assert plan.requeue_after == 45
    assert "StageBlocked" in event_reasons(plan)
    later = plan_run(snapshot(run_spec, plan.status, circuits=gates, now=recovery))
    assert created_nodes(later) == ["a"]


def test_run_is_pending_while_everything_is_blocked() -> None:
    run_spec = spec(stage("a", circuits=["llm"]), circuitBreakers={"llm": {}})
    gates = {"llm": CircuitGate("open", NOW + timedelta(seconds=10))}
    plan = plan_run(snapshot(run_spec, circuits=gates))
    assert plan.status["phase"] == "Pending"
    assert "startedAt" not in plan.status
    assert condition(plan.status, "Reconciling")["reason"] == "CircuitOpen"


def test_open_gate_without_recovery_time_is_treated_as_closed() -> None:
    run_spec = spec(stage("a", circuits=["llm"]), circuitBreakers={"llm": {}})
    plan = plan_run(snapshot(run_spec, circuits={"llm": CircuitGate("open", None)}))
    assert created_nodes(plan) == ["a"]


def test_fail_fast_stops_launching_and_lets_running_jobs_finish() -> None:
    cluster = FakeCluster(
        spec(
            stage("a"),
            stage("b"),
            stage("c", "a"),
            stage("d"),
            parallelism=2,
            retry=no_jitter(limit=0),
        )
    )
    assert created_nodes(cluster.step()) == ["a", "b"]
    cluster.tick(1)
    cluster.finish("a", 1, message="first failure")
    plan = cluster.step()
    assert plan.create_jobs == []
    assert plan.status["phase"] == "Running"  # b is still running
    assert cluster.node("c")["phase"] == "Skipped"
    assert cluster.node("d")["phase"] == "Skipped"
    assert cluster.node("d")["reason"] == "FailFast"
    assert "stopping" in plan.status["message"]
    cluster.tick(1)
    cluster.finish("b", 1, message="second failure")
    plan = cluster.step()
    assert plan.status["phase"] == "Failed"
    assert "first failure" in plan.status["message"]
    assert "second failure" not in plan.status["message"]


def test_without_fail_fast_independent_branches_keep_running() -> None:
    cluster = FakeCluster(
        spec(
            stage("a"),
            stage("b", "a"),
            stage("c"),
            stage("d", "c"),
            parallelism=2,
            failFast=False,
            retry=no_jitter(limit=0),
        )
    )
    assert created_nodes(cluster.step()) == ["a", "c"]
    cluster.finish("a", 1)
    plan = cluster.step()
    assert cluster.node("b")["phase"] == "Skipped"
    assert cluster.node("b")["reason"] == "DependencyFailed"
    assert plan.status["phase"] == "Running"
    cluster.finish("c")
    assert created_nodes(cluster.step()) == ["d"]
    cluster.finish("d")
    plan = cluster.step()
    assert plan.status["phase"] == "Failed"
    assert plan.status["progress"] == "2/4"


def test_without_fail_fast_skips_propagate_through_chains_in_any_spec_order() -> None:
    run_spec = spec(
        stage("d", "c"),
        stage("c", "b"),
        stage("b", "a"),
        stage("a"),
        failFast=False,
        retry=no_jitter(limit=0),
    )
    cluster = FakeCluster(run_spec)
    cluster.step()
    cluster.finish("a", 1)
    plan = cluster.step()
    assert [plan.status["nodes"][k]["phase"] for k in "abcd"] == [
        "Failed",
        "Skipped",
        "Skipped",
        "Skipped",
    ]
    assert plan.status["phase"] == "Failed"


def test_a_finished_job_is_accounted_exactly_once() -> None:
    cluster = FakeCluster(spec(stage("a"), retry=no_jitter(limit=3)))
    cluster.step()
    cluster.finish("a", 1)
    first = cluster.step()
    again = cluster.step()
    assert cluster.node("a")["failures"] == 1
    assert not again.status_changed
    assert again.events == []
    assert again.status == first.status


def test_a_job_newer_than_status_is_adopted() -> None:
    run_spec = spec(stage("a"))
    status = plan_run(snapshot(run_spec)).status  # attempt 1 launched and recorded
    # The shell created attempt 2 and crashed before writing status; attempt 1 had failed.
    jobs = [
        observed("xr-a-1", "a", 1, "Failed", exit_code=1, finished_at=NOW),
        observed("xr-a-2", "a", 2, started_at=NOW + timedelta(seconds=20)),
    ]
    plan = plan_run(snapshot(run_spec, status, jobs, now=NOW + timedelta(seconds=21)))
    node = plan.status["nodes"]["a"]
    assert plan.create_jobs == []
    assert node["attempts"] == 2
    assert node["failures"] == 1
    assert node["jobName"] == "xr-a-2"
    assert node["phase"] == "Running"
    assert node["startedAt"] == "2026-11-23T12:00:20Z"  # when the adopted Job started


def test_a_job_this_process_launched_is_recorded_as_started_not_adopted() -> None:
    """The shell's status write lost a race after it created the Job: a launch, not an adoption."""
    run_spec = spec(stage("a"))
    jobs = [observed("xr-a-1", "a", 1)]
    base = snapshot(run_spec, {}, jobs)
    ours = plan_run(replace(base, launched=frozenset({"xr-a-1"})))
    theirs = plan_run(base)
    assert ours.status["nodes"] == theirs.status["nodes"]
    assert ours.create_jobs == theirs.create_jobs == []
    assert [e.message for e in ours.events if e.reason == "StageStarted"] == [
        "a: started attempt 1 (job xr-a-1)"
    ]
    assert [e.message for e in theirs.events if e.reason == "StageStarted"] == [
        "a: adopted attempt 1 (job xr-a-1)"
    ]


def test_empty_or_garbage_status_starts_from_what_the_jobs_show() -> None:
    run_spec = spec(stage("a"), stage("b", "a"))
    jobs = [observed("xr-a-1", "a", 1, "Succeeded", exit_code=0, finished_at=NOW)]
    garbage = {
        "phase": 7,
        "nodes": {"a": "x", "b": {"attempts": -3, "phase": "Nope"}},
        "conditions": 5,
    }
    plan = plan_run(snapshot(run_spec, garbage, jobs))  # type: ignore[arg-type]
    assert plan.status["nodes"]["a"]["phase"] == "Succeeded"
    assert created_nodes(plan) == ["b"]
    assert plan.status["phase"] == "Running"


def test_node_messages_are_scrubbed_and_bounded() -> None:
    cluster = FakeCluster(spec(stage("a"), retry=no_jitter(limit=0)))
    cluster.step()
    cluster.finish("a", 1, message="x" * 5000 + " key sk-abcdefghijklmnopqrstu failed")
    plan = cluster.step()
    message = cluster.node("a")["message"]
    assert len(message.encode("utf-8")) <= 1024
    assert "sk-abcdefghijklmnopqrstu" not in message
    assert message.endswith("failed")
    assert "sk-abcdefghijklmnopqrstu" not in plan.status["message"]
    assert all("sk-abcdefghijklmnopqrstu" not in event.message for event in plan.events)


def test_retry_message_names_the_node_and_time() -> None:
    cluster = FakeCluster(
        spec(stage("entities", shards=3), retry=no_jitter(limit=3, initial=5), parallelism=3)
    )
    cluster.step()
    cluster.finish("entities[0]")
    cluster.finish("entities[1]")
    cluster.finish("entities[2]", 1)
    plan = cluster.step()
    assert plan.status["message"] == "2/3 done; entities[2] retry 1/3 at 12:00:05Z"


def test_times_with_microseconds_round_trip_without_changes() -> None:
    now = datetime(2026, 11, 23, 12, 0, 0, 600000, tzinfo=UTC)
    run_spec = spec(stage("a"))
    first = plan_run(snapshot(run_spec, now=now))
    jobs = [observed("xr-a-1", "a", 1, started_at=now)]
    again = plan_run(snapshot(run_spec, first.status, jobs, now=now + timedelta(milliseconds=100)))
    assert not again.status_changed


def test_adopting_skipped_over_attempts_does_not_count_circuit_open_exits() -> None:
    run_spec = spec(stage("a", circuits=["llm"]), circuitBreakers={"llm": {}})
    jobs = [
        observed("xr-a-1", "a", 1, "Failed", exit_code=1, finished_at=NOW),
        observed("xr-a-2", "a", 2, "Failed", exit_code=75, finished_at=NOW),
        observed("xr-a-3", "a", 3),
    ]
    plan = plan_run(snapshot(run_spec, {}, jobs))
    node = plan.status["nodes"]["a"]
    assert (node["phase"], node["attempts"], node["failures"]) == ("Running", 3, 1)


def test_backoff_counts_from_when_the_failure_is_seen_not_the_coarse_job_timestamp() -> None:
    """Job timestamps have whole-second resolution; a failure stamped 0.9 s before the planner
    sees it must still wait the full delay from the moment it is seen."""
    run_spec = spec(stage("a"), retry=no_jitter(limit=2, initial=1))
    launched = plan_run(snapshot(run_spec))
    seen_at = NOW + timedelta(seconds=5, milliseconds=900)
    failed = observed(
        "xr-a-1", "a", 1, "Failed", exit_code=1, finished_at=NOW + timedelta(seconds=5)
    )
    plan = plan_run(snapshot(run_spec, launched.status, [failed], now=seen_at))
    node = plan.status["nodes"]["a"]
    assert node["phase"] == "Waiting"
    assert parse(node["nextRetryAt"]) - seen_at >= timedelta(seconds=1)
