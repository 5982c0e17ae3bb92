"""Pods and Jobs on the process node of a real control plane: the real scheduler binds them, the
real Job controller owns Jobs, and the node runs, reports, times out and deletes them."""

from __future__ import annotations

import time
from typing import Any

import pytest

from extraction_operator.localcluster.kubeapi import JOBS, PODS, ApiClient, Resource
from extraction_operator.localcluster.node import ProcessNode
from extraction_operator.localcluster.nodetesting import (
    container_state,
    phase,
    pod_manifest,
    wait_finished,
    wait_gone,
    wait_pod,
)
from extraction_operator.localcluster.testing import (
    alive,
    job_condition,
    make_job,
    python,
    wait_for,
)

pytestmark = pytest.mark.timeout(90)
STRATEGIC_MERGE = "application/strategic-merge-patch+json"
DEPLOYMENTS = Resource("apps/v1", "deployments")
JSON = dict[str, Any]


def condition(pod: JSON, kind: str) -> JSON:
    return next(c for c in pod["status"]["conditions"] if c["type"] == kind)


async def test_bare_pod_succeeds_with_its_termination_message_and_log(
    admin: ApiClient, namespace: str, node: ProcessNode
) -> None:
    code = (
        "import os; print('hello'); open(os.environ['TERMINATION_MESSAGE_PATH'], 'w').write('ok')"
    )
    await admin.create(PODS.path(namespace), pod_manifest("hello", python(code)))
    pod = await wait_finished(admin, namespace, "hello")
    assert pod["spec"]["nodeName"] == node.node_name  # bound by the real scheduler
    status = pod["status"]
    assert status["phase"] == "Succeeded"
    terminated = container_state(pod)["terminated"]
    assert (terminated["exitCode"], terminated["reason"], terminated["message"]) == (
        0,
        "Completed",
        "ok",
    )
    assert (status["hostIP"], status["podIP"]) == ("127.0.0.1", "127.0.0.1")
    assert status["startTime"] <= terminated["finishedAt"]
    assert status["containerStatuses"][0]["lastState"] == {}
    assert condition(pod, "Ready")["status"] == "False"
    assert condition(pod, "Ready")["reason"] == "PodCompleted"
    assert condition(pod, "Initialized")["status"] == "True"
    assert condition(pod, "PodScheduled")["status"] == "True"
    assert node.logs(namespace, "hello") == "hello\n"


async def test_conditions_written_by_others_are_kept(
    admin: ApiClient, namespace: str, node: ProcessNode
) -> None:
    gate = node.workdir / f"gate-{namespace}"
    script = f"while [ ! -e {gate} ]; do sleep 0.05; done"
    await admin.create(PODS.path(namespace), pod_manifest("gated", ["sh", "-c", script]))
    running = await wait_pod(admin, namespace, "gated", lambda p: phase(p) == "Running")
    scheduled = condition(running, "PodScheduled")
    foreign = {"type": "example.com/Gate", "status": "True", "lastProbeTime": None,
               "lastTransitionTime": "2020-01-01T00:00:00Z", "reason": "Opened"}  # fmt: skip
    await admin.patch(PODS.path(namespace, "gated", "status"),
                      {"status": {"conditions": [foreign]}}, STRATEGIC_MERGE)  # fmt: skip
    gate.touch()
    pod = await wait_finished(admin, namespace, "gated")
    assert phase(pod) == "Succeeded"
    assert condition(pod, "example.com/Gate") == foreign
    assert condition(pod, "PodScheduled") == scheduled  # as the scheduler wrote it


async def test_failing_pod_reports_its_exit_code_and_log_tail(
    admin: ApiClient, namespace: str
) -> None:
    container = {"terminationMessagePolicy": "FallbackToLogsOnError"}
    command = ["sh", "-c", "echo boom >&2; exit 3"]
    await admin.create(PODS.path(namespace), pod_manifest("fails", command, container=container))
    pod = await wait_finished(admin, namespace, "fails")
    assert phase(pod) == "Failed"
    terminated = container_state(pod)["terminated"]
    assert (terminated["exitCode"], terminated["reason"], terminated["message"]) == (
        3,
        "Error",
        "boom\n",
    )


