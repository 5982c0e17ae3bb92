"""The operator runs DAGs of stage Jobs on the local cluster (issue 4's "Done when")."""

from __future__ import annotations

import itertools
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from harness import HttpError, Kube, OperatorProcess, read_log, run_phase, stage, wait_for

from extraction_operator.api.constants import CRD_NAME, LABEL_ATTEMPT, LABEL_NODE

FAST_RETRY = {"limit": 3, "backoff": {"initialSeconds": 0.2, "factor": 2, "maxSeconds": 1}}


def _spec(*stages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"image": "local", "retry": FAST_RETRY, "stages": list(stages), **extra}


def _condition(run: dict[str, Any], kind: str) -> dict[str, Any]:
    for condition in run.get("status", {}).get("conditions", []):
        if condition["type"] == kind:
            return dict(condition)
    raise AssertionError(f"no {kind} condition in {run.get('status')}")


def _intervals(log: Path) -> dict[tuple[str, int], tuple[float, float]]:
    starts: dict[tuple[str, int], float] = {}
    spans: dict[tuple[str, int], tuple[float, float]] = {}
    for entry in read_log(log):
        key = (entry["node"], entry["attempt"])
        if entry["event"] == "start":
            starts[key] = entry["t"]
        else:
            spans[key] = (starts[key], entry["t"])
    return spans


def _assert_one_job_per_attempt(kube: Kube, run: str) -> None:
    jobs = kube.jobs(run)
    keys = Counter(
        (j["metadata"]["labels"][LABEL_NODE], j["metadata"]["labels"][LABEL_ATTEMPT]) for j in jobs
    )
    duplicates = {key: n for key, n in keys.items() if n > 1}
    assert not duplicates, f"duplicate Jobs for (node, attempt): {duplicates}"
    status_nodes = kube.get_run(run)["status"]["nodes"]
    launched = sum(node.get("attempts", 0) for node in status_nodes.values())
    assert launched == len(jobs), f"status counts {launched} attempts but {len(jobs)} Jobs exist"


def test_linear_dag_runs_in_order(kube: Kube, operator: OperatorProcess, stage_log: Path) -> None:
    kube.create_run(
        "linear",
        _spec(
            stage("a", stage_log),
            stage("b", stage_log, depends_on=["a"]),
            stage("c", stage_log, depends_on=["b"]),
        ),
    )
    run = wait_for(run_phase(kube, "linear", "Succeeded", "Failed"), 60, what="linear done")
    assert run["status"]["phase"] == "Succeeded", run["status"]
    assert run["status"]["progress"] == "3/3"
    assert _condition(run, "Ready")["status"] == "True"
    assert _condition(run, "Reconciling")["status"] == "False"
    spans = _intervals(stage_log)
    assert spans[("b", 1)][0] >= spans[("a", 1)][1]
    assert spans[("c", 1)][0] >= spans[("b", 1)][1]
    for node in run["status"]["nodes"].values():
        assert node["phase"] == "Succeeded"
        assert node["attempts"] == 1
        assert node["jobName"]
        assert node["startedAt"]
        assert node["finishedAt"]
    _assert_one_job_per_attempt(kube, "linear")
    reasons = {e["reason"] for e in kube.events("linear")}
    assert {"StageStarted", "StageSucceeded", "RunSucceeded"} <= reasons


def test_diamond_waits_for_both_branches(
    kube: Kube, operator: OperatorProcess, stage_log: Path
) -> None:
    kube.create_run(
        "diamond",
        _spec(
            stage("top", stage_log),
            stage("left", stage_log, depends_on=["top"], sleep=0.3),
            stage("right", stage_log, depends_on=["top"], sleep=0.6),
            stage("bottom", stage_log, depends_on=["left", "right"]),
        ),
    )
    run = wait_for(run_phase(kube, "diamond", "Succeeded", "Failed"), 60)
    assert run["status"]["phase"] == "Succeeded", run["status"]
    spans = _intervals(stage_log)
    assert spans[("bottom", 1)][0] >= max(spans[("left", 1)][1], spans[("right", 1)][1])
    # the branches ran concurrently (parallelism 4)
    assert spans[("left", 1)][0] < spans[("right", 1)][1]


