"""The operator against a real kube-apiserver and Job controller (the `real_cluster` tier).

The emulator let four defects through that this tier catches:
- kopf's watches sent `timeoutSeconds=270.0`, which kube-apiserver refuses (400), so nothing ran;
- the first status write loses its compare-and-swap to kopf's own annotation patch, and the next
  pass reported the Job this very process had just created as "adopted";
- the Job controller deletes the pods of a Job past its deadline, so a deadline failure that
  waited for pod facts was accounted seconds late (the stage's run time is now counted by the
  operator itself, from its container's start, and checked here for promptness);
- a run whose stage ServiceAccount may not keep its circuit breakers looked healthy.
Every run lives in a namespace of its own, served by an operator watching only that namespace.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from extraction_operator.api.constants import GROUP, PLURAL, VERSION
from extraction_operator.controller.embedded import EmbeddedOperator

REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def _wait(probe: Callable[[], T | None], seconds: float, what: str) -> T:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {seconds}s waiting for {what}")


class Cluster:
    def __init__(self, kubeconfig: Path, namespace: str) -> None:
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.api = config.new_client_from_config(config_file=str(kubeconfig))
        self.core = client.CoreV1Api(self.api)
        self.batch = client.BatchV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.rbac = client.RbacAuthorizationV1Api(self.api)

    def install_crd(self) -> None:
        crd = yaml.safe_load((REPO / "crds" / "extractionruns.yaml").read_text())
        extensions = client.ApiextensionsV1Api(self.api)
        try:
            extensions.create_custom_resource_definition(crd)
        except ApiException as error:
            if error.status != 409:
                raise

        def established() -> bool:
            status = extensions.read_custom_resource_definition(crd["metadata"]["name"]).status
            return any(
                c.type == "Established" and c.status == "True" for c in status.conditions or []
            )

        _wait(established, 30, "the CRD to be established")

    def create_run(self, name: str, spec: dict[str, Any]) -> None:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ExtractionRun",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": spec,
        }
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, body)

    def run(self, name: str) -> dict[str, Any]:
        run: dict[str, Any] = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name
        )
        return run

    def events(self, name: str) -> list[tuple[str, str]]:
        items = self.core.list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.name={name}"
        ).items
        return [(event.reason, event.message) for event in items]

    def install_stage_permissions(self) -> None:
        for path in ("serviceaccount.yaml",):  # the operator grants the rest per run
            obj = yaml.safe_load((REPO / "manifests" / "stage" / path).read_text())
            obj["metadata"]["namespace"] = self.namespace
            if obj["kind"] == "ServiceAccount":
                self.core.create_namespaced_service_account(self.namespace, obj)
            elif obj["kind"] == "Role":
                self.rbac.create_namespaced_role(self.namespace, obj)
            else:
                obj["subjects"][0]["namespace"] = self.namespace
                self.rbac.create_namespaced_role_binding(self.namespace, obj)


@pytest.fixture
def cluster(real_cluster: Any) -> Iterator[Cluster]:
    namespace = f"xr-ctrl-{uuid.uuid4().hex[:6]}"
    cluster = Cluster(Path(real_cluster.admin_kubeconfig), namespace)
    cluster.install_crd()
    cluster.core.create_namespace({"metadata": {"name": namespace}})
    try:
        yield cluster
    finally:
        cluster.core.delete_namespace(namespace)
        cluster.api.close()


@pytest.fixture
def operator(cluster: Cluster, installed_operator_paused: None) -> Iterator[EmbeddedOperator]:
    with EmbeddedOperator(
        kubeconfig=str(cluster.kubeconfig), namespaces=[cluster.namespace], resync_seconds=30.0
    ) as embedded:
        assert embedded.ready.wait(30)
        yield embedded


def _gone(read: Callable[[], object]) -> bool:
    try:
        read()
    except ApiException as error:
        return error.status == 404
    return False


def _time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def test_a_run_on_a_real_api_server_is_launched_reported_and_timed_out_promptly(
    cluster: Cluster, operator: EmbeddedOperator
) -> None:
    spec = {
        "image": "busybox:1.36",
        "retry": {"limit": 0},
        "circuitBreakers": {"llm": {}},
        "stages": [
            {"name": "a", "command": ["sleep", "600"], "timeoutSeconds": 2, "circuits": ["llm"]}
        ],
    }
    cluster.create_run("late", spec)
    # Watches work (no 400 for a fractional timeoutSeconds): the run is picked up and launched.
    _wait(lambda: cluster.run("late").get("status", {}).get("nodes"), 20, "the first status")

    def container_started_at() -> datetime | None:
        pods = cluster.core.list_namespaced_pod(
            cluster.namespace, label_selector="job-name=late-a-1"
        ).items
        for pod in pods:
            for status in pod.status.container_statuses or []:
                if status.state.running is not None:
                    return status.state.running.started_at  # type: ignore[no-any-return]
        return None

    started_at = _wait(container_started_at, 30, "the stage container to run")
    job = cluster.batch.read_namespaced_job("late-a-1", cluster.namespace)
    assert job.spec.active_deadline_seconds == 2 + 600  # a backstop: start window + run time
    node = _wait(
        lambda: (n := cluster.run("late")["status"]["nodes"]["a"])["phase"] == "Failed" and n,
        60,
        "the node to fail",
    )
    # The run time counts from the container's start (the Job's own activeDeadlineSeconds also
    # holds the start window, so it is only a backstop): the operator ends the attempt itself,
    # promptly, with the same words as the Job controller's deadline. Whole-second times; the
    # upper bound only tells "the operator ended it" from the Job's 602 s backstop, with room for
    # a loaded machine.
    finished_at = _time(node["finishedAt"])
    assert 2 <= (finished_at - started_at).total_seconds() <= 60, (started_at, finished_at)
    assert node["reason"] == "DeadlineExceeded"
    assert node["message"] == "the stage ran longer than its timeoutSeconds (2s)"
    _wait(
        lambda: _gone(lambda: cluster.batch.read_namespaced_job("late-a-1", cluster.namespace)),
        30,
        "the timed-out Job to be deleted",
    )

    events = _wait(lambda: cluster.events("late") or None, 10, "Events on the run")
    events = cluster.events("late")
    started = [message for reason, message in events if reason == "StageStarted"]
    assert started == ["a: started attempt 1 (job late-a-1)"], events
    assert not any("adopted" in message for _, message in events)
    # The operator granted the stage identity (here the namespace's `default` account) `patch`
    # on this run alone, before launching it (controller/stagerbac.py; tests/isolation).
    assert not any(r == "CircuitBreakersNotShared" for r, _ in events)
    shared = next(
        c
        for c in cluster.run("late")["status"]["conditions"]
        if c["type"] == "CircuitBreakersShared"
    )
    assert (shared["status"], shared["reason"]) == ("True", "Allowed")
    assert f"ServiceAccount {cluster.namespace}/default" in shared["message"]
    assert "Role extraction-stage-late" in shared["message"]


def test_the_stage_account_with_the_stage_role_is_allowed_to_share_breakers(
    cluster: Cluster, operator: EmbeddedOperator
) -> None:
    cluster.install_stage_permissions()
    spec = {
        "image": "busybox:1.36",
        "serviceAccountName": "extraction-stage",
        "circuitBreakers": {"llm": {}},
        "stages": [{"name": "a", "command": ["sleep", "600"], "circuits": ["llm"]}],
    }
    cluster.create_run("allowed", spec)

    def shared() -> dict[str, Any] | None:
        conditions = cluster.run("allowed").get("status", {}).get("conditions", [])
        return next((c for c in conditions if c["type"] == "CircuitBreakersShared"), None)

    condition = _wait(shared, 20, "the CircuitBreakersShared condition")
    assert (condition["status"], condition["reason"]) == ("True", "Allowed"), condition
    assert not any(r == "CircuitBreakersNotShared" for r, _ in cluster.events("allowed"))