async def test_job_completes_through_the_real_job_controller(
    admin: ApiClient, namespace: str, node: ProcessNode
) -> None:
    job = make_job("work", python("print('done')"))
    job["metadata"]["namespace"] = namespace
    await admin.create(JOBS.path(namespace), job)

    async def finished() -> JSON | None:
        current = await admin.get(JOBS.path(namespace, "work"))
        done = job_condition(current, "Complete") or job_condition(current, "Failed")
        return current if done else None

    current = await wait_for(finished, within=40, what="the Job to finish")
    assert job_condition(current, "Complete")
    assert current["status"]["succeeded"] == 1
    pods, _ = await admin.list(PODS.path(namespace), labelSelector="job-name=work")
    [pod] = pods
    assert pod["spec"]["nodeName"] == node.node_name
    assert phase(pod) == "Succeeded"
    assert "batch.kubernetes.io/job-tracking" not in (pod["metadata"].get("finalizers") or [])
    assert node.logs(namespace, pod["metadata"]["name"]) == "done\n"


async def test_failed_job_hits_its_backoff_limit(admin: ApiClient, namespace: str) -> None:
    job = make_job("broken", ["sh", "-c", "exit 7"])
    job["metadata"]["namespace"] = namespace
    await admin.create(JOBS.path(namespace), job)

    async def failed() -> JSON | None:
        current = await admin.get(JOBS.path(namespace, "broken"))
        return job_condition(current, "Failed")

    cond = await wait_for(failed, within=40, what="the Job to fail")
    assert cond["reason"] == "BackoffLimitExceeded"
    pods, _ = await admin.list(PODS.path(namespace), labelSelector="job-name=broken")
    assert [container_state(p)["terminated"]["exitCode"] for p in pods] == [7]


async def test_active_deadline_fails_the_pod_with_deadline_exceeded(
    admin: ApiClient, namespace: str, node: ProcessNode
) -> None:
    manifest = pod_manifest("late", ["sleep", "60"], activeDeadlineSeconds=2)
    await admin.create(PODS.path(namespace), manifest)
    running = await wait_pod(admin, namespace, "late", lambda p: phase(p) == "Running")
    pid = node.pid_of(namespace, "late")
    assert pid is not None
    pod = await wait_finished(admin, namespace, "late")
    assert (phase(pod), pod["status"]["reason"]) == ("Failed", "DeadlineExceeded")
    assert container_state(pod)["terminated"]["exitCode"] == 143  # SIGTERM, honoured at once
    assert running["status"]["startTime"] == pod["status"]["startTime"]
    assert not alive(pid)


async def test_graceful_deletion_sends_sigterm_and_confirms_the_delete(
    admin: ApiClient, namespace: str, node: ProcessNode
) -> None:
    script = "trap 'echo got TERM; exit 0' TERM; echo ready; while true; do sleep 0.1; done"
    await admin.create(PODS.path(namespace), pod_manifest("polite", ["sh", "-c", script]))
    await wait_for(lambda: _logged(node, namespace, "polite", "ready"), what="the trap")
    started = time.monotonic()
    await admin.delete(PODS.path(namespace, "polite"), grace_period_seconds=30)
    await wait_gone(admin, PODS.path(namespace, "polite"))
    assert time.monotonic() - started < 10  # the process ended on SIGTERM; no 30 s wait
    assert "got TERM" in node.logs(namespace, "polite")