def test_parallel_branches_respect_parallelism(
    kube: Kube, operator: OperatorProcess, stage_log: Path
) -> None:
    branches = [stage(f"branch-{i}", stage_log, depends_on=["root"], sleep=0.4) for i in range(6)]
    kube.create_run("wide", _spec(stage("root", stage_log), *branches, parallelism=2))
    peak = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        active = sum(1 for job in kube.jobs("wide") if job.get("status", {}).get("active"))
        peak = max(peak, active)
        if kube.get_run("wide").get("status", {}).get("phase") in ("Succeeded", "Failed"):
            break
        time.sleep(0.05)
    run = kube.get_run("wide")
    assert run["status"]["phase"] == "Succeeded", run["status"]
    assert peak <= 2, f"sampled {peak} active Jobs with parallelism 2"
    spans = sorted(_intervals(stage_log).values())
    overlap = max(
        sum(1 for s, e in spans if s <= t < e) for t in itertools.chain(*(s for s in spans))
    )
    assert overlap <= 2, f"{overlap} stage processes overlapped with parallelism 2"
    assert overlap == 2, "branches should have used the available parallelism"


def test_flaky_stage_succeeds_on_third_attempt_within_backoff_bounds(
    kube: Kube, operator: OperatorProcess, stage_log: Path
) -> None:
    backoff = {"initialSeconds": 1, "factor": 2, "maxSeconds": 1.5, "jitter": "none"}
    kube.create_run(
        "flaky",
        _spec(stage("flaky", stage_log, fail_attempts=2, retry={"limit": 3, "backoff": backoff})),
    )
    run = wait_for(run_phase(kube, "flaky", "Succeeded", "Failed"), 60)
    assert run["status"]["phase"] == "Succeeded", run["status"]
    node = run["status"]["nodes"]["flaky"]
    assert node["attempts"] == 3
    spans = _intervals(stage_log)
    expected = [1.0, 1.5]  # 1 * 2**0, then 1 * 2**1 capped at 1.5, no jitter
    for attempt, delay in zip((1, 2), expected, strict=True):
        gap = spans[("flaky", attempt + 1)][0] - spans[("flaky", attempt)][1]
        assert delay - 0.25 <= gap <= delay + 3.0, f"gap {gap:.2f}s after attempt {attempt}"
    reasons = [e["reason"] for e in kube.events("flaky")]
    assert reasons.count("RetryScheduled") >= 2
    _assert_one_job_per_attempt(kube, "flaky")


def test_full_jitter_gaps_stay_under_the_cap(
    kube: Kube, operator: OperatorProcess, stage_log: Path
) -> None:
    backoff = {"initialSeconds": 1, "factor": 3, "maxSeconds": 2, "jitter": "full"}
    kube.create_run(
        "jitter",
        _spec(stage("j", stage_log, fail_attempts=2, retry={"limit": 2, "backoff": backoff})),
    )
    run = wait_for(run_phase(kube, "jitter", "Succeeded", "Failed"), 60)
    assert run["status"]["phase"] == "Succeeded", run["status"]
    spans = _intervals(stage_log)
    for attempt, cap in ((1, 1.0), (2, 2.0)):
        gap = spans[("j", attempt + 1)][0] - spans[("j", attempt)][1]
        assert 0 <= gap <= cap + 3.0, f"gap {gap:.2f}s after attempt {attempt} (cap {cap}s)"


def test_exhausted_retries_fail_the_run_with_the_stage_message(
    kube: Kube, operator: OperatorProcess, stage_log: Path
) -> None:
    kube.create_run(
        "exhausted",
        _spec(
            stage(
                "extract",
                stage_log,
                fail_attempts=99,
                exit_code=3,
                message="provider said no: quota exceeded",
                retry={"limit": 1, "backoff": {"initialSeconds": 0.2}},
            ),
            stage("after", stage_log, depends_on=["extract"]),
        ),
    )
    run = wait_for(run_phase(kube, "exhausted", "Failed"), 60)
    node = run["status"]["nodes"]["extract"]
    assert node["phase"] == "Failed"
    assert node["attempts"] == 2
    assert node["exitCode"] == 3
    assert node["reason"] == "Error"
    assert "provider said no: quota exceeded" in node["message"]
    assert run["status"]["nodes"]["after"]["phase"] == "Skipped"
    assert "provider said no" in run["status"]["message"]
    assert _condition(run, "Stalled")["status"] == "True"
    assert _condition(run, "Ready")["status"] == "False"
    # The Event is posted after the status write that the wait above saw.
    wait_for(
        lambda: "StageFailed" in {e["reason"] for e in kube.events("exhausted")},
        10,
        what="the StageFailed Event",
    )


