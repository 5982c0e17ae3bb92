"""The provider-failure marker: a stage that ends on a failure its circuit counted says so.

Stage programs run as real subprocesses with a process-local breaker and their termination file in
tmp_path; what they write is read back with `split_marker`, as the operator reads it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from extraction_operator.breaker.attribution import MARKER_PREFIX, split_marker
from extraction_operator.breaker.memory import InMemoryRunApi
from extraction_operator.breaker.runtime import SharedBreaker
from extraction_operator.cli import build_parser
from extraction_operator.examples.chunk import chunk_stage
from extraction_operator.examples.provider import FakeProvider
from extraction_operator.examples.runtime import (
    EXIT_CIRCUIT_OPEN,
    EXIT_OK,
    EXIT_RETRYABLE,
    StageContext,
    run_stage,
)
from extraction_operator.stage import (
    breaker_from_env,
    circuit,
    provider_failures_in,
    set_breaker,
)
from extraction_operator.stage.guard import run_guard

# Opens at the first failure and offers a probe 50 ms later: the probe's generation is 2.
FAST = {"llm": {"failureThreshold": 1, "recoveryTimeoutSeconds": 0.05}}
SLOW = {"llm": {"failureThreshold": 5, "recoveryTimeoutSeconds": 30}}

PRELUDE = """\
import asyncio, sys, time
from extraction_operator.stage import CircuitOpen, circuit, run_stage

class ProviderError(Exception):
    def __init__(self, status_code):
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code

def provider_fails(status_code=503):
    with circuit("llm"):
        raise ProviderError(status_code)

