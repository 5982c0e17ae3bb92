"""`extraction-operator guard`: exit-code pass-through, 75 when open, failure codes, signals."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from extraction_operator.breaker.memory import InMemoryRunApi
from extraction_operator.breaker.runtime import SharedBreaker
from extraction_operator.cli import build_parser
from extraction_operator.stage import EXIT_CIRCUIT_OPEN
from extraction_operator.stage.guard import parse_exit_codes, run_guard


def guard_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["guard", *argv])


def exit_with(code: int) -> list[str]:
    return ["--", sys.executable, "-c", f"raise SystemExit({code})"]


def circuits(api: InMemoryRunApi) -> dict[str, dict[str, object]]:
    if api.annotation is None:
        return {}
    result: dict[str, dict[str, object]] = json.loads(api.annotation)["circuits"]
    return result


@pytest.mark.parametrize("code", [0, 1, 3, 42])
def test_exit_code_is_passed_through(breaker: SharedBreaker, code: int) -> None:
    assert run_guard(guard_args("--circuit", "llm", *exit_with(code))) == code


def test_listed_exit_codes_record_failures_and_zero_resets(
    breaker: SharedBreaker, run_api: InMemoryRunApi
) -> None:
    args = ["--circuit", "llm", "--circuit", "embeddings", "--failure-exit-codes", "3,4"]
    assert run_guard(guard_args(*args, *exit_with(3))) == 3
    assert circuits(run_api)["llm"]["failures"] == 1
    assert circuits(run_api)["embeddings"]["failures"] == 1
    assert run_guard(guard_args(*args, *exit_with(1))) == 1  # unlisted: records nothing
    assert circuits(run_api)["llm"]["failures"] == 1
    assert run_guard(guard_args(*args, *exit_with(0))) == 0
    assert circuits(run_api)["llm"]["failures"] == 0


def test_open_circuit_exits_75_without_running_the_command(
    breaker: SharedBreaker, run_api: InMemoryRunApi, tmp_path: Path, termination_log: Path
) -> None:
    args = ["--circuit", "llm", "--failure-exit-codes", "4"]
    for _ in range(2):
        run_guard(guard_args(*args, *exit_with(4)))
    assert circuits(run_api)["llm"]["state"] == "open"
    marker = tmp_path / "ran"
    command = ["--", sys.executable, "-c", f"open({str(marker)!r}, 'w')"]
    assert run_guard(guard_args(*args, *command)) == EXIT_CIRCUIT_OPEN
    assert not marker.exists()
    assert "circuit 'llm' is open" in termination_log.read_text()


def test_probe_of_one_circuit_is_released_when_another_is_open(
    breaker: SharedBreaker, run_api: InMemoryRunApi
) -> None:
    past = 1_000.0  # long ago: recovery has passed, so "llm" offers a probe
    doc = {
        "v": 1,
        "circuits": {
            "llm": {"state": "open", "openedAt": past, "generation": 1},
            "embeddings": {"state": "open", "openedAt": time.time(), "generation": 1},
        },
    }
    run_api.set_annotation(json.dumps(doc))
    args = ["--circuit", "llm", "--circuit", "embeddings"]
    assert run_guard(guard_args(*args, *exit_with(0))) == EXIT_CIRCUIT_OPEN
    llm = circuits(run_api)["llm"]
    assert llm["state"] == "half-open"
    assert "probe" not in llm  # released, so another pod can probe at once


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", frozenset()), ("3", {3}), (" 3, 4 ,", {3, 4})],
)
def test_parse_exit_codes(text: str, expected: set[int]) -> None:
    assert parse_exit_codes(text) == expected


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--circuit", "llm", "--failure-exit-codes", "x", "--", "true"], "'x' is not an integer"),
        (["--circuit", "llm", "--failure-exit-codes", "0", "--", "true"], "out of range"),
        (["--circuit", "llm", "--failure-exit-codes", "75", "--", "true"], "reserved"),
        (["--circuit", "llm", "--"], "no command given"),
        (["--circuit", "llm"], "no command given"),
    ],
)
def test_usage_errors_exit_2_and_name_the_problem(
    breaker: SharedBreaker, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_guard(guard_args(*argv)) == 2
    assert message in capsys.readouterr().err


def test_missing_command_exits_127(breaker: SharedBreaker) -> None:
    assert run_guard(guard_args("--circuit", "llm", "--", "/no/such/program")) == 127


def test_sigterm_is_forwarded_to_the_child(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    child = (
        "import signal, sys, time, pathlib\n"
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(42))\n"
        f"pathlib.Path({str(ready)!r}).write_text('1')\n"
        "time.sleep(60)\n"
    )
    env = {**os.environ, "EXTRACTION_BREAKER_SCOPE": "local"}
    command = ["guard", "--circuit", "llm", "--", sys.executable, "-c", child]
    guard = subprocess.Popen([sys.executable, "-m", "extraction_operator", *command], env=env)
    deadline = time.time() + 30
    while not ready.exists() and time.time() < deadline:
        time.sleep(0.05)
    guard.send_signal(signal.SIGTERM)
    assert guard.wait(timeout=30) == 42