async def test_graceful_deletion_kills_after_the_grace_period(
    admin: ApiClient, namespace: str, node: ProcessNode
) -> None:
    script = "trap '' TERM; echo ready; while true; do sleep 0.1; done"
    await admin.create(PODS.path(namespace), pod_manifest("stubborn", ["sh", "-c", script]))
    await wait_for(lambda: _logged(node, namespace, "stubborn", "ready"), what="the trap")
    pid = node.pid_of(namespace, "stubborn")
    assert pid is not None
    started = time.monotonic()
    await admin.delete(PODS.path(namespace, "stubborn"), grace_period_seconds=2)
    await wait_for(lambda: _dead(pid), within=10, what="SIGKILL after the grace period")
    assert time.monotonic() - started >= 1.9
    await wait_gone(admin, PODS.path(namespace, "stubborn"))


async def _dead(pid: int) -> bool:
    return not alive(pid)


async def _logged(node: ProcessNode, namespace: str, pod: str, text: str) -> bool:
    """Whether the pod's process has printed `text` (a process reported Running may not have
    installed its signal handlers yet, on this node as in a real container)."""
    try:
        return text in node.logs(namespace, pod)
    except KeyError:  # not started on the node yet
        return False


async def test_killed_process_fails_its_pod_with_the_signal_exit_code(
    admin: ApiClient, namespace: str, node: ProcessNode
) -> None:
    await admin.create(PODS.path(namespace), pod_manifest("victim", ["sleep", "60"]))
    await wait_pod(admin, namespace, "victim", lambda p: phase(p) == "Running")
    assert node.kill(namespace, "victim")
    pod = await wait_finished(admin, namespace, "victim")
    assert (phase(pod), container_state(pod)["terminated"]["exitCode"]) == ("Failed", 137)


async def test_restart_policy_always_restarts_the_process_in_place(
    admin: ApiClient, namespace: str, node: ProcessNode
) -> None:
    command = ["sh", "-c", "echo run; exit 2"]
    await admin.create(PODS.path(namespace), pod_manifest("loop", command, restartPolicy="Always"))

    def restarted_twice(pod: JSON) -> bool:
        statuses = (pod.get("status") or {}).get("containerStatuses") or [{}]
        return int(statuses[0].get("restartCount") or 0) >= 2

    pod = await wait_pod(admin, namespace, "loop", restarted_twice, within=30, what="2 restarts")
    assert phase(pod) == "Running"  # a crash-looping pod is still running
    status = pod["status"]["containerStatuses"][0]
    assert status["lastState"]["terminated"]["exitCode"] == 2
    assert node.logs(namespace, "loop").count("run\n") >= 2
    await admin.delete(PODS.path(namespace, "loop"), grace_period_seconds=0)
    await wait_gone(admin, PODS.path(namespace, "loop"))


async def test_restart_policy_on_failure_restarts_until_success(
    admin: ApiClient, namespace: str, node: ProcessNode
) -> None:
    marker = node.workdir / f"tried-{namespace}"
    script = f"if [ -e {marker} ]; then exit 0; fi; touch {marker}; exit 5"
    manifest = pod_manifest("retry", ["sh", "-c", script], restartPolicy="OnFailure")
    await admin.create(PODS.path(namespace), manifest)
    pod = await wait_finished(admin, namespace, "retry")
    status = pod["status"]["containerStatuses"][0]
    assert phase(pod) == "Succeeded"
    assert status["restartCount"] == 1
    assert status["lastState"]["terminated"]["exitCode"] == 5


async def test_deployment_becomes_available(admin: ApiClient, namespace: str) -> None:
    labels = {"app": "web"}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "main", "image": "ignored:latest",
                                         "command": ["sleep", "600"]}]},
            },
        },
    }  # fmt: skip
    await admin.create(DEPLOYMENTS.path(namespace), deployment)

    async def available() -> JSON | None:
        current = await admin.get(DEPLOYMENTS.path(namespace, "web"))
        return current if (current.get("status") or {}).get("availableReplicas") == 1 else None

    await wait_for(available, within=40, what="the Deployment to become available")
