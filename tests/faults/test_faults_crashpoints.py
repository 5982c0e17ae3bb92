"""The operator dies at its two worst moments, and the restarted one (crash point unset) neither
duplicates a Job nor loses a completion:

- `after-job-create`: the Job exists but the status write that records it never happened;
- `before-status-write` at a later pass: a Job finished, the status write that accounts for it
  never happened (and the Job's completion must be counted exactly once after the restart).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from faults_kit import assert_clean_success, create_run, stage

import chaos
from conftest import LaunchOperator

CRASH_ENV = "EXTRACTION_OPERATOR_CRASH_AT"
INJECTED_EXIT = 137


def _job_creates(cluster: Any) -> list[int]:
    """Status codes of every Job create the operator sent (201 created, 409 already there)."""
    return [
        record.status
        for record in cluster.api.request_log.records(verb="create", resource="jobs")
        if record.user_agent.startswith(chaos.OPERATOR_AGENT) and record.status is not None
    ]


def _job_body_names(cluster: Any) -> list[str]:
    jobs = chaos.request(cluster.url, "GET", "/apis/batch/v1/namespaces/default/jobs")["items"]
    return sorted(job["metadata"]["name"] for job in jobs)


def _job_succeeded(job: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Complete" and c.get("status") == "True"
        for c in job.get("status", {}).get("conditions") or []
    )


def test_crash_after_job_create_adopts_the_job(
    cluster: Any, launch: LaunchOperator, tmp_path: Path
) -> None:
    log = tmp_path / "stages.jsonl"
    create_run(cluster, "adopt", stage("a", log, sleep=0.3), stage("b", log, depends_on=["a"]))
    crashing = launch(env={CRASH_ENV: "after-job-create"})
    assert crashing.wait_exit(60) == INJECTED_EXIT, crashing.logs()[-3000:]
    # The Job was created, the status never recorded it; let the Job finish meanwhile.
    assert _job_body_names(cluster) == ["adopt-a-1"]
    nodes = chaos.get_run(cluster.url, "adopt").get("status", {}).get("nodes") or {}
    assert int(nodes.get("a", {}).get("attempts") or 0) == 0, nodes
    time.sleep(1.5)

    launch(label="restarted")
    audit = assert_clean_success(cluster, "adopt")
    assert audit.jobs == 2
    nodes = chaos.get_run(cluster.url, "adopt")["status"]["nodes"]
    assert nodes["a"]["attempts"] == 1, "the crashed pass's Job was not adopted as attempt 1"
    assert nodes["a"]["jobName"] == "adopt-a-1"
    # Two Jobs, two successful creates: the restarted operator adopted adopt-a-1 (found it in
    # its index, or got a 409) instead of creating it again.
    creates = _job_creates(cluster)
    assert creates.count(201) == 2, creates
    stage_starts = [line for line in log.read_text().splitlines() if '"start"' in line]
    assert len(stage_starts) == 2, "a stage ran twice"


def test_crash_between_job_completion_and_status_write(
    cluster: Any, launch: LaunchOperator, tmp_path: Path
) -> None:
    log = tmp_path / "stages.jsonl"
    create_run(cluster, "account", stage("a", log, sleep=1.0), stage("b", log, depends_on=["a"]))
    crashing = launch(env={CRASH_ENV: "before-status-write:3"})
    assert crashing.wait_exit(60) == INJECTED_EXIT, crashing.logs()[-3000:]
    # Pass 1 recorded `a` launched, pass 2 its pod running; pass 3 saw `a` finish, created `b`'s
    # Job, and died before writing that down: Job `a` complete, status still says Running.
    run = chaos.get_run(cluster.url, "account")
    jobs = {job["metadata"]["name"]: job for job in chaos.run_jobs(cluster.url, run)}
    assert _job_succeeded(jobs["account-a-1"]), jobs["account-a-1"].get("status")
    assert run["status"]["nodes"]["a"]["phase"] == "Running", run["status"]["nodes"]
    assert "b" not in run["status"]["nodes"] or not run["status"]["nodes"]["b"].get("attempts")

    launch(label="restarted")
    audit = assert_clean_success(cluster, "account")
    assert audit.jobs == 2
    nodes = chaos.get_run(cluster.url, "account")["status"]["nodes"]
    assert nodes["a"] | {"phase": "Succeeded", "attempts": 1} == nodes["a"]
    assert nodes["b"]["attempts"] == 1
    assert _job_creates(cluster).count(201) == 2


@pytest.mark.soak
@pytest.mark.parametrize("point", ["after-job-create", "before-status-write", "after-status-write"])
@pytest.mark.parametrize("at_pass", [1, 2, 3, 4, 5, 6, 8, 10])
def test_crash_point_sweep(
    cluster: Any, launch: LaunchOperator, tmp_path: Path, point: str, at_pass: int
) -> None:
    """Every crash point at many passes of a fan-out with a failing shard: always recovered."""
    log = tmp_path / "stages.jsonl"
    create_run(
        cluster,
        "sweep",
        stage("a", log, sleep=0.3),
        stage("b", log, depends_on=["a"], shards=2, fail_attempts=1, fail_shards="1"),
        stage("c", log, depends_on=["b"]),
    )
    crashing = launch(env={CRASH_ENV: f"{point}:{at_pass}"})
    code = crashing.wait_exit(30)
    launch(label="restarted")
    audit = assert_clean_success(cluster, "sweep")
    assert audit.jobs == 5, (code, audit.describe())
