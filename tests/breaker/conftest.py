"""Fixtures shared by the breaker tests."""

from __future__ import annotations

import pytest

from extraction_operator.breaker.memory import InMemoryRunApi
from extraction_operator.breaker.testing import FlakyApi, ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def memory_api() -> InMemoryRunApi:
    return InMemoryRunApi(description="test/run")


@pytest.fixture
def flaky_api(memory_api: InMemoryRunApi) -> FlakyApi:
    return FlakyApi(memory_api)
