"""End to end on the real tier: the operator installed from `manifests/` in the cluster, with its
own ServiceAccount, runs pipelines through the real Job controller, scheduler and garbage
collector, and stage pods use their own ServiceAccount tokens.

The same tests run against any cluster named by `EXTRACTION_TEST_KUBECONFIG` (kind included: load
the operator image first); the ones that kill a process on the node need the project's own tier.
"""

from __future__ import annotations

import re
import signal
import uuid
from typing import Any

import pytest

from cluster_kit import OPERATOR_NAMESPACE, REPO, InstalledOperator, Kubectl, wait_for
from extraction_operator.demo.manifests import load_manifests
from extraction_operator.demo.outage import with_provider
from extraction_operator.examples.provider import FakeProvider

EXAMPLES = REPO / "manifests" / "examples"
NAMESPACE = "default"
SHARD_SCRIPT = "import os; print(os.environ['SHARD_INDEX'])"
SLEEP_SCRIPT = "import time; time.sleep(600)"


def _run(name: str, stages: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "extraction.dev/v1alpha1",
        "kind": "ExtractionRun",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "image": "python:3.11-slim",
            "serviceAccountName": "extraction-stage",
            "retry": {"limit": 2, "backoff": {"initialSeconds": 1, "maxSeconds": 3}},
            "stages": stages,
            **spec,
        },
    }


def _name() -> str:
    return f"e2e-{uuid.uuid4().hex[:6]}"


def _jobs_of(kube: Kubectl, run: str) -> list[str]:
    return kube.names("jobs", NAMESPACE, f"extraction.dev/run={run}")


def _wait_ready(kube: Kubectl, run: str, timeout: int = 240) -> dict[str, Any]:
    kube.run(
        "wait",
        f"xrun/{run}",
        "-n",
        NAMESPACE,
        "--for=condition=Ready",
        f"--timeout={timeout}s",
        timeout=timeout + 10,
    )
    return kube.json("get", "xrun", run, "-n", NAMESPACE)


def _assert_clean_log(operator: InstalledOperator) -> None:
    log = operator.logs()
    assert "Traceback" not in log, log[-4000:]
    # The operator is cluster-wide and other tests delete their namespaces: an Event it cannot post
    # into a namespace being deleted is the API server's 403 too, and no missing permission.
    forbidden = [
        line
        for line in log.splitlines()
        if re.search(r"\b403\b|[Ff]orbidden", line) and "because it is being terminated" not in line
    ]
    assert not forbidden, "\n".join(forbidden[:10])


@pytest.mark.timeout(300)
def test_a_fan_out_run_becomes_ready_with_one_job_per_attempt(
    kube: Kubectl, installed_operator: InstalledOperator
) -> None:
    name = _name()
    flaky = "import os, sys; sys.exit(1 if os.environ['EXTRACTION_ATTEMPT'] == '1' else 0)"
    kube.apply(
        _run(
            name,
            [
                {"name": "chunk", "command": ["python", "-c", "print('chunk')"]},
                {
                    "name": "mentions",
                    "command": ["python", "-c", SHARD_SCRIPT],
                    "dependsOn": ["chunk"],
                    "shards": 3,
                },
                {"name": "entities", "command": ["python", "-c", flaky], "dependsOn": ["mentions"]},
            ],
        )
    )
    try:
        run = _wait_ready(kube, name)
        nodes = run["status"]["nodes"]
        assert {n["phase"] for n in nodes.values()} == {"Succeeded"}
        assert nodes["entities"]["attempts"] == 2
        assert len(_jobs_of(kube, name)) == sum(n["attempts"] for n in nodes.values())
        printed = kube.run("get", "xrun", name, "-n", NAMESPACE).stdout
        assert "Succeeded" in printed
        assert "5/5" in printed
    finally:
        kube.run("delete", "xrun", name, "-n", NAMESPACE, "--wait=false", check=False)


@pytest.mark.timeout(300)
def test_the_example_pipeline_succeeds_with_no_403_and_no_traceback(
    kube: Kubectl, installed_operator: InstalledOperator
) -> None:
    kube.run("apply", "-f", str(EXAMPLES / "extraction-pipeline.yaml"))
    try:
        run = _wait_ready(kube, "extraction-pipeline")
        assert run["status"]["phase"] == "Succeeded"
        nodes = run["status"]["nodes"]
        assert len(nodes) == 8
        assert {n["phase"] for n in nodes.values()} == {"Succeeded"}
        assert nodes["entities"]["attempts"] == 2  # the example's deliberate flaky attempt
        _assert_clean_log(installed_operator)
    finally:
        kube.run(
            "delete",
            "-f",
            str(EXAMPLES / "extraction-pipeline.yaml"),
            "--wait=true",
            check=False,
            timeout=120,
        )


