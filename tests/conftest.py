"""The real-cluster tier's session fixture, shared by every test directory that needs it.

`real_cluster` is a real Kubernetes control plane (kube-apiserver, kube-controller-manager,
kube-scheduler and etcd, built from Go modules by `extraction_operator.controlplane`) plus the
project's process kubelet as its only node, started once per test session on loopback. With
`EXTRACTION_TEST_KUBECONFIG` naming a kubeconfig, the same tests use that cluster instead (kind,
or anything else: the kubeconfig must be cluster-admin, and stage pods then run wherever that
cluster runs them).

It never skips: a real tier that cannot start fails every test that asked for it, so CI cannot
go green without it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from cluster_kit import InstalledOperator, Kubectl, wait_for
from extraction_operator.controlplane.build import build
from extraction_operator.controlplane.cluster import ControlPlane
from extraction_operator.controlplane.node import process_node
from extraction_operator.localcluster.node import ProcessNode


@dataclass
class RealCluster:
    """What tests may rely on: an admin kubeconfig; the parts only a tier of our own has."""

    admin_kubeconfig: Path
    plane: ControlPlane | None = None
    node: ProcessNode | None = None

    @property
    def own(self) -> bool:
        """True for the cluster this session started (fault injection and component logs)."""
        return self.plane is not None


@pytest.fixture(scope="session")
def real_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealCluster]:
    external = os.environ.get("EXTRACTION_TEST_KUBECONFIG")
    if external:
        yield RealCluster(Path(external))
        return
    state = tmp_path_factory.mktemp("controlplane")
    with (
        ControlPlane(build(), state_dir=state, keep_state=True) as plane,
        process_node(
            plane,
            tmp_path_factory.mktemp("process-node"),
            restart_backoff=(1.0, 10.0),  # the kubelet's 10 s first back-off, made test-sized
        ) as node,
    ):
        yield RealCluster(plane.admin_kubeconfig, plane, node)


@pytest.fixture(scope="session")
def kube(real_cluster: RealCluster) -> Kubectl:
    """kubectl with the real tier's admin kubeconfig."""
    return Kubectl(real_cluster.admin_kubeconfig)


# The session's installed operator, once a test asked for it (see `installed_operator_paused`).
_INSTALLED: list[InstalledOperator] = []


@pytest.fixture(scope="session")
def installed_operator(
    real_cluster: RealCluster, kube: Kubectl, tmp_path_factory: pytest.TempPathFactory
) -> InstalledOperator:
    """The operator installed in the real tier from `manifests/`, running as its Deployment."""
    overlay = tmp_path_factory.mktemp("operator-overlay")
    operator = InstalledOperator(kube, real_cluster.node).install(overlay)
    _INSTALLED.append(operator)
    return operator


@pytest.fixture
def installed_operator_paused() -> Iterator[None]:
    """For a test that runs an operator of its own on the real tier: the installed one watches
    every namespace, and two operators acting on one run make each other's timing meaningless.
    If this session installed it, it is scaled to zero for the test and back afterwards."""
    if not _INSTALLED:
        yield
        return
    operator = _INSTALLED[0]
    operator.scale(0)
    wait_for("the installed operator to stop", lambda: not operator.pods(), timeout=120)
    try:
        yield
    finally:
        operator.scale(1)
        operator.wait_available()
