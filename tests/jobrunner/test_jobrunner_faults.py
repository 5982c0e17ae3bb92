"""Fault injection and restart safety of the job runner, against the real emulator."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from extraction_operator.localcluster.cluster import LocalCluster
from extraction_operator.localcluster.kubeapi import ApiClient, ApiError
from extraction_operator.localcluster.testing import (
    NAMESPACE,
    alive,
    get_job,
    job_condition,
    make_job,
    pods_of,
    python,
    terminated,
    wait_for,
    wait_job_finished,
    wait_pod_phase,
)

pytestmark = pytest.mark.timeout(30)
JSON = dict[str, Any]


def once_then_succeed(marker_dir: str, *, first: str) -> list[str]:
    """A command that runs `first` (a shell snippet) on its first attempt and exits 0 after."""
    script = f"if [ -e {marker_dir}/tried ]; then exit 0; fi; touch {marker_dir}/tried; {first}"
    return ["sh", "-c", script]


async def test_kill_fault_fails_the_pod_with_the_signal_exit_code(cluster: LocalCluster) -> None:
    await cluster.apply(make_job("victim", ["sleep", "60"]))
    pod = await wait_pod_phase(cluster.client, "victim", "Running")
    assert cluster.runner.kill(NAMESPACE, pod["metadata"]["name"])
    job = await wait_job_finished(cluster.client, "victim")
    assert job_condition(job, "Failed")
    [pod] = await pods_of(cluster.client, "victim")
    assert pod["status"]["phase"] == "Failed"
    assert (terminated(pod)["exitCode"], terminated(pod)["reason"]) == (137, "Error")
    assert not cluster.runner.kill(NAMESPACE, "no-such-pod")


async def test_evicted_pod_fails_with_reason_evicted(cluster: LocalCluster) -> None:
    await cluster.apply(make_job("evictee", ["sleep", "60"]))
    pod = await wait_pod_phase(cluster.client, "evictee", "Running")
    assert cluster.runner.evict(NAMESPACE, pod["metadata"]["name"])
    pod = await wait_pod_phase(cluster.client, "evictee", "Failed")
    assert pod["status"]["reason"] == "Evicted"
    kinds = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert kinds["DisruptionTarget"] == "True"
    assert job_condition(await wait_job_finished(cluster.client, "evictee"), "Failed")


async def test_pause_holds_new_pods_and_resume_runs_them(cluster: LocalCluster) -> None:
    cluster.runner.pause()
    await cluster.apply(make_job("held", ["true"]))

    async def created() -> list[JSON]:
        return await pods_of(cluster.client, "held")

    [pod] = await wait_for(created, what="the Job controller to create the pod while paused")
    assert pod["status"]["phase"] == "Pending"
    assert cluster.runner.running_pods() == []
    cluster.runner.resume()
    assert job_condition(await wait_job_finished(cluster.client, "held"), "Complete")


async def test_pause_withholds_status_of_a_process_that_finished(cluster: LocalCluster) -> None:
    gate = cluster.workdir / "gate"
    await cluster.apply(
        make_job("quiet", ["sh", "-c", f"while [ ! -e {gate} ]; do sleep 0.05; done"])
    )
    pod = await wait_pod_phase(cluster.client, "quiet", "Running")
    pid = cluster.runner.pid_of(NAMESPACE, pod["metadata"]["name"])
    assert pid is not None
    cluster.runner.pause()
    gate.touch()

    async def exited() -> bool:
        return not alive(pid)

    await wait_for(exited, what="the process to finish during the outage")
    [pod] = await pods_of(cluster.client, "quiet")
    assert pod["status"]["phase"] == "Running"  # nobody reported it: the node is out
    cluster.runner.resume()
    assert job_condition(await wait_job_finished(cluster.client, "quiet"), "Complete")


async def test_restarted_runner_starts_a_pending_pod_without_duplicating_it(
    cluster: LocalCluster,
) -> None:
    cluster.runner.pause()
    await cluster.apply(make_job("survivor", ["true"]))

    async def created() -> list[JSON]:
        return await pods_of(cluster.client, "survivor")

    [pod] = await wait_for(created, what="the pod to be created")
    await cluster.restart_runner()
    assert job_condition(await wait_job_finished(cluster.client, "survivor"), "Complete")
    [after] = await pods_of(cluster.client, "survivor")
    assert after["metadata"]["uid"] == pod["metadata"]["uid"]


async def test_restarted_runner_fails_a_lost_pod_and_replaces_it_once(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    job = make_job("lost", once_then_succeed(str(tmp_path), first="sleep 60"), backoffLimit=1)
    await cluster.apply(job)
    pod = await wait_pod_phase(cluster.client, "lost", "Running")
    pid = cluster.runner.pid_of(NAMESPACE, pod["metadata"]["name"])
    assert pid is not None
    runner = await cluster.restart_runner()
    assert not alive(pid)
    done = await wait_job_finished(cluster.client, "lost")
    assert job_condition(done, "Complete")
    assert (done["status"]["succeeded"], done["status"]["failed"]) == (1, 1)
    pods = {p["metadata"]["name"]: p for p in await pods_of(cluster.client, "lost")}
    assert len(pods) == 2
    old = pods[pod["metadata"]["name"]]
    assert (old["status"]["phase"], old["status"]["reason"]) == ("Failed", "NodeLost")
    assert terminated(old)["reason"] == "ContainerStatusUnknown"
    assert runner is cluster.runner


async def test_dropped_watches_and_api_errors_neither_lose_nor_duplicate(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    faults = cluster.api.faults
    faults.fail("create", "pods", times=2)
    faults.fail("patch", "jobs", subresource="status", times=2)
    faults.fail("patch", "pods", subresource="status", times=2)
    gate = tmp_path / "gate"
    await cluster.apply(
        make_job("sturdy", ["sh", "-c", f"while [ ! -e {gate} ]; do sleep 0.05; done"])
    )
    await wait_pod_phase(cluster.client, "sturdy", "Running")
    for _ in range(3):
        faults.drop_watches()
    gate.touch()
    assert job_condition(await wait_job_finished(cluster.client, "sturdy"), "Complete")
    assert len(await pods_of(cluster.client, "sturdy")) == 1
    creates = cluster.api.request_log.records(verb="create", resource="pods")
    assert [r.status for r in creates][:2] == [500, 500]


async def test_parallel_pods_are_sampled_by_running_pods(cluster: LocalCluster) -> None:
    gate = cluster.workdir / "go"
    job = make_job(
        "wide",
        ["sh", "-c", f"while [ ! -e {gate} ]; do sleep 0.05; done"],
        parallelism=2,
        completions=2,
    )
    await cluster.apply(job)

    async def both_running() -> list[tuple[str, str]]:
        running = cluster.runner.running_pods()
        return running if len(running) == 2 else []

    running = await wait_for(both_running, what="two pods running at once")
    assert {ns for ns, _ in running} == {NAMESPACE}
    gate.touch()
    done = await wait_job_finished(cluster.client, "wide")
    assert done["status"]["succeeded"] == 2


async def test_malformed_pod_config_does_not_stop_other_jobs(cluster: LocalCluster) -> None:
    odd = make_job("odd", ["true"], container={"env": [{"name": "X", "valueFrom": {}}]})
    await cluster.apply(odd)
    await cluster.apply(make_job("fine", ["true"]))
    assert job_condition(await wait_job_finished(cluster.client, "fine"), "Complete")

    async def config_error() -> str | None:
        pods = await pods_of(cluster.client, "odd")
        statuses = pods[0].get("status", {}).get("containerStatuses") if pods else None
        waiting = statuses[0]["state"].get("waiting") if statuses else None
        return waiting.get("message") if waiting else None

    assert "valueFrom" in await wait_for(config_error, what="the odd pod's config error")


async def test_stop_kills_every_process(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path / "c", grace_seconds_cap=1.0)
    await cluster.start()
    try:
        await cluster.apply(make_job("orphan", ["sh", "-c", "sleep 60 & sleep 60"]))
        pod = await wait_pod_phase(cluster.client, "orphan", "Running")
        pid = cluster.runner.pid_of(NAMESPACE, pod["metadata"]["name"])
        assert pid is not None
    finally:
        await cluster.stop()
    assert not alive(pid)


def test_threaded_cluster_serves_sync_callers(tmp_path: Path) -> None:
    from kubernetes import client, config

    with LocalCluster.threaded(tmp_path / "t", grace_seconds_cap=1.0) as cluster:
        assert threading.current_thread() is threading.main_thread()
        cluster.apply(make_job("sync", python("print('hi')")))
        api = client.BatchV1Api(config.new_client_from_config(str(cluster.kubeconfig)))

        def complete() -> bool:
            job = api.read_namespaced_job("sync", NAMESPACE)
            return bool(job.status.succeeded)

        for _ in range(300):
            if complete():
                break
            threading.Event().wait(0.05)
        assert complete()
        assert cluster.runner.running_pods() == []
        [pod] = cluster.call(pods_of(cluster.client, "sync"))
        assert cluster.runner.logs(NAMESPACE, pod["metadata"]["name"]) == "hi\n"


async def test_deadline_during_outage_stops_the_pod_only_after_resume(
    cluster: LocalCluster,
) -> None:
    await cluster.apply(make_job("outage", ["sleep", "60"], activeDeadlineSeconds=1))
    pod = await wait_pod_phase(cluster.client, "outage", "Running")
    pid = cluster.runner.pid_of(NAMESPACE, pod["metadata"]["name"])
    assert pid is not None
    cluster.runner.pause()

    async def target() -> bool:
        job = await get_job(cluster.client, "outage")
        return job_condition(job, "FailureTarget") is not None

    await wait_for(target, what="the control plane to decide the deadline passed")
    await asyncio.sleep(0.3)
    assert alive(pid)  # the node is out: nothing stops the process yet
    cluster.runner.resume()
    job = await wait_job_finished(cluster.client, "outage")
    failed = job_condition(job, "Failed")
    assert failed is not None
    assert failed["reason"] == "DeadlineExceeded"
    assert not alive(pid)


async def test_pod_create_whose_answer_is_lost_is_not_duplicated(
    cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = ApiClient.create
    lost: list[str] = []

    async def create_then_lose_the_answer(self: ApiClient, path: str, body: JSON) -> JSON:
        created = await original(self, path, body)
        if path.endswith("/pods") and not lost:
            lost.append(created["metadata"]["name"])
            raise ApiError(0, "ServerDisconnectedError", "the answer was lost")
        return created

    monkeypatch.setattr(ApiClient, "create", create_then_lose_the_answer)
    # Freeze the runner's view of pods so it cannot learn of the pod from a watch event.
    faults = cluster.api.faults
    faults.fail("list", "pods", times=None)
    faults.fail("watch", "pods", times=None)
    faults.drop_watches()
    await cluster.apply(make_job("once", ["true"]))

    async def retried() -> list[int]:
        statuses = [r.status for r in cluster.api.request_log.records(verb="create")]
        return statuses if 409 in statuses else []

    await wait_for(retried, what="the runner to retry the create and meet AlreadyExists")
    faults.clear()
    assert job_condition(await wait_job_finished(cluster.client, "once"), "Complete")
    assert [p["metadata"]["name"] for p in await pods_of(cluster.client, "once")] == lost