def test_non_retryable_exit_code_fails_at_once(
    kube: Kube, operator: OperatorProcess, stage_log: Path
) -> None:
    retry = {**FAST_RETRY, "nonRetryableExitCodes": [2]}
    kube.create_run(
        "nonretry",
        {
            "image": "x",
            "retry": retry,
            "stages": [stage("s", stage_log, fail_attempts=99, exit_code=2)],
        },
    )
    run = wait_for(run_phase(kube, "nonretry", "Failed"), 60)
    node = run["status"]["nodes"]["s"]
    assert node["attempts"] == 1
    assert node["reason"] == "NonRetryable"
    assert node["exitCode"] == 2


def test_stage_deadline_is_reported_as_deadline_exceeded(
    kube: Kube, operator: OperatorProcess, stage_log: Path
) -> None:
    kube.create_run(
        "slow",
        _spec(stage("slow", stage_log, sleep=30, timeoutSeconds=1, retry={"limit": 0})),
    )
    run = wait_for(run_phase(kube, "slow", "Failed"), 60)
    node = run["status"]["nodes"]["slow"]
    assert node["reason"] == "DeadlineExceeded", node


def test_run_deadline_fails_the_run_and_stops_its_jobs(
    kube: Kube, operator: OperatorProcess, stage_log: Path
) -> None:
    kube.create_run(
        "overdue", _spec(stage("forever", stage_log, sleep=60), activeDeadlineSeconds=2)
    )
    run = wait_for(run_phase(kube, "overdue", "Failed"), 60)
    assert "DeadlineExceeded" in (
        _condition(run, "Stalled")["reason"] + run["status"]["message"]
    ), run["status"]
    wait_for(
        lambda: all(not j.get("status", {}).get("active") for j in kube.jobs("overdue")),
        30,
        what="the overdue run's Jobs to stop",
    )


def _stalled(kube: Kube, name: str) -> dict[str, Any] | None:
    run = kube.get_run(name)
    for condition in run.get("status", {}).get("conditions", []):
        if condition["type"] == "Stalled" and condition["status"] == "True":
            return dict(condition)
    return None


def test_a_cycle_is_stalled_with_its_path(
    kube: Kube, operator: OperatorProcess, stage_log: Path
) -> None:
    kube.create_run(
        "cyclic",
        _spec(
            stage("chunk", stage_log, depends_on=["mentions"]),
            stage("mentions", stage_log, depends_on=["chunk"]),
        ),
    )
    cyclic = wait_for(lambda: _stalled(kube, "cyclic"), 30, what="Stalled on the cycle")
    assert "chunk -> mentions -> chunk" in cyclic["message"]
    assert cyclic["reason"] == "InvalidSpec"
    assert kube.jobs("cyclic") == []
    # The Event is posted after the status write that the wait above saw.
    wait_for(
        lambda: "InvalidSpec" in {e["reason"] for e in kube.events("cyclic")},
        10,
        what="the InvalidSpec Event",
    )


def test_unknown_dependency_is_refused_by_the_api_and_stalled_by_the_operator(
    kube: Kube, operator: OperatorProcess, stage_log: Path
) -> None:
    # With the shipped CRD, the API server's CEL rule refuses the object outright.
    with pytest.raises(HttpError) as refused:
        kube.create_run("dangling", _spec(stage("chunk", stage_log, depends_on=["nope"])))
    assert refused.value.status == 422
    assert "dependsOn" in str(refused.value)
    # A cluster whose CRD predates the rule admits it; the operator must still stop it cleanly.
    crd_path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CRD_NAME}"
    crd = kube.request("GET", crd_path)
    del crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "x-kubernetes-validations"
    ]
    kube.request("PUT", crd_path, crd)
    kube.create_run("dangling", _spec(stage("chunk", stage_log, depends_on=["nope"])))
    dangling = wait_for(lambda: _stalled(kube, "dangling"), 30, what="Stalled on the dependency")
    assert "spec.stages[0].dependsOn[0]" in dangling["message"]
    assert "nope" in dangling["message"]
    assert kube.jobs("dangling") == []


def test_suspend_and_resume(kube: Kube, operator: OperatorProcess, stage_log: Path) -> None:
    kube.create_run(
        "paused",
        _spec(stage("a", stage_log), stage("b", stage_log, depends_on=["a"]), suspend=True),
    )
    wait_for(run_phase(kube, "paused", "Suspended"), 30)
    time.sleep(1.0)
    assert kube.jobs("paused") == [], "a suspended run must launch nothing"
    kube.patch_run("paused", {"spec": {"suspend": False}})
    run = wait_for(run_phase(kube, "paused", "Succeeded", "Failed"), 60)
    assert run["status"]["phase"] == "Succeeded"


