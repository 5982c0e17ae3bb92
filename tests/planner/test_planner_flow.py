"""The happy paths: dependencies, fan-out, parallelism, order, phases and their Events."""

from __future__ import annotations

from planner_kit import (
    NOW,
    FakeCluster,
    condition,
    created_nodes,
    event_reasons,
    observed,
    snapshot,
    spec,
    stage,
)

from extraction_operator.planner import plan_run


def test_linear_dag_runs_one_stage_after_the_other() -> None:
    cluster = FakeCluster(
        spec(stage("chunk"), stage("mentions", "chunk"), stage("link", "mentions"))
    )
    plan = cluster.step()
    assert created_nodes(plan) == ["chunk"]
    assert plan.status["phase"] == "Running"
    assert plan.status["startedAt"] == "2026-11-23T12:00:00Z"
    assert plan.status["progress"] == "0/3"
    assert plan.status["nodes"]["chunk"] == {
        "phase": "Running",
        "attempts": 1,
        "jobName": "xr-chunk-1",
        "startedAt": "2026-11-23T12:00:00Z",
    }
    assert plan.status["nodes"]["mentions"] == {"phase": "Pending", "attempts": 0}
    assert event_reasons(plan) == ["StageStarted"]
    assert condition(plan.status, "Reconciling")["status"] == "True"
    assert condition(plan.status, "Ready")["status"] == "False"
    assert condition(plan.status, "Stalled")["status"] == "False"
    assert cluster.step().create_jobs == []  # nothing new until chunk finishes

    cluster.tick(30)
    cluster.finish("chunk")
    plan = cluster.step()
    assert created_nodes(plan) == ["mentions"]
    assert event_reasons(plan) == ["StageSucceeded", "StageStarted"]
    assert plan.status["progress"] == "1/3"
    assert plan.status["nodes"]["chunk"]["finishedAt"] == "2026-11-23T12:00:30Z"

    cluster.finish("mentions")
    assert created_nodes(cluster.step()) == ["link"]
    cluster.tick(5)
    cluster.finish("link")
    plan = cluster.step()
    assert plan.create_jobs == []
    assert plan.status["phase"] == "Succeeded"
    assert plan.status["finishedAt"] == "2026-11-23T12:00:35Z"
    assert plan.status["progress"] == "3/3"
    assert event_reasons(plan) == ["StageSucceeded", "RunSucceeded"]
    assert condition(plan.status, "Ready")["status"] == "True"
    assert condition(plan.status, "Reconciling")["status"] == "False"
    assert plan.requeue_after is None
    again = cluster.step()
    assert not again.status_changed
    assert again.events == []


def test_diamond_waits_for_both_branches() -> None:
    cluster = FakeCluster(spec(stage("a"), stage("b", "a"), stage("c", "a"), stage("d", "b", "c")))
    cluster.step()
    cluster.finish("a")
    assert created_nodes(cluster.step()) == ["b", "c"]
    cluster.finish("c")
    assert created_nodes(cluster.step()) == []
    cluster.finish("b")
    assert created_nodes(cluster.step()) == ["d"]


def test_launch_order_is_spec_order_not_name_order() -> None:
    cluster = FakeCluster(spec(stage("zeta"), stage("alpha"), stage("mid"), parallelism=10))
    assert created_nodes(cluster.step()) == ["zeta", "alpha", "mid"]


def test_parallelism_limits_active_jobs() -> None:
    cluster = FakeCluster(spec(*(stage(f"s{i}") for i in range(5)), parallelism=2))
    assert created_nodes(cluster.step()) == ["s0", "s1"]
    assert created_nodes(cluster.step()) == []
    cluster.finish("s1")
    assert created_nodes(cluster.step()) == ["s2"]
    assert len(cluster.active()) == 2


def test_parallelism_counts_running_nodes_whose_jobs_the_watch_has_not_shown_yet() -> None:
    run_spec = spec(stage("a"), stage("b"), parallelism=1)
    first = plan_run(snapshot(run_spec))
    assert created_nodes(first) == ["a"]
    # The Job is created but not yet in the shell's index: still no second launch.
    lagging = plan_run(snapshot(run_spec, first.status, [], now=NOW))
    assert lagging.create_jobs == []


def test_active_jobs_not_in_status_count_against_parallelism() -> None:
    run_spec = spec(stage("a"), stage("b"), parallelism=1)
    stray = observed("xr-zz-1", "zz", 1)  # a Job of a node this spec no longer has
    assert plan_run(snapshot(run_spec, {}, [stray])).create_jobs == []


def test_fan_out_nodes_and_dependants_wait_for_all_shards() -> None:
    cluster = FakeCluster(spec(stage("chunk", shards=3), stage("merge", "chunk"), parallelism=5))
    plan = cluster.step()
    assert created_nodes(plan) == ["chunk[0]", "chunk[1]", "chunk[2]"]
    envs = [
        {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
        for job in plan.create_jobs
    ]
    assert [(env["SHARD_INDEX"], env["SHARD_COUNT"]) for env in envs] == [
        ("0", "3"),
        ("1", "3"),
        ("2", "3"),
    ]
    assert set(plan.status["nodes"]) == {"chunk[0]", "chunk[1]", "chunk[2]", "merge"}
    cluster.finish("chunk[0]")
    cluster.finish("chunk[2]")
    assert created_nodes(cluster.step()) == []
    cluster.finish("chunk[1]")
    assert created_nodes(cluster.step()) == ["merge"]


def test_fan_out_shard_failure_is_retried_alone() -> None:
    retry = {"limit": 2, "backoff": {"initialSeconds": 5, "jitter": "none"}}
    cluster = FakeCluster(spec(stage("chunk", shards=3), stage("merge", "chunk"), retry=retry))
    cluster.step()
    cluster.finish("chunk[0]")
    cluster.finish("chunk[1]", 1, message="shard 1 broke")
    cluster.finish("chunk[2]")
    plan = cluster.step()
    assert plan.create_jobs == []
    assert cluster.node("chunk[1]")["phase"] == "Waiting"
    assert plan.requeue_after == 5
    cluster.tick(5)
    plan = cluster.step()
    assert created_nodes(plan) == ["chunk[1]"]
    assert plan.create_jobs[0]["metadata"]["name"] == "xr-chunk-1-2"
    assert cluster.node("chunk[0]")["attempts"] == 1
    cluster.finish("chunk[1]")
    assert created_nodes(cluster.step()) == ["merge"]


def test_many_shards_starting_at_once_give_one_aggregated_event() -> None:
    cluster = FakeCluster(spec(stage("wide", shards=50), parallelism=100))
    plan = cluster.step()
    assert len(plan.create_jobs) == 50
    assert event_reasons(plan) == ["StageStarted"]
    assert "50 nodes of stage wide" in plan.events[0].message


def test_a_few_shards_get_individual_events() -> None:
    cluster = FakeCluster(spec(stage("narrow", shards=3), parallelism=10))
    assert event_reasons(cluster.step()) == ["StageStarted"] * 3


def test_requeue_is_none_when_only_jobs_are_running() -> None:
    cluster = FakeCluster(spec(stage("a")))
    cluster.step()
    assert cluster.step().requeue_after is None


def test_observed_generation_follows_the_snapshot() -> None:
    plan = plan_run(snapshot(spec(stage("a")), generation=7))
    assert plan.status["observedGeneration"] == 7
    assert all(item["observedGeneration"] == 7 for item in plan.status["conditions"])
