"""Property-based tests: random DAGs, random Job outcomes, the plan -> apply loop run to the end.

Every step checks the planner's safety promises (dependencies first, parallelism, attempts never
decrease, nothing launched by a finished run, determinism, idempotency), and every simulation
must end with the run Succeeded or Failed: the planner never wedges, not even when pods cannot
start (`stuck`: only the start deadline ends such an attempt) or stages outlive their timeout
(`started`: only the operator's own run-time deadline ends it)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from planner_kit import FakeCluster, spec

from extraction_operator.api.validation import parse_spec
from extraction_operator.planner import CircuitGate, plan_run
from extraction_operator.planner.nodes import build_graph

OUTCOMES = (
    "ok",
    "error",
    "nonretryable",
    "circuit",
    "lost",
    "timeout",
    "evicted",
    "stuck",
    "started",
    "cause-gone",
)


@st.composite
def runs(draw: st.DrawFn) -> dict[str, Any]:
    count = draw(st.integers(1, 6))
    names = [f"s{index}" for index in range(count)]
    stages = []
    for index, name in enumerate(names):
        deps = draw(st.lists(st.sampled_from(names[:index]), unique=True)) if index else []
        stages.append(
            {
                "name": name,
                "dependsOn": deps,
                "command": ["run"],
                "shards": draw(st.sampled_from([1, 1, 2, 3])),
                "circuits": ["llm"] if draw(st.booleans()) else [],
                "timeoutSeconds": draw(st.sampled_from([None, None, 30])),
                "startTimeoutSeconds": draw(st.sampled_from([None, 20])),
            }
        )
    order = draw(st.permutations(stages))  # spec order need not be topological
    return spec(
        *order,
        parallelism=draw(st.integers(1, 4)),
        failFast=draw(st.booleans()),
        activeDeadlineSeconds=draw(st.sampled_from([None, None, None, 40, 300])),
        circuitBreakers={"llm": {"recoveryTimeoutSeconds": 5}},
        retry={
            "limit": draw(st.integers(0, 2)),
            "backoff": {"initialSeconds": 2, "factor": 2, "maxSeconds": 8, "jitter": "full"},
            "nonRetryableExitCodes": [2],
        },
    )


def _dependencies(run_spec: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    parsed, problems = parse_spec(run_spec)
    assert parsed is not None
    assert not problems
    return {node.key: node.dependencies for node in build_graph(parsed).nodes}


def _strip_none(run_spec: dict[str, Any]) -> dict[str, Any]:
    stages = [
        {key: value for key, value in item.items() if value is not None}
        for item in run_spec["stages"]
    ]
    return {key: value for key, value in run_spec.items() if value is not None} | {"stages": stages}


def _finish(cluster: FakeCluster, node: str, outcome: str) -> None:
    if outcome == "ok":
        cluster.finish(node)
    elif outcome == "error":
        cluster.finish(node, 1, message="boom")
    elif outcome == "nonretryable":
        cluster.finish(node, 2, message="bad input")
    elif outcome == "circuit":
        cluster.finish(node, 75, message="circuit llm open")
    elif outcome == "timeout":
        cluster.finish(node, 143, failure_reason="DeadlineExceeded")
    elif outcome == "evicted":
        cluster.finish(node, 137, pod_reason="Evicted")
    elif outcome == "stuck":  # its pod cannot start, and never will: nothing finishes the Job
        cluster.cannot_start(node, "Unschedulable", "cannot schedule the pod: 0/1 nodes")
    elif outcome == "started":  # runs on and on: only a stage timeout ends it
        cluster.starts(node)
    elif outcome == "cause-gone":  # a cause that goes away: the pod is being set up
        cluster.cannot_start(node, None)
    else:  # lost: the Job vanishes
        del cluster.jobs[cluster.job_of(node).name]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    run_spec=runs(),
    outcomes=st.lists(st.sampled_from(OUTCOMES), max_size=30),
    data=st.data(),
)
def test_simulated_runs_are_safe_and_always_finish(
    run_spec: dict[str, Any], outcomes: list[str], data: st.DataObject
) -> None:
    run_spec = _strip_none(run_spec)
    deps = _dependencies(run_spec)
    cluster = FakeCluster(run_spec)
    pending_outcomes = list(outcomes)
    for step in range(400):
        # The breaker flaps early in the run, then stays closed so the run can finish.
        if step < 40 and data.draw(st.integers(0, 4), label="breaker flips") == 0:
            opened = data.draw(st.booleans(), label="breaker open")
            retry_at = cluster.now + timedelta(seconds=data.draw(st.integers(1, 20)))
            cluster.circuits = {"llm": CircuitGate("open", retry_at)} if opened else {}
        elif step == 40:
            cluster.circuits = {}
        cluster.collect_garbage()
        before = cluster.snapshot()
        old_status = cluster.status
        plan = cluster.step()
        # Determinism: the same snapshot gives the same plan.
        assert plan_run(before) == plan
        nodes = plan.status["nodes"]
        # Dependencies first.
        for manifest in plan.create_jobs:
            key = manifest["metadata"]["annotations"]["extraction.dev/node"]
            assert all(nodes[dep]["phase"] == "Succeeded" for dep in deps[key]), key
        # Parallelism.
        assert len(cluster.active()) <= run_spec["parallelism"]
        # Attempts never decrease.
        for key, node in old_status.get("nodes", {}).items():
            assert nodes[key]["attempts"] >= node["attempts"]
        # A finished run launches nothing.
        if old_status.get("phase") in ("Succeeded", "Failed"):
            assert plan.create_jobs == []
        # Idempotency: planning again over the applied plan changes nothing.
        again = plan_run(cluster.snapshot())
        assert again.create_jobs == []
        assert not again.status_changed, (old_status, plan.status, again.status)
        assert again.events == []
        if plan.status["phase"] in ("Succeeded", "Failed"):
            assert plan.delete_jobs == [] or not cluster.active()
            break
        active = sorted(cluster.active(), key=lambda job: job.name)
        if active and data.draw(st.booleans(), label="finish a job now"):
            job = data.draw(st.sampled_from(active), label="job")
            outcome = pending_outcomes.pop(0) if pending_outcomes else "ok"
            _finish(cluster, job.node, outcome)
        elif any(job.deleting for job in cluster.jobs.values()):
            continue  # the garbage collector removes it next step: its DELETED event wakes the run
        elif plan.requeue_after is not None:
            cluster.tick(plan.requeue_after)
        elif active:
            job = active[0]
            _finish(cluster, job.node, pending_outcomes.pop(0) if pending_outcomes else "ok")
        else:
            raise AssertionError(f"run wedged: nothing active, no timer: {plan.status}")
    else:
        raise AssertionError(f"run did not finish: {cluster.status}")
    final = cluster.status
    assert final["phase"] in ("Succeeded", "Failed")
    if final["phase"] == "Succeeded":
        assert all(node["phase"] == "Succeeded" for node in final["nodes"].values())
    else:
        assert any(node["phase"] == "Failed" for node in final["nodes"].values())
