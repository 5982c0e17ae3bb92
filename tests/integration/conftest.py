"""Fixtures for integration tests: a local cluster per test and the operator as a process."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from harness import Kube, OperatorProcess

from extraction_operator.localcluster.cluster import LocalCluster

pytestmark = pytest.mark.integration


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Any]:
    with LocalCluster.threaded(tmp_path / "cluster") as local:
        local.apply_crds()
        yield local


@pytest.fixture
def kube(cluster: Any) -> Kube:
    return Kube(cluster.url)


@pytest.fixture
def operator(cluster: Any, tmp_path: Path) -> Iterator[OperatorProcess]:
    process = OperatorProcess(str(cluster.kubeconfig), tmp_path).start()
    yield process
    process.stop()
    # Shown by pytest only when the test failed: the operator's side of the story.
    print("---- operator log (tail) ----")
    print(process.logs()[-6000:])


@pytest.fixture
def stage_log(tmp_path: Path) -> Path:
    return tmp_path / "stages.jsonl"