def test_deleting_a_run_removes_its_jobs_and_pods(
    kube: Kube, operator: OperatorProcess, stage_log: Path
) -> None:
    kube.create_run("doomed", _spec(stage("long", stage_log, sleep=60)))
    wait_for(lambda: kube.jobs("doomed"), 30, what="the Job to exist")
    wait_for(lambda: read_log(stage_log), 30, what="the stage process to start")
    kube.delete_run("doomed")
    wait_for(lambda: kube.jobs("doomed") == [] and kube.pods("doomed") == [], 30)


def test_redrive_resumes_a_failed_run(
    kube: Kube, operator: OperatorProcess, stage_log: Path
) -> None:
    kube.create_run(
        "again",
        _spec(
            stage("once", stage_log, fail_attempts=1, retry={"limit": 0}),
            stage("next", stage_log, depends_on=["once"]),
        ),
    )
    failed = wait_for(run_phase(kube, "again", "Failed"), 60)
    assert failed["status"]["nodes"]["next"]["phase"] == "Skipped"
    kube.patch_run("again", {"metadata": {"annotations": {"extraction.dev/redrive": "1"}}})
    run = wait_for(run_phase(kube, "again", "Succeeded"), 60)
    assert run["status"]["nodes"]["once"]["attempts"] == 2  # attempt numbers keep counting
    assert run["status"]["redrive"] == "1"
    _assert_one_job_per_attempt(kube, "again")


def test_fan_out_retries_only_the_failing_shard(
    kube: Kube, operator: OperatorProcess, stage_log: Path
) -> None:
    kube.create_run(
        "fanout",
        _spec(
            stage("split", stage_log),
            stage(
                "work", stage_log, depends_on=["split"], shards=4, fail_shards="2", fail_attempts=1
            ),
            stage("merge", stage_log, depends_on=["work"]),
        ),
    )
    run = wait_for(run_phase(kube, "fanout", "Succeeded", "Failed"), 60)
    assert run["status"]["phase"] == "Succeeded", run["status"]
    nodes = run["status"]["nodes"]
    assert {k: v["attempts"] for k, v in nodes.items() if k.startswith("work")} == {
        "work[0]": 1,
        "work[1]": 1,
        "work[2]": 2,
        "work[3]": 1,
    }
    spans = _intervals(stage_log)
    assert spans[("merge", 1)][0] >= max(
        end for (node, _), (_, end) in spans.items() if node.startswith("work")
    )
    shard_env = {e["node"]: (e["shard"], e["shard_count"]) for e in read_log(stage_log)}
    assert shard_env["work[3]"] == ("3", "4")
    _assert_one_job_per_attempt(kube, "fanout")


def test_operator_restart_mid_run_finishes_without_duplicates(
    kube: Kube, operator: OperatorProcess, stage_log: Path
) -> None:
    kube.create_run(
        "restart",
        _spec(
            stage("a", stage_log, sleep=1.0),
            stage("b", stage_log, depends_on=["a"], sleep=1.0),
            stage("c", stage_log, depends_on=["b"]),
        ),
    )
    wait_for(lambda: read_log(stage_log), 30, what="stage a to start")
    operator.stop()
    time.sleep(1.5)  # stage a finishes while no operator is running
    operator.start()
    run = wait_for(run_phase(kube, "restart", "Succeeded", "Failed"), 60)
    assert run["status"]["phase"] == "Succeeded", run["status"]
    assert all(node["attempts"] == 1 for node in run["status"]["nodes"].values())
    _assert_one_job_per_attempt(kube, "restart")


def test_a_finished_run_costs_no_further_writes(
    kube: Kube, operator: OperatorProcess, stage_log: Path, cluster: Any
) -> None:
    """Resyncs and late events re-plan a finished run; the planned status must equal what the API
    server stored (no defaults filled in, nothing pruned), or every event would rewrite it."""
    kube.create_run("quiet", _spec(stage("a", stage_log), stage("b", stage_log, depends_on=["a"])))
    wait_for(run_phase(kube, "quiet", "Succeeded"), 60)
    time.sleep(0.5)
    cluster.api.request_log.clear()
    time.sleep(4.5)  # two resync periods of the test operator
    writes = [
        r
        for r in cluster.api.request_log.records(resource="extractionruns")
        if r.verb not in ("get", "list", "watch")
    ]
    assert writes == [], [(r.verb, r.subresource, r.user_agent) for r in writes]
