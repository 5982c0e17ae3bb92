"""Fixtures for fault-injection tests: a local cluster, and operator processes to kill.

The toolkit (operator process, the example run, the audit of a finished run) lives in
`benchmarks/chaos.py`, so the chaos benchmark and these tests check exactly the same invariants.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(Path(__file__).parent))

import chaos  # noqa: E402  (found through the sys.path entry above)
from extraction_operator.localcluster.cluster import LocalCluster  # noqa: E402

pytestmark = pytest.mark.integration


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Any]:
    """A local cluster with the ExtractionRun CRD and the example pipeline's workspace claim."""
    with LocalCluster.threaded(tmp_path / "cluster") as local:
        local.apply_crds()
        chaos.apply_example_claim(local)
        yield local


LaunchOperator = Callable[..., chaos.Operator]


@pytest.fixture
def launch(cluster: Any, tmp_path: Path) -> Iterator[LaunchOperator]:
    """`launch(label=..., env=..., args=..., kubeconfig=...)`: a started operator process.

    Every process launched is stopped at teardown; their logs are printed (pytest shows them
    only when the test failed)."""
    launched: list[chaos.Operator] = []

    def start(
        *,
        label: str = "operator",
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
        kubeconfig: str | Path | None = None,
        resync_seconds: float = 1.0,
    ) -> chaos.Operator:
        operator = chaos.Operator(
            kubeconfig or cluster.kubeconfig,
            tmp_path / "logs",
            resync_seconds=resync_seconds,
            env=env,
            args=args or [],
            label=label,
        )
        launched.append(operator)
        return operator.start()

    yield start
    for operator in launched:
        operator.stop(timeout=15)
    for operator in launched:
        print(f"---- {operator.label} log (tail) ----")
        print(operator.logs()[-5000:])
