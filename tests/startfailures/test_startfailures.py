"""Stage pods that never start, on the real tier: the operator installed from `manifests/`, the
real Job controller, scheduler and admission, and the project's process kubelet as the node.

Each cause the cluster can produce here is caught within 10 seconds of creating the run (the
cluster knows it a moment after), shown on the node (`reason`, `message`) and in the run's
message, reported with one `StageCannotStart` Event, and, past the start deadline, ends the
attempt (`StartDeadlineExceeded`, its Job deleted). A cause fixed before the deadline lets the
attempt carry on by itself. Times to report are printed (`pytest -s`) for the record.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cluster_kit import InstalledOperator, Kubectl, wait_for

REPORT_WITHIN = 10.0  # seconds from creating the run to the cause on the node
START_TIMEOUT = 15  # the runs' startTimeoutSeconds: short, so the deadline is tested too
OK_SCRIPT = "print('done')"


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def _run(name: str, namespace: str, stage: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "extraction.dev/v1alpha1",
        "kind": "ExtractionRun",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "image": "python:3.11-slim",
            "retry": {"limit": 0},
            "startTimeoutSeconds": START_TIMEOUT,
            "stages": [{"name": "only", "command": ["python", "-c", OK_SCRIPT], **stage}],
            **spec,
        },
    }


class Runs:
    """Creates runs and namespaces, reads them back, and removes them after the test."""

    def __init__(self, kube: Kubectl) -> None:
        self.kube = kube
        self.created: list[tuple[str, str]] = []
        self.namespaces: list[str] = []
        self.cluster_objects: list[tuple[str, str]] = []

    def namespace(self, prefix: str) -> str:
        namespace = _name(prefix)
        self.kube.run("create", "namespace", namespace)
        self.namespaces.append(namespace)
        # ServiceAccount admission refuses pods until the controller made `default`.
        wait_for(
            "the namespace's default ServiceAccount",
            lambda: (
                self.kube.run("get", "sa", "default", "-n", namespace, check=False).returncode == 0
            ),
            30,
        )
        return namespace

    def create(self, body: dict[str, Any]) -> float:
        self.kube.apply(body)
        self.created.append((body["metadata"]["namespace"], body["metadata"]["name"]))
        return time.monotonic()

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        return self.kube.json("get", "xrun", name, "-n", namespace)

    def node(self, namespace: str, name: str) -> dict[str, Any]:
        node: dict[str, Any] = self.get(namespace, name).get("status", {}).get("nodes", {})
        return node.get("only", {})

    def cannot_start_events(self, namespace: str, name: str) -> list[str]:
        doc = self.kube.json(
            "get",
            "events",
            "-n",
            namespace,
            f"--field-selector=involvedObject.name={name},reason=StageCannotStart",
        )
        return [item["message"] for item in doc["items"]]

    def job_gone(self, namespace: str, job: str) -> bool:
        done = self.kube.run("get", "job", job, "-n", namespace, "-o", "json", check=False)
        return done.returncode != 0 or '"deletionTimestamp"' in done.stdout

    def cleanup(self) -> None:
        for namespace, name in self.created:
            self.kube.run("delete", "xrun", name, "-n", namespace, "--wait=false", check=False)
        for kind, name in self.cluster_objects:
            self.kube.run("delete", kind, name, "--wait=false", check=False)
        for namespace in self.namespaces:
            self.kube.run("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture
def runs(kube: Kubectl, installed_operator: InstalledOperator) -> Iterator[Runs]:
    runs = Runs(kube)
    try:
        yield runs
    finally:
        runs.cleanup()


def _reported(
    runs: Runs, namespace: str, name: str, created: float, reason: str
) -> tuple[dict[str, Any], float]:
    """Wait for the node to show `reason`; return the node and the seconds it took."""
    seen: list[dict[str, Any]] = [{}]

    def shows() -> dict[str, Any] | None:
        seen[0] = runs.node(namespace, name)
        return seen[0] if seen[0].get("reason") == reason else None

    try:
        node = wait_for(f"the node of {name} to show {reason}", shows, REPORT_WITHIN + 20, 0.2)
    except AssertionError as error:
        raise AssertionError(f"{error}; the node shows {seen[0]}") from None
    elapsed = time.monotonic() - created
    print(f"\n{name}: {reason} on the node after {elapsed:.1f} s: {node['message']}")
    return node, elapsed


def _assert_reported_then_timed_out(
    runs: Runs,
    namespace: str,
    name: str,
    created: float,
    reason: str,
    says: Callable[[str], bool],
) -> None:
    node, elapsed = _reported(runs, namespace, name, created, reason)
    assert elapsed <= REPORT_WITHIN, f"{reason} took {elapsed:.1f} s to reach the node"
    assert node["phase"] == "Pending"  # launched, not started: as its pod
    assert node["startProblems"][0] == reason
    assert says(node["message"]), node["message"]
    run = runs.get(namespace, name)
    assert run["status"]["phase"] == "Running"
    assert f"only not started ({reason}): " in run["status"]["message"]
    assert says(run["status"]["message"]), run["status"]["message"]
    job = node["jobName"]

    # The start deadline ends the attempt: the start-failure reason, the cause kept in the
    # message, the Job deleted, and (retry limit 0) the run failed.
    ended = wait_for(
        f"the start deadline of {name}",
        lambda: (n := runs.node(namespace, name)).get("phase") == "Failed" and n,
        START_TIMEOUT + 20,
        every=0.5,
    )
    took = time.monotonic() - created
    print(f"{name}: {ended['reason']} after {took:.1f} s: {ended['message']}")
    assert ended["reason"] == "StartDeadlineExceeded"
    assert ended["message"].startswith(
        f"the pod did not start within startTimeoutSeconds ({START_TIMEOUT}s): {reason}: "
    )
    assert says(ended["message"]), ended["message"]
    assert took <= START_TIMEOUT + 10
    wait_for(f"job {job} to be deleted", lambda: runs.job_gone(namespace, job), 30)
    run = runs.get(namespace, name)
    assert run["status"]["phase"] == "Failed"
    assert "StartDeadlineExceeded" in run["status"]["message"]
    # One Event for the cause, however many passes saw it.
    events = runs.cannot_start_events(namespace, name)
    assert len(events) == 1, events
    assert f"only attempt 1 cannot start ({reason})" in events[0]


# ------------------------------------------------------------ the Job controller cannot create


@pytest.mark.timeout(180)
def test_a_missing_service_account(runs: Runs) -> None:
    account = _name("nope")
    name = _name("sf-sa")
    created = runs.create(_run(name, "default", {}, serviceAccountName=account))
    _assert_reported_then_timed_out(
        runs,
        "default",
        name,
        created,
        "FailedCreate",
        lambda text: f'serviceaccount "{account}" not found' in text,
    )


@pytest.mark.timeout(180)
def test_an_exhausted_resource_quota(runs: Runs, kube: Kubectl) -> None:
    namespace = runs.namespace("sf-quota")
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "no-pods", "namespace": namespace},
            "spec": {"hard": {"pods": "0"}},
        }
    )
    name = _name("sf-quota")
    created = runs.create(_run(name, namespace, {}))
    _assert_reported_then_timed_out(
        runs,
        namespace,
        name,
        created,
        "FailedCreate",
        lambda text: "exceeded quota: no-pods" in text,
    )


@pytest.mark.timeout(180)
def test_a_limit_range_the_stage_does_not_fit(runs: Runs, kube: Kubectl) -> None:
    namespace = runs.namespace("sf-limits")
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "LimitRange",
            "metadata": {"name": "small", "namespace": namespace},
            "spec": {"limits": [{"type": "Container", "max": {"cpu": "100m"}}]},
        }
    )
    name = _name("sf-limits")
    created = runs.create(_run(name, namespace, {"resources": {"requests": {"cpu": "1"}}}))
    _assert_reported_then_timed_out(
        runs, namespace, name, created, "FailedCreate", lambda text: "cpu" in text
    )


@pytest.mark.timeout(180)
def test_an_admission_policy_that_denies_the_pod(runs: Runs, kube: Kubectl) -> None:
    namespace = runs.namespace("sf-denied")
    policy = _name("sf-no-stage-pods")
    kube.apply(
        [
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingAdmissionPolicy",
                "metadata": {"name": policy},
                "spec": {
                    "failurePolicy": "Fail",
                    "matchConstraints": {
                        "resourceRules": [
                            {
                                "apiGroups": [""],
                                "apiVersions": ["v1"],
                                "operations": ["CREATE"],
                                "resources": ["pods"],
                            }
                        ]
                    },
                    "validations": [
                        {
                            "expression": "false",
                            "message": "stage pods are not allowed in this namespace",
                        }
                    ],
                },
            },
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingAdmissionPolicyBinding",
                "metadata": {"name": policy},
                "spec": {
                    "policyName": policy,
                    "validationActions": ["Deny"],
                    "matchResources": {
                        "namespaceSelector": {
                            "matchLabels": {"kubernetes.io/metadata.name": namespace}
                        }
                    },
                },
            },
        ]
    )
    runs.cluster_objects += [
        ("validatingadmissionpolicybinding", policy),
        ("validatingadmissionpolicy", policy),
    ]
    time.sleep(2)  # the API server loads a new policy asynchronously
    name = _name("sf-denied")
    created = runs.create(_run(name, namespace, {}))
    _assert_reported_then_timed_out(
        runs,
        namespace,
        name,
        created,
        "FailedCreate",
        lambda text: "stage pods are not allowed in this namespace" in text,
    )


# ------------------------------------------------------------------- the scheduler cannot place


@pytest.mark.timeout(180)
def test_a_missing_workspace_claim(runs: Runs) -> None:
    claim = _name("missing")
    name = _name("sf-claim")
    created = runs.create(
        _run(name, "default", {}, workspace={"persistentVolumeClaim": {"claimName": claim}})
    )
    _assert_reported_then_timed_out(
        runs,
        "default",
        name,
        created,
        "Unschedulable",
        lambda text: f'persistentvolumeclaim "{claim}" not found' in text,
    )


# ------------------------------------------------------------------- the node cannot start it


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    ("what", "spec", "text"),
    [
        (
            "configmap-envfrom",
            {"envFrom": [{"configMapRef": {"name": "sf-missing-settings"}}]},
            'configmap "sf-missing-settings" not found',
        ),
        (
            "secret-env",
            {
                "env": [
                    {
                        "name": "LLM_KEY",
                        "valueFrom": {"secretKeyRef": {"name": "sf-missing-llm", "key": "key"}},
                    }
                ]
            },
            'secret "sf-missing-llm" not found',
        ),
    ],
)
def test_a_missing_config_map_or_secret(
    runs: Runs, what: str, spec: dict[str, Any], text: str
) -> None:
    name = _name(f"sf-{what}")
    created = runs.create(_run(name, "default", {}, **spec))
    _assert_reported_then_timed_out(
        runs,
        "default",
        name,
        created,
        "CreateContainerConfigError",
        lambda message: text in message,
    )


@pytest.mark.timeout(180)
def test_an_image_reference_that_cannot_be_parsed(runs: Runs) -> None:
    """A kubelet refuses it before pulling (`InvalidImageName`, waiting for ever); the process
    node checks references with the same grammar, so the stage never runs."""
    name = _name("sf-image")
    created = runs.create(_run(name, "default", {"image": "Extraction Stage:1"}))
    _assert_reported_then_timed_out(
        runs,
        "default",
        name,
        created,
        "InvalidImageName",
        lambda text: "Extraction Stage:1" in text,
    )


@pytest.mark.timeout(120)
def test_a_command_that_cannot_be_executed_fails_at_once_and_uses_a_retry(runs: Runs) -> None:
    """restartPolicy Never: the runtime's exec failure ends the pod at once (no deadline to
    wait for); the attempt is a `StartError` failure and counts against the retry limit."""
    name = _name("sf-exec")
    stage = {"command": ["/nonexistent/extract"], "retry": {"limit": 1}}
    created = runs.create(
        _run(name, "default", stage, retry={"limit": 0, "backoff": {"initialSeconds": 1}})
    )
    first = wait_for(
        f"the first attempt of {name} to end",
        lambda: (n := runs.node("default", name)).get("finishedAt") and n,
        REPORT_WITHIN + 20,
        every=0.2,
    )
    elapsed = time.monotonic() - created
    print(f"\n{name}: {first['reason']} on the node after {elapsed:.1f} s: {first['message']}")
    assert elapsed <= REPORT_WITHIN
    assert (first["reason"], first["exitCode"]) == ("StartError", 128), first
    assert first["message"].startswith("the container could not start: ")
    assert "/nonexistent/extract" in first["message"]
    ended = wait_for(
        "the retry to fail too",
        lambda: (n := runs.node("default", name)).get("phase") == "Failed" and n,
        60,
    )
    assert (ended["reason"], ended["attempts"], ended["failures"]) == ("StartError", 2, 2)
    run = runs.get("default", name)
    assert run["status"]["phase"] == "Failed"
    assert "StartError" in run["status"]["message"]


# ------------------------------------------------------------------------ fixed in time


@pytest.mark.timeout(240)
def test_a_service_account_created_in_time_lets_the_attempt_carry_on(
    runs: Runs, kube: Kubectl
) -> None:
    account = _name("late-sa")
    name = _name("sf-fixed")
    created = runs.create(
        _run(name, "default", {}, serviceAccountName=account, startTimeoutSeconds=150)
    )
    node, elapsed = _reported(runs, "default", name, created, "FailedCreate")
    assert elapsed <= REPORT_WITHIN
    assert node["phase"] == "Pending"
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": account, "namespace": "default"},
        }
    )
    fixed = time.monotonic()
    # The Job controller retries its create with a backoff (up to a minute): no re-drive needed.
    done = wait_for(
        f"{name} to succeed",
        lambda: (n := runs.node("default", name)).get("phase") == "Succeeded" and n,
        120,
    )
    print(f"{name}: Succeeded {time.monotonic() - fixed:.1f} s after the ServiceAccount exists")
    assert done["attempts"] == 1
    run = runs.get("default", name)
    assert run["status"]["phase"] == "Succeeded"
    events = runs.cannot_start_events("default", name)
    assert len(events) == 1, events
    kube.run("delete", "sa", account, "-n", "default", check=False)


@pytest.mark.timeout(240)
def test_a_claim_created_in_time_lets_the_attempt_carry_on(runs: Runs, kube: Kubectl) -> None:
    claim = _name("late-claim")
    name = _name("sf-claim-fixed")
    created = runs.create(
        _run(
            name,
            "default",
            {},
            startTimeoutSeconds=150,
            workspace={"persistentVolumeClaim": {"claimName": claim}},
        )
    )
    _, elapsed = _reported(runs, "default", name, created, "Unschedulable")
    assert elapsed <= REPORT_WITHIN
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": claim, "namespace": "default"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "10Mi"}},
            },
        }
    )
    fixed = time.monotonic()
    done = wait_for(
        f"{name} to succeed",
        lambda: (n := runs.node("default", name)).get("phase") == "Succeeded" and n,
        120,
    )
    print(f"{name}: Succeeded {time.monotonic() - fixed:.1f} s after the claim exists")
    assert done["attempts"] == 1
    kube.run("delete", "xrun", name, "-n", "default", "--wait=true", check=False, timeout=60)
    kube.run("delete", "pvc", claim, "-n", "default", "--wait=false", check=False)
