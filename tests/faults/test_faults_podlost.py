"""A stage's Job deleted by hand while it runs, and a stage's pod evicted: the node's attempt
fails with reason `PodLost`, it is retried, and the run succeeds with one Job per attempt."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from faults_kit import create_run, events, stage

import chaos
from conftest import LaunchOperator


def _running_pod(cluster: Any, job: str, timeout: float = 30.0) -> str:
    """The name of the pod of `job` once its process runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for _, pod in cluster.runner.running_pods():
            if pod.startswith(f"{job}-"):
                return str(pod)
        time.sleep(0.05)
    raise AssertionError(f"no running pod of {job} within {timeout}s")


def _retried_for_pod_lost(cluster: Any, run: str, node: str, *, first_job_kept: bool) -> None:
    phase = chaos.wait_phase(cluster.url, run, 60)
    audit = chaos.audit_run(cluster.url, run)
    assert phase == "Succeeded", audit.describe()
    assert not audit.duplicates, audit.describe()
    assert not audit.unfinished_nodes, audit.describe()
    # Status counts both attempts; the Jobs that exist are both, or only the retry when the first
    # one was deleted by hand.
    assert audit.status_attempts == 2, audit.describe()
    assert audit.jobs == (2 if first_job_kept else 1), audit.describe()
    state = chaos.get_run(cluster.url, run)["status"]["nodes"][node]
    assert state["attempts"] == 2
    assert state["jobName"] == f"{run}-{node}-2"
    retries = [e["message"] for e in events(cluster, run) if e["reason"] == "RetryScheduled"]
    assert len(retries) == 1, retries
    assert "PodLost" in retries[0] or "lost" in retries[0], retries


def test_job_deleted_by_hand_while_running_is_retried_as_pod_lost(
    cluster: Any, launch: LaunchOperator, tmp_path: Path
) -> None:
    log = tmp_path / "stages.jsonl"
    create_run(cluster, "deleted", stage("work", log, sleep=2))
    launch()
    _running_pod(cluster, "deleted-work-1")
    chaos.request(
        cluster.url,
        "DELETE",
        "/apis/batch/v1/namespaces/default/jobs/deleted-work-1",
        {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"},
    )
    _retried_for_pod_lost(cluster, "deleted", "work", first_job_kept=False)


def test_evicted_pod_is_retried_as_pod_lost(
    cluster: Any, launch: LaunchOperator, tmp_path: Path
) -> None:
    log = tmp_path / "stages.jsonl"
    create_run(cluster, "evicted", stage("work", log, sleep=2))
    launch()
    pod = _running_pod(cluster, "evicted-work-1")
    assert cluster.runner.evict("default", pod)
    # Watch the node's reason while it waits for its retry: PodLost, not a plain Error.
    reasons: set[str] = set()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and chaos.phase_of(cluster.url, "evicted") != "Succeeded":
        node = chaos.get_run(cluster.url, "evicted")["status"]["nodes"]["work"]
        if node.get("reason"):
            reasons.add(node["reason"])
        time.sleep(0.05)
    assert "PodLost" in reasons, reasons
    _retried_for_pod_lost(cluster, "evicted", "work", first_job_kept=True)
