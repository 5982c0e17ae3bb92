"""The node's presence (Node, Ready, Lease) and its identity's limits under the Node authorizer."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from extraction_operator.controlplane.cluster import ControlPlane
from extraction_operator.controlplane.pki import CertificateAuthority
from extraction_operator.localcluster.kubeapi import (
    LEASES,
    NODES,
    PODS,
    PVS,
    SECRETS,
    ApiClient,
    ApiError,
)
from extraction_operator.localcluster.kubeconfig import load_kubeconfig
from extraction_operator.localcluster.node import ProcessNode
from extraction_operator.localcluster.nodestatus import LEASE_NAMESPACE
from extraction_operator.localcluster.nodetesting import (
    phase,
    pod_manifest,
    wait_finished,
    wait_pod,
)
from extraction_operator.localcluster.testing import alive, wait_for

pytestmark = pytest.mark.timeout(90)
JSON = dict[str, Any]


def ready(node: JSON) -> JSON:
    return next(c for c in node["status"]["conditions"] if c["type"] == "Ready")


async def test_node_is_ready_and_renews_its_lease(
    admin: ApiClient, node: ProcessNode, control_plane: ControlPlane
) -> None:
    stored = await admin.get(NODES.path(None, node.node_name))
    status = stored["status"]
    assert ready(stored)["status"] == "True"
    assert status["capacity"]["cpu"] == "2"
    assert status["capacity"]["pods"] == "110"
    assert status["allocatable"] == status["capacity"]
    assert {"type": "InternalIP", "address": "127.0.0.1"} in status["addresses"]
    assert status["nodeInfo"]["kubeletVersion"] == control_plane.binaries.version
    assert status["nodeInfo"]["containerRuntimeVersion"].startswith("process://")
    assert stored["spec"].get("taints", []) == []  # not-ready: lifted before start() returned
    lease = await admin.get(LEASES.path(LEASE_NAMESPACE, node.node_name))
    assert lease["spec"]["holderIdentity"] == node.node_name
    assert lease["metadata"]["ownerReferences"][0]["uid"] == stored["metadata"]["uid"]

    async def renewed() -> bool:
        current = await admin.get(LEASES.path(LEASE_NAMESPACE, node.node_name))
        return bool(current["spec"]["renewTime"] > lease["spec"]["renewTime"])

    async def heartbeat() -> JSON | None:
        current = await admin.get(NODES.path(None, node.node_name))
        later = ready(current)["lastHeartbeatTime"] > ready(stored)["lastHeartbeatTime"]
        return current if later else None

    await wait_for(renewed, within=25, what="the lease to be renewed")
    again = await wait_for(heartbeat, within=25, what="a Ready heartbeat")
    assert ready(again)["status"] == "True"
    assert ready(again)["lastTransitionTime"] == ready(stored)["lastTransitionTime"]


async def test_paused_node_stops_renewing_and_resumes(
    admin: ApiClient, extra_node: Callable[..., ProcessNode]
) -> None:
    outage = extra_node("outage-node", heartbeat_seconds=0.5)
    path = LEASES.path(LEASE_NAMESPACE, "outage-node")

    async def renew_time() -> str:
        return str((await admin.get(path))["spec"]["renewTime"])

    first = await renew_time()
    await wait_for(lambda: _changed(renew_time, first), within=10, what="a renewal")
    outage.pause()
    frozen = await renew_time()
    await wait_for(lambda: _same_for(renew_time, frozen, 2.0), within=10, what="no renewals")
    outage.resume()
    await wait_for(lambda: _changed(renew_time, frozen), within=10, what="renewals again")


async def _changed(read: Callable[[], Any], before: str) -> bool:
    return bool(await read() != before)


async def _same_for(read: Callable[[], Any], value: str, seconds: float) -> bool:
    await asyncio.sleep(seconds)
    return bool(await read() == value)


async def _status(call: Any) -> int:
    try:
        await call
    except ApiError as exc:
        return exc.status
    return 200


async def test_node_identity_is_confined_like_a_kubelets(
    admin: ApiClient, node_client: ApiClient, namespace: str, node: ProcessNode
) -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "unreferenced"},
              "stringData": {"k": "v"}}  # fmt: skip
    await admin.create(SECRETS.path(namespace), secret)
    await admin.create(SECRETS.path(namespace), {**secret, "metadata": {"name": "referenced"}})
    env = [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "referenced", "key": "k"}}}]
    user = pod_manifest("user", ["true"], container={"env": env})
    await admin.create(PODS.path(namespace), user)
    assert phase(await wait_finished(admin, namespace, "user")) == "Succeeded"

    assert await _status(node_client.get(SECRETS.path(namespace, "referenced"))) == 200
    assert await _status(node_client.get(SECRETS.path(namespace, "unreferenced"))) == 403
    assert await _status(node_client.list(PODS.path())) == 403  # only with its field selector
    selector = f"spec.nodeName={node.node_name}"
    assert await _status(node_client.list(PODS.path(), fieldSelector=selector)) == 200
    assert await _status(node_client.get(NODES.path(None, node.node_name))) == 200
    other = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "someone-else"}}
    assert await _status(node_client.create(NODES.path(), other)) == 403
    label = {"metadata": {"labels": {"node-role.kubernetes.io/control-plane": ""}}}
    assert await _status(node_client.patch(NODES.path(None, node.node_name), label)) == 403
    volume = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "nope"},
              "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                       "hostPath": {"path": "/tmp/nope"}}}  # fmt: skip
    assert await _status(node_client.create(PVS.path(), volume)) == 403


async def test_client_certificate_is_what_authenticates_the_node(
    node: ProcessNode, tmp_path: Path
) -> None:
    config = load_kubeconfig(node.agent.kubeconfig)
    anonymous = dataclasses.replace(config, cert_file=None, key_file=None)
    stranger = CertificateAuthority(tmp_path / "other-ca")  # not the cluster's CA
    untrusting = dataclasses.replace(config, ca_file=stranger.pair.cert)
    path = NODES.path(None, node.node_name)
    for settings, expected in ((config, 200), (anonymous, 403), (untrusting, 0)):
        client = ApiClient.from_config(settings)
        try:
            assert await _status(client.get(path)) == expected  # 0: the TLS handshake failed
        finally:
            await client.close()


async def test_restarted_node_takes_its_node_back_and_fails_the_pods_it_lost(
    admin: ApiClient, namespace: str, extra_node: Callable[..., ProcessNode]
) -> None:
    first = extra_node("restart-node")
    manifest = pod_manifest("orphan", ["sleep", "600"], nodeName="restart-node")
    await admin.create(PODS.path(namespace), manifest)
    await wait_pod(admin, namespace, "orphan", lambda p: phase(p) == "Running")
    pid = first.pid_of(namespace, "orphan")
    before = await admin.get(NODES.path(None, "restart-node"))
    await asyncio.to_thread(first.stop)  # its processes die with it
    assert pid is not None
    assert not alive(pid)
    extra_node("restart-node")  # same name, same Node object
    pod = await wait_finished(admin, namespace, "orphan")
    assert (phase(pod), pod["status"]["reason"]) == ("Failed", "NodeLost")
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (137, "ContainerStatusUnknown")
    after = await admin.get(NODES.path(None, "restart-node"))
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert ready(after)["status"] == "True"
