"""The real-cluster tier's fixtures: one control plane and one process node for the session.

The control plane is the real kube-apiserver, kube-controller-manager and kube-scheduler (built
from Go modules on first use, then cached); the node is a `ProcessNode` with the identity
`system:node:process-node`, so the Node authorizer and NodeRestriction confine it exactly as a
real kubelet, and the real Job controller and scheduler do their own work. Every test gets a
namespace of its own and an admin client (our `ApiClient`, over TLS with a client certificate).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from extraction_operator.controlplane.build import build
from extraction_operator.controlplane.cluster import ControlPlane
from extraction_operator.controlplane.node import process_node
from extraction_operator.localcluster.kubeapi import NODES, ApiClient
from extraction_operator.localcluster.node import ProcessNode, node_identity
from extraction_operator.localcluster.nodetesting import delete_namespace, new_namespace

DEDICATED = "extraction.test/dedicated"


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    """Never skipped: without a control plane these tests fail (as tests/conftest.py's does)."""
    with ControlPlane(build()) as plane:
        yield plane


@pytest.fixture(scope="session")
def node(
    control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProcessNode]:
    with process_node(
        control_plane,
        tmp_path_factory.mktemp("process-node"),
        restart_backoff=(1.0, 10.0),  # the kubelet's 10 s first back-off, made test-sized
    ) as running:
        yield running


@pytest.fixture
async def extra_node(
    control_plane: ControlPlane, admin: ApiClient, tmp_path: Path
) -> AsyncIterator[Callable[..., ProcessNode]]:
    """Start more nodes for one test; each is tainted so only pods pinned to it (`nodeName`)
    run there, and stopped and deleted afterwards (by the admin: a node may not delete itself)."""
    started: list[ProcessNode] = []

    def start(name: str, **options: Any) -> ProcessNode:
        identity = control_plane.issue_identity(name, *node_identity(name))
        taint = {"key": DEDICATED, "value": name, "effect": "NoSchedule"}
        extra = ProcessNode(identity.kubeconfig, workdir=tmp_path / name, node_name=name,
                            taints=(taint,), **options)  # fmt: skip
        started.append(extra.start())
        return extra

    yield start
    for extra in started:
        await asyncio.to_thread(extra.stop)
    for name in {extra.node_name for extra in started}:
        await admin.delete(NODES.path(None, name))


@pytest.fixture
async def admin(control_plane: ControlPlane) -> AsyncIterator[ApiClient]:
    client = ApiClient.from_kubeconfig(control_plane.admin_kubeconfig)
    yield client
    await client.close()


@pytest.fixture
async def node_client(control_plane: ControlPlane, node: ProcessNode) -> AsyncIterator[ApiClient]:
    """A client with the session node's own identity (its kubeconfig)."""
    client = ApiClient.from_kubeconfig(node.agent.kubeconfig)
    yield client
    await client.close()


@pytest.fixture
async def namespace(admin: ApiClient, node: ProcessNode) -> AsyncIterator[str]:
    name = await new_namespace(admin)
    yield name
    await delete_namespace(admin, name)
