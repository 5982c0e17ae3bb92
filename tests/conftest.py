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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from extraction_operator.controlplane.build import build
from extraction_operator.controlplane.cluster import ControlPlane


@dataclass
class RealCluster:
    """What tests may rely on: an admin kubeconfig; the parts only a tier of our own has."""

    admin_kubeconfig: Path
    plane: ControlPlane | None = None
    node: object | None = None

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
    with ControlPlane(build(), state_dir=state, keep_state=True) as plane:
        yield RealCluster(plane.admin_kubeconfig, plane)
