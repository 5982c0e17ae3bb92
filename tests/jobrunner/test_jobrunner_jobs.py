"""The job runner against the real emulator: Jobs run as processes, with real Job semantics."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from extraction_operator.localcluster.cluster import LocalCluster
from extraction_operator.localcluster.kubeapi import JOBS, PODS
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


async def test_successful_job_completes_with_message_and_log(cluster: LocalCluster) -> None:
    code = (
        "import os; print('working');"
        "open(os.environ['TERMINATION_MESSAGE_PATH'], 'w').write('all good')"
    )
    await cluster.apply(make_job("ok", python(code)))
    job = await wait_job_finished(cluster.client, "ok")
    assert job_condition(job, "Complete")
    assert job["status"]["succeeded"] == 1
    assert "failed" not in job["status"]
    assert "active" not in job["status"]
    assert job["status"]["completionTime"] >= job["status"]["startTime"]
    [pod] = await pods_of(cluster.client, "ok")
    assert pod["status"]["phase"] == "Succeeded"
    state = terminated(pod)
    assert (state["exitCode"], state["reason"], state["message"]) == (0, "Completed", "all good")
    assert pod["metadata"]["labels"]["app"] == "ok"
    assert pod["metadata"]["labels"]["batch.kubernetes.io/job-name"] == "ok"
    owner = pod["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"], owner["controller"]) == (
        "Job",
        job["metadata"]["uid"],
        True,
    )
    assert cluster.runner.logs(NAMESPACE, pod["metadata"]["name"]) == "working\n"
    log_path = PODS.path(NAMESPACE, pod["metadata"]["name"], "log")
    async with aiohttp.ClientSession() as http, http.get(cluster.url + log_path) as resp:
        assert await resp.text() == "working\n"  # what `kubectl logs` shows


async def test_nonzero_exit_fails_pod_and_job(cluster: LocalCluster) -> None:
    code = (
        "import os, sys; open(os.environ['TERMINATION_MESSAGE_PATH'], 'w').write('boom');"
        "sys.exit(3)"
    )
    await cluster.apply(make_job("bad", python(code)))
    job = await wait_job_finished(cluster.client, "bad")
    failed = job_condition(job, "Failed")
    assert failed is not None
    assert failed["reason"] == "BackoffLimitExceeded"
    assert job["status"]["failed"] == 1
    assert "completionTime" not in job["status"]
    [pod] = await pods_of(cluster.client, "bad")
    assert pod["status"]["phase"] == "Failed"
    state = terminated(pod)
    assert (state["exitCode"], state["reason"], state["message"]) == (3, "Error", "boom")


async def test_fallback_to_logs_on_error_reports_the_output_tail(cluster: LocalCluster) -> None:
    code = "import sys\nfor i in range(100): print('line', i)\nsys.exit(1)"
    container = {"terminationMessagePolicy": "FallbackToLogsOnError"}
    await cluster.apply(make_job("tail", python(code), container=container))
    await cluster.apply(make_job("plain", python(code)))
    await wait_job_finished(cluster.client, "tail")
    await wait_job_finished(cluster.client, "plain")
    [pod] = await pods_of(cluster.client, "tail")
    lines = terminated(pod)["message"].splitlines()
    assert lines[0] == "line 20"
    assert lines[-1] == "line 99"
    [plain] = await pods_of(cluster.client, "plain")
    assert "message" not in terminated(plain)


async def test_active_deadline_kills_the_process_and_fails_the_job(cluster: LocalCluster) -> None:
    # 3 s, not 1: on a loaded machine the pod may need more than a second to be seen Running.
    await cluster.apply(make_job("slow", ["sleep", "60"], activeDeadlineSeconds=3))
    pod = await wait_pod_phase(cluster.client, "slow", "Running")
    pid = cluster.runner.pid_of(NAMESPACE, pod["metadata"]["name"])
    assert pid is not None
    job = await wait_job_finished(cluster.client, "slow")
    failed = job_condition(job, "Failed")
    assert failed is not None
    assert failed["reason"] == "DeadlineExceeded"
    assert job_condition(job, "FailureTarget")
    [pod] = await pods_of(cluster.client, "slow")
    assert pod["status"]["phase"] == "Failed"
    assert pod["status"]["reason"] == "DeadlineExceeded"
    assert terminated(pod)["exitCode"] == 143  # SIGTERM, within the grace period
    assert not alive(pid)


async def test_backoff_limit_replaces_a_failed_pod(cluster: LocalCluster) -> None:
    code = (
        "import os, sys; marker = os.path.join(os.environ['WS'], 'tried');"
        "first = not os.path.exists(marker); open(marker, 'w').close(); sys.exit(1 if first else 0)"
    )
    job = make_job(
        "flaky",
        python(code),
        backoffLimit=2,
        container={
            "env": [{"name": "WS", "value": "/ws"}],
            "volumeMounts": [{"name": "ws", "mountPath": "/ws"}],
        },
        pod_spec={"volumes": [{"name": "ws", "persistentVolumeClaim": {"claimName": "flaky"}}]},
    )
    await cluster.apply(job)
    done = await wait_job_finished(cluster.client, "flaky")
    assert job_condition(done, "Complete")
    assert (done["status"]["succeeded"], done["status"]["failed"]) == (1, 1)
    pods = await pods_of(cluster.client, "flaky")
    assert sorted(p["status"]["phase"] for p in pods) == ["Failed", "Succeeded"]


async def test_env_fieldrefs_secrets_and_workspace_reach_the_process(
    cluster: LocalCluster,
) -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "llm", "namespace": NAMESPACE},
        "data": {"token": base64.b64encode(b"s3cret").decode()},
    }
    await cluster.apply(secret)
    code = (
        "import json, os; keys = ['EXTRACTION_RUN', 'POD', 'NS', 'APP', 'TOKEN', "
        "'EXTRACTION_WORKSPACE', 'KUBECONFIG', 'HOME'];"
        "json.dump({k: os.environ.get(k) for k in keys} | {'cwd': os.getcwd()}, "
        "open(os.environ['TERMINATION_MESSAGE_PATH'], 'w'))"
    )
    env = [
        {"name": "EXTRACTION_RUN", "value": "corpus"},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "llm", "key": "token"}}},
        {"name": "EXTRACTION_WORKSPACE", "value": "/workspace"},
    ]
    job = make_job(
        "env",
        python(code),
        container={"env": env, "volumeMounts": [{"name": "ws", "mountPath": "/workspace"}]},
        pod_spec={"volumes": [{"name": "ws", "persistentVolumeClaim": {"claimName": "data"}}]},
    )
    await cluster.apply(job)
    assert job_condition(await wait_job_finished(cluster.client, "env"), "Complete")
    [pod] = await pods_of(cluster.client, "env")
    seen = json.loads(terminated(pod)["message"])
    workspace = cluster.runner.workdir / "volumes" / NAMESPACE / "pvc-data"
    assert seen["EXTRACTION_RUN"] == "corpus"
    assert seen["POD"] == pod["metadata"]["name"]
    assert (seen["NS"], seen["APP"], seen["TOKEN"]) == (NAMESPACE, "env", "s3cret")
    assert seen["EXTRACTION_WORKSPACE"] == str(workspace)
    assert workspace.is_dir()
    assert seen["HOME"]
    assert cluster.url in Path(seen["KUBECONFIG"]).read_text()  # noqa: ASYNC240
    assert seen["cwd"].startswith(str(cluster.runner.workdir / "pods"))


async def test_missing_secret_keeps_the_pod_pending_until_it_exists(
    cluster: LocalCluster,
) -> None:
    env = [{"name": "T", "valueFrom": {"secretKeyRef": {"name": "later", "key": "k"}}}]
    await cluster.apply(make_job("cfg", ["true"], container={"env": env}))

    async def config_error() -> JSON | None:
        pods = await pods_of(cluster.client, "cfg")
        statuses = pods[0].get("status", {}).get("containerStatuses") if pods else None
        waiting = statuses[0]["state"].get("waiting") if statuses else None
        return waiting if waiting and waiting["reason"] == "CreateContainerConfigError" else None

    waiting = await wait_for(config_error, what="CreateContainerConfigError")
    assert 'secret "later" not found' in waiting["message"]
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "later", "namespace": NAMESPACE},
        "data": {"k": base64.b64encode(b"v").decode()},
    }
    await cluster.apply(secret)
    assert job_condition(await wait_job_finished(cluster.client, "cfg"), "Complete")


async def test_pod_without_command_fails_with_start_error(cluster: LocalCluster) -> None:
    job = make_job("nocmd", [])
    del job["spec"]["template"]["spec"]["containers"][0]["command"]
    await cluster.apply(job)
    assert job_condition(await wait_job_finished(cluster.client, "nocmd"), "Failed")
    [pod] = await pods_of(cluster.client, "nocmd")
    state = terminated(pod)
    assert state["reason"] == "StartError"
    assert "command" in state["message"]


async def test_deleting_a_running_pod_sends_sigterm_then_lets_it_go(cluster: LocalCluster) -> None:
    marks = cluster.workdir
    script = (
        f"trap 'echo term > {marks}/term-$HOSTNAME; exit 7' TERM; while true; do sleep 0.05; done"
    )
    await cluster.apply(make_job("trapper", ["sh", "-c", script], backoffLimit=0))
    pod = await wait_pod_phase(cluster.client, "trapper", "Running")
    name = pod["metadata"]["name"]
    pid = cluster.runner.pid_of(NAMESPACE, name)
    assert pid is not None
    await cluster.client.delete(PODS.path(NAMESPACE, name))

    async def stopped() -> bool:
        return not alive(pid)

    await wait_for(stopped, what="the trapped process to exit")
    assert (marks / f"term-{name}").read_text() == "term\n"
    # The pod ended Failed (exit 7) before it went; that exhausts backoffLimit 0. (A replacement
    # may have started meanwhile: terminating pods are replaced at once, as in Kubernetes.)
    job = await wait_job_finished(cluster.client, "trapper")
    failed = job_condition(job, "Failed")
    assert failed is not None
    assert failed["reason"] == "BackoffLimitExceeded"

    async def deleted() -> bool:
        return name not in [p["metadata"]["name"] for p in await pods_of(cluster.client, "trapper")]

    await wait_for(deleted, what="the deleted pod to be finalized")


async def test_sigkill_follows_when_sigterm_is_ignored(cluster: LocalCluster) -> None:
    script = "trap '' TERM; while true; do sleep 0.05; done"
    job = make_job("stubborn", ["sh", "-c", script], pod_spec={"terminationGracePeriodSeconds": 1})
    await cluster.apply(job)
    pod = await wait_pod_phase(cluster.client, "stubborn", "Running")
    pid = cluster.runner.pid_of(NAMESPACE, pod["metadata"]["name"])
    assert pid is not None
    await cluster.client.delete(PODS.path(NAMESPACE, pod["metadata"]["name"]))

    async def stopped() -> bool:
        return not alive(pid)

    await wait_for(stopped, what="SIGKILL after the grace period")
    job = await wait_job_finished(cluster.client, "stubborn")
    failed = job_condition(job, "Failed")
    assert failed is not None
    assert failed["reason"] == "BackoffLimitExceeded"


async def test_deleting_a_job_kills_its_process(cluster: LocalCluster) -> None:
    await cluster.apply(make_job("doomed", ["sleep", "60"]))
    pod = await wait_pod_phase(cluster.client, "doomed", "Running")
    pid = cluster.runner.pid_of(NAMESPACE, pod["metadata"]["name"])
    assert pid is not None
    await cluster.client.delete(JOBS.path(NAMESPACE, "doomed"))

    async def gone() -> bool:
        return not alive(pid) and not await pods_of(cluster.client, "doomed")

    await wait_for(gone, what="the job's pod and process to go")


async def test_suspend_starts_nothing_and_resume_runs(cluster: LocalCluster) -> None:
    await cluster.apply(make_job("later", ["true"], suspend=True))

    async def suspended() -> JSON | None:
        job = await get_job(cluster.client, "later")
        return job if job_condition(job, "Suspended") else None

    job = await wait_for(suspended, what="Suspended condition")
    assert "startTime" not in job["status"]
    assert await pods_of(cluster.client, "later") == []
    await cluster.client.patch(JOBS.path(NAMESPACE, "later"), {"spec": {"suspend": False}})
    job = await wait_job_finished(cluster.client, "later")
    assert job_condition(job, "Complete")
    resumed = next(c for c in job["status"]["conditions"] if c["type"] == "Suspended")
    assert (resumed["status"], resumed["reason"]) == ("False", "JobResumed")


async def test_suspending_a_running_job_deletes_its_pod(cluster: LocalCluster) -> None:
    await cluster.apply(make_job("pausable", ["sleep", "60"]))
    pod = await wait_pod_phase(cluster.client, "pausable", "Running")
    pid = cluster.runner.pid_of(NAMESPACE, pod["metadata"]["name"])
    assert pid is not None
    await cluster.client.patch(JOBS.path(NAMESPACE, "pausable"), {"spec": {"suspend": True}})

    async def quiet() -> bool:
        return not alive(pid) and not await pods_of(cluster.client, "pausable")

    await wait_for(quiet, what="the suspended job's pod to go")
    job = await get_job(cluster.client, "pausable")
    assert job_condition(job, "Suspended")
    assert "failed" not in job["status"]  # suspension is not a failure


async def test_bare_pod_with_restart_policy_never_runs(cluster: LocalCluster) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bare", "namespace": NAMESPACE},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "c", "image": "i", "command": ["sh", "-c", "exit 0"]}],
        },
    }
    await cluster.apply(pod)

    async def succeeded() -> bool:
        current = await cluster.client.get(PODS.path(NAMESPACE, "bare"))
        return bool(current["status"].get("phase") == "Succeeded")

    await wait_for(succeeded, what="the bare pod to succeed")


async def test_pod_active_deadline_fails_the_pod(cluster: LocalCluster) -> None:
    job = make_job(
        "podline", ["sleep", "60"], backoffLimit=0, pod_spec={"activeDeadlineSeconds": 1}
    )
    await cluster.apply(job)
    pod = await wait_pod_phase(cluster.client, "podline", "Failed")
    assert pod["status"]["reason"] == "DeadlineExceeded"
    assert terminated(pod)["exitCode"] == 143
