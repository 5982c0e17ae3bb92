"""Fixtures for the stage SDK tests: a breaker over an in-memory run, installed process-wide."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from extraction_operator.api.models import CircuitBreakerConfig
from extraction_operator.breaker.configs import ConfigResolver
from extraction_operator.breaker.memory import InMemoryRunApi
from extraction_operator.breaker.runtime import SharedBreaker
from extraction_operator.breaker.store import BreakerStore
from extraction_operator.stage import set_breaker

STAGE_CONFIG = CircuitBreakerConfig(
    failure_threshold=2, recovery_timeout_seconds=30, success_threshold=1, probe_timeout_seconds=5
)


@pytest.fixture
def run_api() -> InMemoryRunApi:
    return InMemoryRunApi(description="test/run")


@pytest.fixture
def breaker(run_api: InMemoryRunApi) -> Iterator[SharedBreaker]:
    shared = SharedBreaker(
        BreakerStore(run_api, sleep=lambda _: None),
        ConfigResolver({"llm": STAGE_CONFIG, "embeddings": STAGE_CONFIG}),
        holder="test",
    )
    set_breaker(shared)
    yield shared
    set_breaker(None)


@pytest.fixture
def termination_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "termination-log"
    monkeypatch.setenv("TERMINATION_MESSAGE_PATH", str(path))
    return path
