"""The stage-isolation tier: the operator installed from `manifests/` in the real cluster, and a
namespace of ExtractionRuns whose stage pods try everything a compromised stage could try."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from isolation_kit import Tenant

from cluster_kit import InstalledOperator, Kubectl


@pytest.fixture(scope="module")
def tenant(
    kube: Kubectl, installed_operator: InstalledOperator, real_cluster: Any
) -> Iterator[Tenant]:
    """A fresh namespace with the ServiceAccounts `extraction-stage` and `other-stage`."""
    space = Tenant(kube, real_cluster.node).create()
    try:
        yield space
    finally:
        space.delete()
