"""The stage SDK: context managers, decorators, classification, CircuitOpen and exit code 75."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from extraction_operator.breaker.memory import InMemoryRunApi
from extraction_operator.breaker.runtime import SharedBreaker
from extraction_operator.stage import (
    EXIT_CIRCUIT_OPEN,
    CircuitOpen,
    circuit,
    run_stage,
    write_termination_message,
)


class HTTPError(Exception):
    def __init__(self, status_code: int) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code


def state(api: InMemoryRunApi) -> dict[str, object]:
    if api.annotation is None:
        return {}
    llm: dict[str, object] = json.loads(api.annotation)["circuits"].get("llm", {})
    return llm


def fail_with(exc: BaseException) -> None:
    with pytest.raises(type(exc)), circuit("llm"):
        raise exc


def test_sync_context_manager_counts_failures_and_opens(
    breaker: SharedBreaker, run_api: InMemoryRunApi
) -> None:
    fail_with(TimeoutError("slow"))
    assert state(run_api)["failures"] == 1
    fail_with(HTTPError(503))
    assert state(run_api)["state"] == "open"
    assert state(run_api)["lastError"] == "HTTPError: HTTP 503"
    with pytest.raises(CircuitOpen), circuit("llm"):
        pytest.fail("the body must not run while the circuit is open")


def test_client_errors_count_as_the_provider_answering(
    breaker: SharedBreaker, run_api: InMemoryRunApi
) -> None:
    fail_with(TimeoutError())
    fail_with(HTTPError(400))  # a reset, not a failure
    assert state(run_api)["failures"] == 0
    fail_with(TimeoutError())
    assert state(run_api)["state"] == "closed"


def test_healthy_calls_write_nothing(breaker: SharedBreaker, run_api: InMemoryRunApi) -> None:
    for _ in range(100):
        with circuit("llm"):
            pass
    assert run_api.writes == 0
    assert run_api.annotation is None


def test_custom_classifier(breaker: SharedBreaker, run_api: InMemoryRunApi) -> None:
    strict = circuit("llm", classifier=lambda exc: isinstance(exc, ValueError))
    with pytest.raises(ValueError), strict:
        raise ValueError("counted by the custom classifier")
    with pytest.raises(TimeoutError), strict:
        raise TimeoutError("not counted by it")
    assert state(run_api)["failures"] == 0  # the timeout counted as a success: a reset


def test_decorator_on_sync_and_async_functions(
    breaker: SharedBreaker, run_api: InMemoryRunApi
) -> None:
    @circuit("llm")
    def flaky(n: int) -> int:
        if n < 0:
            raise ConnectionError("refused")
        return n * 2

    @circuit("llm")
    async def aflaky(n: int) -> int:
        if n < 0:
            raise ConnectionError("refused")
        return n * 3

    assert flaky(2) == 4
    assert asyncio.run(aflaky(2)) == 6
    with pytest.raises(ConnectionError):
        flaky(-1)
    with pytest.raises(ConnectionError):
        asyncio.run(aflaky(-1))
    assert state(run_api)["state"] == "open"
    with pytest.raises(CircuitOpen):
        flaky(1)
    with pytest.raises(CircuitOpen):
        asyncio.run(aflaky(1))


async def test_async_context_manager_shared_by_concurrent_tasks(
    breaker: SharedBreaker, run_api: InMemoryRunApi
) -> None:
    llm = circuit("llm")

    async def call(fail: bool) -> None:
        async with llm:
            await asyncio.sleep(0.01)
            if fail:
                raise TimeoutError()

    results = await asyncio.gather(call(False), call(True), call(False), return_exceptions=True)
    assert [type(r).__name__ for r in results] == ["NoneType", "TimeoutError", "NoneType"]
    assert state(run_api)["failures"] in (0, 1)  # the successes may reset it after the failure
    assert breaker.stats.admitted == 3


def test_cancellation_records_nothing(breaker: SharedBreaker, run_api: InMemoryRunApi) -> None:
    with pytest.raises(KeyboardInterrupt), circuit("llm"):
        raise KeyboardInterrupt
    assert run_api.writes == 0


def test_nested_circuits(breaker: SharedBreaker, run_api: InMemoryRunApi) -> None:
    with pytest.raises(TimeoutError), circuit("embeddings"), circuit("llm"):
        raise TimeoutError()
    doc = json.loads(run_api.annotation or "")
    assert doc["circuits"]["llm"]["failures"] == 1
    assert doc["circuits"]["embeddings"]["failures"] == 1


def test_bookkeeping_bug_does_not_fail_the_call(
    breaker: SharedBreaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(name: str) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(breaker, "begin", broken)
    with circuit("llm"):
        value = 1
    assert value == 1


def test_run_stage_returns_75_on_circuit_open_and_writes_the_message(
    termination_log: Path,
) -> None:
    def main() -> int:
        raise CircuitOpen("llm", 1_790_000_000.0, "HTTP 503")

    assert run_stage(main) == EXIT_CIRCUIT_OPEN
    message = termination_log.read_text()
    assert "circuit 'llm' is open until 2026-" in message
    assert "HTTP 503" in message


def test_run_stage_handles_async_mains_and_task_groups(termination_log: Path) -> None:
    async def main() -> None:
        async def blocked() -> None:
            raise CircuitOpen("llm", None)

        async with asyncio.TaskGroup() as group:
            group.create_task(blocked())
            group.create_task(blocked())

    assert run_stage(main) == EXIT_CIRCUIT_OPEN

    async def fine() -> int:
        return 3

    assert run_stage(fine) == 3


def test_run_stage_lets_other_errors_through() -> None:
    def main() -> None:
        raise ValueError("real bug")

    with pytest.raises(ValueError, match="real bug"):
        run_stage(main)


def test_termination_message_is_truncated_to_4_kib(termination_log: Path) -> None:
    assert write_termination_message("é" * 5000)
    assert len(termination_log.read_bytes()) <= 4096
    termination_log.read_text(encoding="utf-8")  # still valid UTF-8


def test_termination_message_failure_is_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERMINATION_MESSAGE_PATH", "/nonexistent/dir/log")
    assert write_termination_message("x") is False


def test_uncaught_circuit_open_exits_75_after_atexit_handlers(tmp_path: Path) -> None:
    """The implicit mechanism: a plain script that lets CircuitOpen escape exits 75."""
    marker = tmp_path / "atexit-ran"
    script = textwrap.dedent(
        f"""
        import atexit
        from extraction_operator.stage import circuit, CircuitOpen
        llm = circuit("llm")
        atexit.register(lambda: open({str(marker)!r}, "w").write("yes"))
        raise CircuitOpen("llm", None, "HTTP 503")
        """
    )
    env = {
        **os.environ,
        "TERMINATION_MESSAGE_PATH": str(tmp_path / "log"),
        "EXTRACTION_BREAKER_SCOPE": "local",
    }
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == EXIT_CIRCUIT_OPEN, done.stderr
    assert "Traceback" not in done.stderr
    assert "circuit 'llm' is open" in done.stderr
    assert marker.read_text() == "yes"
    assert "HTTP 503" in (tmp_path / "log").read_text()


def test_other_uncaught_errors_keep_their_exit_code(tmp_path: Path) -> None:
    script = "from extraction_operator.stage import circuit\ncircuit('llm')\nraise ValueError('x')"
    env = {**os.environ, "EXTRACTION_BREAKER_SCOPE": "local"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "ValueError" in done.stderr
