"""Fixtures of the monitoring tests: the real promtool, built from the Prometheus Go module."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def promtool() -> Path:
    """promtool (github.com/prometheus/prometheus/cmd/promtool), built on first use and cached
    like the control plane's binaries."""
    from extraction_operator.controlplane.tools import tool_path

    path = tool_path("promtool")
    assert path.exists(), path
    return path