@pytest.mark.timeout(400)
def test_a_provider_outage_opens_the_shared_circuit_with_the_stage_pods_own_tokens(
    kube: Kubectl, installed_operator: InstalledOperator, real_cluster: Any
) -> None:
    if real_cluster.node is None:
        pytest.skip("the fake provider listens on this machine's loopback: own tier only")
    outage = 20.0
    with FakeProvider(outage_seconds=outage) as provider:
        manifests = with_provider(
            load_manifests([str(EXAMPLES / "extraction-pipeline.yaml")]), provider.url, outage
        )
        name = _name()
        objects = []
        for obj in manifests.objects:
            if obj["kind"] == "ExtractionRun":
                obj["metadata"]["name"] = name
            objects.append(obj)
        kube.apply(objects)
        try:
            run = _wait_ready(kube, name, timeout=300)
            stats = provider.stats()
        finally:
            kube.run("delete", "xrun", name, "-n", NAMESPACE, "--wait=false", check=False)
    assert run["status"]["phase"] == "Succeeded"
    assert stats["failed_calls"] > 0, stats
    events = kube.run(
        "get", "events", "-n", NAMESPACE, f"--field-selector=involvedObject.name={name}"
    ).stdout
    assert "CircuitOpened" in events
    assert "CircuitClosed" in events
    # The breaker's bookkeeping was written by the stage pods' own ServiceAccount: a refused
    # write would have left the circuit closed and every shard hammering the provider.
    assert stats["failed_calls"] < 3 * 20, stats
    _assert_clean_log(installed_operator)


@pytest.mark.timeout(400)
def test_sigkilled_operator_mid_run_finishes_the_run_without_duplicate_jobs(
    kube: Kubectl, installed_operator: InstalledOperator, real_cluster: Any
) -> None:
    node = real_cluster.node
    if node is None:
        pytest.skip("kills the operator's process on the node: own tier only")
    name = _name()
    step = "import time; time.sleep(2)"
    stages = [{"name": "a", "command": ["python", "-c", step]}]
    for previous, current in zip("abcde", "bcdef", strict=True):
        stages.append(
            {
                "name": current,
                "command": ["python", "-c", step],
                "dependsOn": [previous],
                "shards": 2,
            }
        )
    kube.apply(_run(name, stages))
    try:
        for kills in range(1, 4):
            wait_for("a new Job of the run", lambda: len(_jobs_of(kube, name)) > 0, 60)
            pod = installed_operator.running_pod()
            old_pid = node.pid_of(OPERATOR_NAMESPACE, pod)
            assert node.kill(OPERATOR_NAMESPACE, pod, signal.SIGKILL)
            # restartPolicy Always: the node restarts the container in place, as a kubelet does.
            wait_for(
                "the operator's container to be restarted",
                lambda p=pod, old=old_pid: node.pid_of(OPERATOR_NAMESPACE, p) not in (None, old),
                120,
            )
            restarts = kube.json("get", "pod", pod, "-n", OPERATOR_NAMESPACE)["status"][
                "containerStatuses"
            ][0]["restartCount"]
            assert restarts >= kills
        run = _wait_ready(kube, name, timeout=300)
        nodes = run["status"]["nodes"]
        assert {n["phase"] for n in nodes.values()} == {"Succeeded"}
        # Deterministic Job names per (node, attempt): a restart adopts, never duplicates.
        assert len(_jobs_of(kube, name)) == sum(n["attempts"] for n in nodes.values())
        assert all(n["attempts"] == 1 for n in nodes.values())
    finally:
        kube.run("delete", "xrun", name, "-n", NAMESPACE, "--wait=false", check=False)


@pytest.mark.timeout(300)
def test_deleting_a_run_with_the_operator_scaled_to_zero_deletes_its_jobs_and_pods(
    kube: Kubectl, installed_operator: InstalledOperator
) -> None:
    name = _name()
    kube.apply(_run(name, [{"name": "sleep", "command": ["python", "-c", SLEEP_SCRIPT]}]))
    selector = f"extraction.dev/run={name}"
    wait_for("the run's pod", lambda: kube.names("pods", NAMESPACE, selector), 120)
    installed_operator.scale(0)
    try:
        wait_for("the operator to be gone", lambda: not installed_operator.pods(), 120)
        kube.run("delete", "xrun", name, "-n", NAMESPACE, "--wait=true", timeout=120)
        wait_for(
            "the garbage collector to delete the run's Jobs and pods",
            lambda: (
                not kube.names("jobs", NAMESPACE, selector)
                and not kube.names("pods", NAMESPACE, selector)
            ),
            120,
        )
    finally:
        installed_operator.scale(1)
        installed_operator.wait_available()
