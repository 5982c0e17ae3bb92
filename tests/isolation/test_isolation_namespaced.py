"""The namespaced install (`manifests/namespaced`, a kustomize Component) on the real tier.

The session's operator is re-installed the documented way, watching `default` and one more
namespace, then checked with its own identity (a token bound to the operator's pod): it may create
Jobs where it serves runs and nowhere else (kube-system, a namespace it does not watch), and holds
no cluster-wide pod rights; a run in its namespace still succeeds with shared breakers, and a run
elsewhere is left alone. The base install is put back afterwards.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from isolation_kit import STAGE_ACCOUNT, pause, pod_token, request_as, sleeper, unique

from cluster_kit import MANIFESTS, InstalledOperator, Kubectl
from extraction_operator.controlplane.cluster import free_port

pytestmark = pytest.mark.timeout(600)
OPERATOR = "system:serviceaccount:extraction-system:extraction-operator"


@dataclass
class Namespaced:
    kube: Kubectl
    operator: InstalledOperator
    watched: str
    unwatched: str
    token: str


def _overlay(directory: Path, watched: str) -> Path:
    """The documented overlay (base + Component + one directory per extra namespace), plus what
    the project's tier needs: the operator as this virtualenv's process on free ports."""
    directory.mkdir(parents=True)
    (directory / "watched").mkdir()
    watch = os.path.relpath(MANIFESTS / "namespaced" / "watch", directory / "watched")
    (directory / "watched" / "kustomization.yaml").write_text(
        yaml.safe_dump({"namespace": watched, "resources": [watch]})
    )
    base = yaml.safe_load((MANIFESTS / "deployment.yaml").read_text())
    args = []
    for arg in base["spec"]["template"]["spec"]["containers"][0]["args"]:
        if arg.startswith("--metrics-port="):
            arg = f"--metrics-port={free_port()}"
        elif arg.startswith("--liveness="):
            arg = f"--liveness=http://127.0.0.1:{free_port()}/healthz"
        args.append(arg)
    args += ["--namespace=default", f"--namespace={watched}"]
    patch = [
        {
            "op": "add",
            "path": "/spec/template/spec/containers/0/command",
            "value": [str(Path(sys.executable).parent / "extraction-operator")],
        },
        {"op": "replace", "path": "/spec/template/spec/containers/0/args", "value": args},
    ]
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(MANIFESTS, directory), "watched"],
        "components": [os.path.relpath(MANIFESTS / "namespaced", directory)],
        "patches": [
            {
                "target": {"group": "apps", "version": "v1", "kind": "Deployment",
                           "name": "extraction-operator"},
                "patch": yaml.safe_dump(patch),
            }
        ],
    }  # fmt: skip
    (directory / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return directory


@pytest.fixture(scope="module")
def namespaced(
    kube: Kubectl,
    installed_operator: InstalledOperator,
    real_cluster: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Namespaced]:
    if real_cluster.node is None:
        pytest.skip("re-installs the operator as a process of this machine: own tier only")
    watched, unwatched = unique("watched"), unique("unwatched")
    for namespace in (watched, unwatched):
        kube.run("create", "namespace", namespace)
        kube.run("create", "serviceaccount", STAGE_ACCOUNT, "-n", namespace)
    overlay = _overlay(tmp_path_factory.mktemp("namespaced") / "overlay", watched)
    try:
        kube.run("apply", "-k", str(overlay), timeout=120)
        installed_operator.wait_available()
        pod = installed_operator.running_pod()
        args = kube.json("get", "pod", pod, "-n", "extraction-system")["spec"]["containers"][0]
        assert f"--namespace={watched}" in args["args"]
        token = pod_token(kube, "extraction-system", "extraction-operator", pod)
        yield Namespaced(kube, installed_operator, watched, unwatched, token)
    finally:
        InstalledOperator(kube, real_cluster.node).install(tmp_path_factory.mktemp("base"))
        for namespace in ("default", watched):
            kube.run("delete", "role,rolebinding", "extraction-operator", "-n", namespace,
                     check=False)  # fmt: skip
        for namespace in (watched, unwatched):
            kube.run("delete", "namespace", namespace, "--wait=false", check=False)


def _job(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "probe", "namespace": namespace},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "x", "command": ["true"]}],
                }
            }
        },
    }


def _create_job(ns: Namespaced, namespace: str) -> tuple[int, str]:
    """A dry-run create: authorized and admitted like a real one, stored nowhere."""
    path = f"/apis/batch/v1/namespaces/{namespace}/jobs?dryRun=All"
    return request_as(ns.kube, ns.token, "POST", path, _job(namespace))


@pytest.mark.parametrize("where", ["kube-system", "unwatched"])
def test_the_operator_may_not_create_jobs_outside_its_namespaces(
    namespaced: Namespaced, where: str
) -> None:
    namespace = namespaced.unwatched if where == "unwatched" else where
    status, message = _create_job(namespaced, namespace)
    assert status == 403, message
    assert f'User "{OPERATOR}" cannot create resource "jobs"' in message


def test_the_operator_may_create_jobs_where_it_serves_runs(namespaced: Namespaced) -> None:
    status, message = _create_job(namespaced, namespaced.watched)
    assert status == 201, message


@pytest.mark.parametrize("verb", ["list pods", "list jobs", "watch extractionruns"])
def test_the_operator_holds_no_cluster_wide_rights_on_pods_jobs_or_runs(
    namespaced: Namespaced, verb: str
) -> None:
    path = {
        "list pods": "/api/v1/pods",
        "list jobs": "/apis/batch/v1/jobs",
        "watch extractionruns": "/apis/extraction.dev/v1alpha1/extractionruns?watch=true",
    }[verb]
    status, message = request_as(namespaced.kube, namespaced.token, "GET", path)
    assert status == 403, message
    assert "at the cluster scope" in message


def test_a_run_in_a_watched_namespace_succeeds_with_shared_breakers(
    namespaced: Namespaced,
) -> None:
    kube, namespace = namespaced.kube, namespaced.watched
    run = {
        "apiVersion": "extraction.dev/v1alpha1",
        "kind": "ExtractionRun",
        "metadata": {"name": "served", "namespace": namespace},
        "spec": {
            "image": "python:3.11-slim",
            "serviceAccountName": STAGE_ACCOUNT,
            "circuitBreakers": {"llm": {}},
            "stages": [
                {"name": "a", "command": [sys.executable, "-c", "print('ok')"],
                 "circuits": ["llm"]}
            ],
        },
    }  # fmt: skip
    kube.apply(run)
    kube.run("wait", "xrun/served", "-n", namespace, "--for=condition=Ready", "--timeout=180s",
             timeout=190)  # fmt: skip
    status = kube.json("get", "xrun", "served", "-n", namespace)["status"]
    assert status["phase"] == "Succeeded"
    shared = next(c for c in status["conditions"] if c["type"] == "CircuitBreakersShared")
    assert shared["status"] == "True", shared
    role = kube.json("get", "role", "extraction-stage-served", "-n", namespace)
    assert role["rules"][0]["resourceNames"] == ["served"]


def test_a_run_in_another_namespace_is_left_alone(namespaced: Namespaced) -> None:
    kube, namespace = namespaced.kube, namespaced.unwatched
    manifest = {
        "apiVersion": "extraction.dev/v1alpha1",
        "kind": "ExtractionRun",
        "metadata": {"name": "ignored", "namespace": namespace},
        "spec": {"image": "python:3.11-slim", "stages": [sleeper()],
                 "circuitBreakers": {"llm": {}}},
    }  # fmt: skip
    kube.apply(manifest)
    pause(10)
    # Only the CRD's default for a status nobody wrote (docs/gitops.md): no operator touched it.
    status = kube.json("get", "xrun", "ignored", "-n", namespace).get("status")
    assert status in (None, {"observedGeneration": 0}), status
    jobs = kube.run("get", "jobs", "-n", namespace, "-o", "name").stdout
    assert jobs.strip() == ""
    assert "Traceback" not in namespaced.operator.logs()
