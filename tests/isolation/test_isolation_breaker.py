"""The shared circuit breaker keeps working under the confinement, on the real tier: its reads and
writes pass RBAC (the per-run Role) and the stage-confinement admission policy, made by real stage
pods with their own bound tokens (`stage_breaker.py`, the real stage SDK).

- 20 pods of one run write one annotation at once, and no update is lost;
- a provider outage opens the circuit, holds the shards, and the run recovers by itself, while
  another run of the same ServiceAccount keeps its own (closed) breaker, untouched;
- a pod that starts before the operator recorded its Job (an operator that crashed between
  creating the Job and writing status, then restarts) keeps its first write;
- a re-driven run's new attempt keeps the breaker; the superseded attempt's pod no longer can.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from isolation_kit import Tenant, pause, pod_token, request_as, script, sleeper, unique

from cluster_kit import InstalledOperator, wait_for
from extraction_operator.examples.provider import FakeProvider

OWN_TIER = "runs stage pods as processes of this machine (a barrier file, a loopback provider)"


def _own_tier(real_cluster: Any) -> None:
    if real_cluster.node is None:
        pytest.skip(OWN_TIER)


def _llm(tenant: Tenant, run: str) -> dict[str, Any]:
    raw = tenant.annotation(run)
    circuit: dict[str, Any] = json.loads(raw or '{"circuits": {}}')["circuits"].get("llm", {})
    return circuit


def _running_pods(tenant: Tenant, run: str) -> int:
    doc = tenant.kube.json("get", "pods", "-n", tenant.namespace, "-l", f"extraction.dev/run={run}")
    return sum(1 for pod in doc["items"] if pod["status"].get("phase") == "Running")


def _records(tenant: Tenant, run: str, node: str) -> dict[str, Any]:
    job = tenant.node_status(run, node)["jobName"]
    (record,) = tenant.records(job, "BREAKER")
    return record


@pytest.mark.timeout(420)
def test_twenty_pods_of_one_run_contend_and_lose_no_update(
    tenant: Tenant, real_cluster: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _own_tier(real_cluster)
    pods, each = 20, 10
    go = tmp_path / "go"
    run = tenant.create_run(
        unique("contend"),
        [
            {
                "name": "hammer",
                "command": script("stage_breaker.py", "hammer", str(each), str(go)),
                "circuits": ["llm"],
                "shards": pods,
                "timeoutSeconds": 300,
            }
        ],
        parallelism=pods,
        # Closed throughout (threshold above 200), so `failures` counts every applied failure.
        circuitBreakers={"llm": {"failureThreshold": 1000}},
        # A budget no write can exhaust on a slow machine: every failure must land.
        env=[
            {"name": "EXTRACTION_BREAKER_MAX_ATTEMPTS", "value": "100"},
            {"name": "EXTRACTION_BREAKER_MAX_SECONDS", "value": "600"},
        ],
    )
    try:
        wait_for(f"{pods} running stage pods", lambda: _running_pods(tenant, run) == pods, 240)
        pause(2)  # let every pod read its run once (and so pass the admission policy) first
        go.write_text("go")
        tenant.wait_phase(run, {"Succeeded"}, timeout=300)
        stats = [_records(tenant, run, f"hammer[{index}]") for index in range(pods)]
        llm = _llm(tenant, run)
    finally:
        tenant.delete_run(run)
    applied = sum(s["applied"] for s in stats)
    conflicts = sum(s["conflicts_retried"] for s in stats)
    seconds = max(s["seconds"] for s in stats)
    with capsys.disabled():
        print(f"\n{pods}x{each} failures through RBAC + admission: {applied} applied, "
              f"{conflicts} conflicts retried, {seconds:.1f} s")  # fmt: skip
    assert sum(s["bookkeeping_failures"] for s in stats) == 0
    assert sum(s["access_denied"] for s in stats) == 0
    assert applied == pods * each
    assert llm["failures"] == pods * each, "a compare-and-swap lost an update"
    assert llm["state"] == "closed"


@pytest.mark.timeout(420)
def test_an_outage_opens_the_circuit_and_the_run_recovers_beside_a_run_of_the_same_account(
    tenant: Tenant, real_cluster: Any, installed_operator: InstalledOperator
) -> None:
    _own_tier(real_cluster)
    shards, threshold = 8, 3
    neighbour = tenant.create_run(unique("neighbour"), [sleeper()])
    with FakeProvider(outage_seconds=10) as provider:
        run = tenant.create_run(
            unique("outage"),
            [
                {
                    "name": "calls",
                    "command": script("stage_breaker.py", "calls", provider.url, "3"),
                    "circuits": ["llm"],
                    "shards": shards,
                }
            ],
            parallelism=shards,
            failFast=False,
            retry={"limit": 5, "backoff": {"initialSeconds": 1, "maxSeconds": 3}},
            circuitBreakers={
                "llm": {
                    "failureThreshold": threshold,
                    "recoveryTimeoutSeconds": 4,
                    "successThreshold": 1,
                    "probeTimeoutSeconds": 30,
                }
            },
        )
        try:
            done = tenant.wait_phase(run, {"Succeeded", "Failed"}, timeout=300)
            stats = provider.stats()
            llm = _llm(tenant, run)
            neighbour_status = tenant.get(neighbour).get("status") or {}
            neighbour_breakers = tenant.annotation(neighbour)
            events = tenant.kube.run(
                "get", "events", "-n", tenant.namespace,
                f"--field-selector=involvedObject.name={run}",
            ).stdout  # fmt: skip
        finally:
            tenant.delete_run(run)
            tenant.delete_run(neighbour)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    assert stats["failed_calls"] > 0, stats
    # Without the breaker each of the 8 shards would fail up to 6 attempts into the outage.
    # With it: the threshold, calls already in flight when it opened, and a failed probe or two.
    assert stats["failed_calls"] <= threshold + shards + 3, stats
    assert llm["opens"] >= 1
    assert llm["state"] == "closed"
    assert "CircuitOpened" in events
    assert "CircuitClosed" in events
    # The run of the same ServiceAccount kept its own breaker: nothing wrote it.
    assert neighbour_breakers is None
    assert neighbour_status.get("circuits", {}).get("llm", {}).get("state") == "closed"
    assert "Traceback" not in installed_operator.logs()


@pytest.mark.timeout(360)
def test_a_pod_that_starts_before_the_operator_recorded_it_keeps_its_first_write(
    tenant: Tenant, real_cluster: Any, installed_operator: InstalledOperator, tmp_path: Path
) -> None:
    """The operator crashed between creating the Job and recording it (here: scaled to zero,
    and the node's entry removed from status), the pod records a failure at once, and the
    operator comes back: the write waits for it and lands."""
    _own_tier(real_cluster)
    go = tmp_path / "go"
    run = tenant.create_run(
        unique("early"),
        [
            {
                "name": "first",
                "command": script("stage_breaker.py", "first-failure", str(go)),
                "circuits": ["llm"],
            }
        ],
        env=[{"name": "EXTRACTION_BREAKER_ENROLLMENT_SECONDS", "value": "180"}],
    )
    try:
        job = tenant.wait_node(run, "first", {"Running"})["jobName"]
        wait_for("the stage pod to run", lambda: _running_pods(tenant, run) == 1, 120)
        installed_operator.scale(0)
        wait_for("the operator to stop", lambda: not installed_operator.pods(), 120)
        tenant.kube.run(
            "patch", "xrun", run, "-n", tenant.namespace, "--subresource=status",
            "--type=json", "-p", '[{"op": "remove", "path": "/status/nodes/first"}]',
        )  # fmt: skip
        go.write_text("go")
        pause(4)
        assert tenant.annotation(run) is None, "admitted before the run named its Job"
        installed_operator.scale(1)
        installed_operator.wait_available()
        record = tenant.records(job, "BREAKER", timeout=180)[0]
        llm = _llm(tenant, run)
        (pod,) = tenant.pods_of_job(job)
        log = tenant.logs(pod)
    finally:
        installed_operator.scale(1)
        tenant.delete_run(run)
    assert record["applied"] == 1, record
    assert record["seconds"] >= 4, "the first write waited for the operator"
    assert llm["failures"] == 1
    assert "waiting up to 180 s for the operator to record it" in log


@pytest.mark.timeout(300)
def test_a_redriven_run_keeps_its_breaker_and_the_old_attempt_loses_it(tenant: Tenant) -> None:
    run = tenant.create_run(
        unique("again"),
        [
            {
                "name": "s",
                "command": script("stage_breaker.py", "fail-first-attempt"),
                "circuits": ["llm"],
            }
        ],
    )
    try:
        first = tenant.wait_node(run, "s", {"Failed"})["jobName"]
        tenant.wait_phase(run, {"Failed"})
        tenant.kube.run("annotate", "xrun", run, "-n", tenant.namespace, "extraction.dev/redrive=1")
        tenant.wait_phase(run, {"Succeeded"})
        second = tenant.node_status(run, "s")["jobName"]
        records = [tenant.records(job, "BREAKER")[0] for job in (first, second)]
        llm = _llm(tenant, run)
        (old_pod,) = tenant.pods_of_job(first)
        status, message = _patch_as_pod(tenant, run, old_pod)
    finally:
        tenant.delete_run(run)
    assert first != second
    assert [r["applied"] for r in records] == [1, 1]
    assert [r["attempt"] for r in records] == ["1", "2"]
    assert llm["failures"] == 2
    # A token bound to the superseded attempt's pod: its Job is no longer the node's.
    assert status == 403
    assert f"pod {old_pod} runs no stage of ExtractionRun" in message


def _patch_as_pod(tenant: Tenant, run: str, pod: str) -> tuple[int, str]:
    """A stage's breaker write, made with a fresh token bound to `pod`."""
    token = pod_token(tenant.kube, tenant.namespace, "extraction-stage", pod)
    path = f"/apis/extraction.dev/v1alpha1/namespaces/{tenant.namespace}/extractionruns/{run}"
    body = {"metadata": {"annotations": {"extraction.dev/circuit-breakers": "{}"}}}
    return request_as(tenant.kube, token, "PATCH", path, body)


@pytest.mark.timeout(300)
def test_a_forged_document_from_the_runs_own_stage_holds_nothing_back(tenant: Tenant) -> None:
    """A stage may write its run's breaker annotation, so it is untrusted input: a circuit it
    says opened in 2099 (with counters beyond 64 bits) does not block the run's next stage, and
    the operator says why, with the date, and keeps writing status."""
    run = tenant.create_run(
        unique("forged"),
        [
            {"name": "forge", "command": script("stage_breaker.py", "forge"), "circuits": ["llm"]},
            {
                "name": "after",
                "command": script("stage_breaker.py", "hammer", "1"),
                "circuits": ["llm"],
                "dependsOn": ["forge"],
            },
        ],
        circuitBreakers={"llm": {"failureThreshold": 5, "recoveryTimeoutSeconds": 30}},
    )
    try:
        done = tenant.wait_phase(run, {"Succeeded", "Failed"}, timeout=180)
        events = tenant.kube.run(
            "get", "events", "-n", tenant.namespace,
            f"--field-selector=involvedObject.name={run},reason=CircuitAnnotationInvalid",
            "-o", "jsonpath={.items[*].message}",
        ).stdout  # fmt: skip
        llm = _llm(tenant, run)
    finally:
        tenant.delete_run(run)
    status = done["status"]
    assert status["phase"] == "Succeeded", status
    assert status["nodes"]["after"]["attempts"] == 1, "never blocked by the forged circuit"
    assert "2099-01-01T00:00:00.000Z" in events
    assert "treating circuit 'llm' as closed" in events
    # The next write of a stage replaced the forgery with a sane document.
    assert llm["state"] == "closed"
    assert llm["failures"] == 1
    assert status["circuits"]["llm"]["state"] == "closed"
    assert "nextProbeAt" not in status["circuits"]["llm"]
