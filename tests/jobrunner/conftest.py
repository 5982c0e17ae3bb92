"""Fixtures of the job runner tests: a LocalCluster per test (helpers: localcluster.testing)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from extraction_operator.localcluster.cluster import LocalCluster


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[LocalCluster]:
    async with LocalCluster(tmp_path / "cluster", grace_seconds_cap=2.0) as running:
        yield running
