"""The real control plane enforces what production clusters enforce, and fails loudly when it
cannot start (the real tier is never skipped)."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from cluster_kit import Kubectl
from extraction_operator.controlplane.build import COMMANDS, Binaries
from extraction_operator.controlplane.cluster import ControlPlane, StartError


def _api(kubeconfig: Path) -> client.ApiClient:
    return config.new_client_from_config(str(kubeconfig))


def _plane(real_cluster: Any) -> ControlPlane:
    if real_cluster.plane is None:
        pytest.skip("needs the project's own control plane (issues client certificates)")
    plane: ControlPlane = real_cluster.plane
    return plane


def test_the_server_is_the_pinned_kubernetes(real_cluster: Any) -> None:
    info = client.VersionApi(_api(real_cluster.admin_kubeconfig)).get_code()
    assert info.major == "1"
    plane = real_cluster.plane
    if plane is not None:
        assert info.git_version == plane.binaries.version


def test_rbac_refuses_an_identity_with_no_bindings(real_cluster: Any) -> None:
    nobody = _plane(real_cluster).issue_identity("nobody", "extraction-test-nobody")
    with pytest.raises(ApiException) as refused:
        client.CoreV1Api(_api(nobody.kubeconfig)).list_namespaced_pod("default")
    assert refused.value.status == 403
    assert "extraction-test-nobody" in refused.value.body


def test_node_restriction_keeps_a_node_to_its_own_node_object(real_cluster: Any) -> None:
    plane = _plane(real_cluster)
    other = plane.issue_identity("rogue-node", "system:node:rogue", "system:nodes")
    core = client.CoreV1Api(_api(other.kubeconfig))
    victim = client.V1Node(metadata=client.V1ObjectMeta(name="someone-else"))
    with pytest.raises(ApiException) as refused:
        core.create_node(victim)
    assert refused.value.status == 403
    assert "rogue" in refused.value.body
    with pytest.raises(ApiException) as secret:
        core.read_namespaced_secret("anything", "kube-system")
    assert secret.value.status == 403


def _broken_binaries(tmp_path: Path, real: Binaries) -> Binaries:
    """The real binaries, except an etcd that dies at once with a message."""
    directory = tmp_path / "bin"
    directory.mkdir()
    for name in COMMANDS:
        (directory / name).symlink_to(real.path(name))
    (directory / "etcd").unlink()
    fake = directory / "etcd"
    fake.write_text("#!/bin/sh\necho 'etcd: cannot open the data directory' >&2\nexit 3\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    return Binaries(directory, real.version)


def test_a_component_that_cannot_start_fails_with_its_log(
    real_cluster: Any, tmp_path: Path
) -> None:
    real = _plane(real_cluster).binaries
    plane = ControlPlane(_broken_binaries(tmp_path, real), state_dir=tmp_path / "state")
    with pytest.raises(StartError, match="etcd exited during start") as failed:
        plane.__enter__()
    assert "cannot open the data directory" in str(failed.value)
    assert not plane.components


def test_the_openapi_v2_document_decodes(real_cluster: Any) -> None:
    """A Go 1.27 build without GOEXPERIMENT=nojsonv2 serves an OpenAPI v2 document kubectl
    cannot decode; the build turns the old JSON library back on, and this keeps it honest."""
    api = _api(real_cluster.admin_kubeconfig)
    response = api.call_api("GET", api.configuration.host + "/openapi/v2",
                            header_params={"Accept": "application/json"})  # fmt: skip
    response.read()
    document = json.loads(response.data)
    assert document["swagger"] == "2.0"
    assert "io.k8s.api.batch.v1.Job" in document["definitions"]


def test_kubectl_apply_computes_a_patch_from_the_servers_openapi(
    real_cluster: Any, tmp_path: Path
) -> None:
    """The second `kubectl apply` of an object computes a strategic merge patch from the
    server's OpenAPI models: what failed against a server built with the new JSON library."""
    kubectl = Kubectl(real_cluster.admin_kubeconfig)
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "openapi-check", "namespace": "default"},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "openapi-check"}},
            "template": {
                "metadata": {"labels": {"app": "openapi-check"}},
                "spec": {"containers": [{"name": "c", "image": "x", "args": ["one"]}]},
            },
        },
    }
    try:
        kubectl.apply(deployment)
        deployment["spec"]["template"]["spec"]["containers"][0]["args"] = ["two"]
        kubectl.apply(deployment)
        applied = kubectl.json("get", "deployment", "openapi-check", "-n", "default")
        assert applied["spec"]["template"]["spec"]["containers"][0]["args"] == ["two"]
    finally:
        kubectl.run("delete", "deployment", "openapi-check", "-n", "default", check=False)