"""


def run_script(
    tmp_path: Path, body: str, circuits: dict[str, Any] | None = None
) -> tuple[subprocess.CompletedProcess[str], Path]:
    log = tmp_path / "termination-log"
    env = {
        **os.environ,
        "TERMINATION_MESSAGE_PATH": str(log),
        "EXTRACTION_BREAKER_SCOPE": "local",
        "EXTRACTION_CIRCUITS": json.dumps(circuits or SLOW),
    }
    script = PRELUDE + textwrap.dedent(body)
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    return done, log


def read(log: Path) -> tuple[str, dict[str, int]]:
    text, failures = split_marker(log.read_text(encoding="utf-8"))
    return text or "", failures


# ---- the SDK: run_stage and the exit hook --------------------------------------------------


def test_uncaught_provider_failure_keeps_exit_code_and_traceback_and_adds_the_marker(
    tmp_path: Path,
) -> None:
    done, log = run_script(tmp_path, "provider_fails()\n")
    assert done.returncode == 1
    assert "Traceback" in done.stderr
    assert "ProviderError: HTTP 503" in done.stderr
    assert log.read_text() == f'ProviderError: HTTP 503\n{MARKER_PREFIX}{{"llm": 0}}'
    assert read(log) == ("ProviderError: HTTP 503", {"llm": 0})


def test_run_stage_marks_the_generation_the_failing_call_was_admitted_under(
    tmp_path: Path,
) -> None:
    """The first failure opens the circuit (generation 1), the probe is admitted under 2."""
    body = """
    class StageError(Exception):
        pass

    def main():
        try:
            provider_fails()
        except ProviderError:
            pass
        time.sleep(0.2)
        try:
            provider_fails()
        except ProviderError as exc:
            raise StageError("extraction failed") from exc

    sys.exit(run_stage(main))
    """
    done, log = run_script(tmp_path, body, FAST)
    assert done.returncode == 1
    assert "The above exception was the direct cause" in done.stderr
    assert read(log) == ("StageError: extraction failed", {"llm": 2})


def test_a_later_success_on_the_circuit_does_not_clear_the_failure(tmp_path: Path) -> None:
    body = """
    def main():
        try:
            provider_fails()
        except ProviderError as exc:
            with circuit("llm"):
                pass
            raise RuntimeError("gave up") from exc

    sys.exit(run_stage(main))
    """
    done, log = run_script(tmp_path, body)
    assert done.returncode == 1
    assert read(log) == ("RuntimeError: gave up", {"llm": 0})


@pytest.mark.parametrize(
    "body",
    [
        'with circuit("llm"):\n    {}["missing"]\n',
        "provider_fails(400)\n",  # the provider answered: not an outage
        "sys.exit(run_stage(lambda: provider_fails(400)))\n",
    ],
    ids=["key-error", "http-400", "http-400-run-stage"],
)
def test_errors_the_breaker_does_not_count_get_no_marker(tmp_path: Path, body: str) -> None:
    done, log = run_script(tmp_path, body)
    assert done.returncode == 1
    assert "Traceback" in done.stderr
    assert not log.exists()


def test_a_provider_failure_handled_before_an_unrelated_bug_gets_no_marker(
    tmp_path: Path,
) -> None:
    body = """
    def main():
        try:
            provider_fails()
        except ProviderError:
            pass  # the stage copes, e.g. falls back to a local heuristic
        return {}["missing"]

    sys.exit(run_stage(main))
    """
    done, log = run_script(tmp_path, body)
    assert done.returncode == 1
    assert "KeyError: 'missing'" in done.stderr
    assert not log.exists()


def test_system_exit_from_the_except_block_gets_the_marker(tmp_path: Path) -> None:
    body = """
    def main():
        try:
            provider_fails()
        except ProviderError:
            raise SystemExit(1)

    sys.exit(run_stage(main))
    """
    done, log = run_script(tmp_path, body)
    assert done.returncode == 1
    assert read(log) == ("exit 1 after ProviderError: HTTP 503", {"llm": 0})


def test_a_clean_system_exit_from_the_except_block_gets_no_marker(tmp_path: Path) -> None:
    body = """
    def main():
        try:
            provider_fails()
        except ProviderError:
            sys.exit(0)

    sys.exit(run_stage(main))
    """
    done, log = run_script(tmp_path, body)
    assert done.returncode == 0
    assert not log.exists()


def test_the_stages_own_termination_message_is_kept_before_the_marker(tmp_path: Path) -> None:
    body = """
    import os
    def main():
        with open(os.environ["TERMINATION_MESSAGE_PATH"], "w") as log:
            log.write("chunk 7 of 15 failed\\nsee the stage log\\n")
        provider_fails()

    sys.exit(run_stage(main))
    """
    done, log = run_script(tmp_path, body)
    assert done.returncode == 1
    assert log.read_text().startswith("chunk 7 of 15 failed\nsee the stage log\n" + MARKER_PREFIX)
    assert read(log) == ("chunk 7 of 15 failed\nsee the stage log", {"llm": 0})


def test_a_provider_failure_inside_a_task_group_is_found(tmp_path: Path) -> None:
    body = """
    async def main():
        async def bug():
            await asyncio.sleep(0.05)
            raise ValueError("bug")

        async def call():
            async with circuit("llm"):
                raise ProviderError(502)

        async with asyncio.TaskGroup() as group:
            group.create_task(bug())
            group.create_task(call())

    sys.exit(run_stage(main))
    """
    done, log = run_script(tmp_path, body)
    assert done.returncode == 1
    assert "ExceptionGroup" in done.stderr
    text, failures = read(log)
    assert failures == {"llm": 0}
    assert text.startswith("ExceptionGroup: unhandled errors")


def test_circuit_open_still_exits_75_without_a_marker(tmp_path: Path) -> None:
    body = """
    def main():
        for _ in range(6):
            try:
                provider_fails()
            except ProviderError:
                pass

    sys.exit(run_stage(main))
    """
    done, log = run_script(tmp_path, body)
    assert done.returncode == EXIT_CIRCUIT_OPEN
    assert "Traceback" not in done.stderr
    text, failures = read(log)
    assert failures == {}
    assert "circuit 'llm' is open" in text


def test_an_unwritable_termination_file_changes_nothing(tmp_path: Path) -> None:
    done, _ = run_script(tmp_path / "no" / "such" / "dir", "provider_fails()\n")
    assert done.returncode == 1
    assert done.stderr.count("Traceback") == 1
    assert done.stderr.rstrip().endswith("ProviderError: HTTP 503")


# ---- the tag on the exception, in process --------------------------------------------------


class FrozenTimeout(TimeoutError):
    """An exception that refuses attributes and hides its __dict__."""

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen")

    def __getattribute__(self, name: str) -> Any:
        if name == "__dict__":
            raise AttributeError(name)
        return super().__getattribute__(name)


def test_an_exception_refusing_attributes_is_still_remembered(breaker: SharedBreaker) -> None:
    with pytest.raises(FrozenTimeout) as caught, circuit("llm"):
        raise FrozenTimeout("slow")
    assert provider_failures_in(caught.value) == ({"llm": 0}, caught.value)


def test_nested_circuits_and_cyclic_chains(breaker: SharedBreaker) -> None:
    with pytest.raises(TimeoutError) as caught, circuit("embeddings"), circuit("llm"):
        raise TimeoutError("slow")
    outer = RuntimeError("outer")
    outer.__context__ = caught.value
    caught.value.__context__ = outer  # a cycle, as careless re-raising can make
    assert provider_failures_in(outer) == ({"embeddings": 0, "llm": 0}, caught.value)
    detached = RuntimeError("from None")
    detached.__context__ = caught.value
    detached.__suppress_context__ = True
    assert provider_failures_in(detached) == ({}, None)


# ---- guard ---------------------------------------------------------------------------------


def guard(*argv: str) -> int:
    return run_guard(build_parser().parse_args(["guard", *argv]))


def writes_and_exits(log: Path, code: int) -> list[str]:
    child = f"open({str(log)!r}, 'w').write('curl: (28) timed out')\nraise SystemExit({code})"
    return ["--", sys.executable, "-c", child]


def test_guard_marks_a_failure_exit_code_with_each_circuits_generation(
    breaker: SharedBreaker, run_api: InMemoryRunApi, termination_log: Path
) -> None:
    doc = {
        "v": 1,
        "circuits": {
            "llm": {"state": "closed", "generation": 4},
            "embeddings": {"state": "open", "openedAt": 1_000.0, "generation": 1},
        },
    }
    run_api.set_annotation(json.dumps(doc))
    args = ["--circuit", "llm", "--circuit", "embeddings", "--failure-exit-codes", "3,4"]
    assert guard(*args, *writes_and_exits(termination_log, 3)) == 3
    # embeddings was past its recovery time: this call was its probe, admitted under 2
    assert read(termination_log) == ("curl: (28) timed out", {"embeddings": 2, "llm": 4})


@pytest.mark.parametrize("code", [0, 1, 42])
def test_guard_writes_no_marker_for_other_exit_codes(
    breaker: SharedBreaker, termination_log: Path, code: int
) -> None:
    args = ["--circuit", "llm", "--failure-exit-codes", "3"]
    assert guard(*args, *writes_and_exits(termination_log, code)) == code
    assert termination_log.read_text() == "curl: (28) timed out"


def test_guard_command_as_a_process_describes_a_silent_failure(tmp_path: Path) -> None:
    log = tmp_path / "termination-log"
    env = {**os.environ, "EXTRACTION_BREAKER_SCOPE": "local", "TERMINATION_MESSAGE_PATH": str(log)}
    command = ["guard", "--circuit", "llm", "--failure-exit-codes", "3"]
    child = [sys.executable, "-c", "raise SystemExit(3)"]
    done = subprocess.run(
        [sys.executable, "-m", "extraction_operator", *command, "--", *child],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3, done.stderr
    assert read(log) == (f"{sys.executable} exited 3", {"llm": 0})


# ---- the example pipeline's own run_stage --------------------------------------------------


def stage_env(workspace: Path, **extra: str) -> dict[str, str]:
    return {
        "EXTRACTION_RUN": "engines",
        "EXTRACTION_STAGE": "mentions",
        "EXTRACTION_WORKSPACE": str(workspace),
        "TERMINATION_MESSAGE_PATH": str(workspace / "termination"),
        **extra,
    }


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    assert run_stage(chunk_stage, stage_env(tmp_path, EXTRACTION_STAGE="chunk")) == EXIT_OK
    return tmp_path


@pytest.fixture
def fast_breaker() -> Iterator[None]:
    env = {"EXTRACTION_BREAKER_SCOPE": "local", "EXTRACTION_CIRCUITS": json.dumps(FAST)}
    set_breaker(breaker_from_env(env))
    yield
    set_breaker(None)


def test_example_stage_failing_on_the_provider_is_marked_as_a_process(workspace: Path) -> None:
    with FakeProvider(outage_seconds=60) as failing:
        env = {
            **os.environ,
            **stage_env(workspace, LLM_PROVIDER_URL=failing.url),
            "EXTRACTION_BREAKER_SCOPE": "local",
        }
        done = subprocess.run(
            [sys.executable, "-m", "extraction_operator.examples.mentions"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == EXIT_RETRYABLE, done.stderr
    text, failures = read(workspace / "termination")
    assert failures == {"llm": 0}
    assert "failed after 0 of 15 chunks" in text
    assert "HTTP 503" in text


def test_example_stage_marks_the_probe_generation_and_not_the_open_circuit(
    workspace: Path, fast_breaker: None
) -> None:
    from extraction_operator.examples.mentions import mentions_stage

    log = workspace / "termination"
    with FakeProvider(outage_seconds=60) as failing:
        env = stage_env(workspace, LLM_PROVIDER_URL=failing.url)
        assert run_stage(mentions_stage, env) == EXIT_RETRYABLE
        assert read(log)[1] == {"llm": 0}
        assert run_stage(mentions_stage, env) == EXIT_CIRCUIT_OPEN
        assert read(log)[1] == {}
        time.sleep(0.1)
        assert run_stage(mentions_stage, env) == EXIT_RETRYABLE  # the probe
        assert read(log)[1] == {"llm": 2}
        off = stage_env(workspace, LLM_PROVIDER_URL=failing.url, LLM_BREAKER="off")
        assert run_stage(mentions_stage, off) == EXIT_RETRYABLE
        assert MARKER_PREFIX not in log.read_text()


def test_example_stage_errors_without_a_provider_failure_are_unmarked(tmp_path: Path) -> None:
    def body(context: StageContext) -> str:
        with circuit("llm", breaker=breaker_from_env({"EXTRACTION_BREAKER_SCOPE": "local"})):
            raise KeyError("missing")

    assert run_stage(body, stage_env(tmp_path)) == EXIT_RETRYABLE
    assert (tmp_path / "termination").read_text() == "internal error: KeyError: 'missing'\n"
