"""The fake LLM provider, its client, and the mentions stage calling it through `circuit("llm")`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from extraction_operator.breaker.classify import default_classifier
from extraction_operator.breaker.runtime import CircuitOpen
from extraction_operator.examples.chunk import chunk_stage, make_chunks, sample_text
from extraction_operator.examples.mentions import find_mentions, mentions_stage
from extraction_operator.examples.provider import FakeProvider, OutageSchedule, extraction_reply
from extraction_operator.examples.provider_client import (
    ProviderHTTPError,
    ProviderUnavailable,
    extract_mentions,
)
from extraction_operator.examples.records import mentions_file
from extraction_operator.examples.runtime import (
    EXIT_CIRCUIT_OPEN,
    EXIT_OK,
    EXIT_RETRYABLE,
    StageContext,
    run_stage,
)
from extraction_operator.stage import breaker_from_env, set_breaker

REPO = Path(__file__).resolve().parents[2]
CHUNKS = make_chunks(sample_text())


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    with FakeProvider() as running:
        yield running


def post(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


# ---- the outage window ---------------------------------------------------------------------


def test_outage_starts_with_the_first_call_and_lasts_its_seconds() -> None:
    clock = FakeClock()
    schedule = OutageSchedule(10, None, clock=clock)
    clock.now += 500  # however long the cluster took to start
    assert schedule.failing()
    clock.now += 9.9
    assert schedule.failing()
    clock.now += 0.2
    assert not schedule.failing()
    assert schedule.starts_at == 1500.0


def test_outage_can_start_at_a_fixed_offset_or_never() -> None:
    clock = FakeClock()
    schedule = OutageSchedule(5, 3, clock=clock)
    assert not schedule.failing()
    clock.now += 3
    assert schedule.failing()
    clock.now += 5
    assert not schedule.failing()
    assert not OutageSchedule(0, None, clock=clock).failing()


def test_negative_outage_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="outage_seconds"):
        OutageSchedule(-1, None)
    with pytest.raises(ValueError, match="outage_start"):
        OutageSchedule(1, -2)


def test_admit_counts_total_failed_and_per_run() -> None:
    clock = FakeClock()
    fake = FakeProvider(outage_seconds=2, clock=clock)
    try:
        assert not fake.admit("a")
        assert not fake.admit("b")
        clock.now += 3
        assert fake.admit("a")
        stats = fake.stats()
    finally:
        fake.stop()
    assert (stats["total_calls"], stats["failed_calls"]) == (3, 2)
    assert stats["runs"] == {
        "a": {"total_calls": 2, "failed_calls": 1},
        "b": {"total_calls": 1, "failed_calls": 1},
    }
    assert stats["failure_times"] == [1000.0, 1000.0]
    assert (stats["outage_started_at"], stats["outage_ends_at"]) == (1000.0, 1002.0)


# ---- the HTTP server -----------------------------------------------------------------------


def test_the_provider_answers_with_the_stage_heuristic(provider: FakeProvider) -> None:
    for chunk in CHUNKS[:4]:
        assert extract_mentions(provider.url, chunk, run="r") == find_mentions(chunk)
    assert provider.stats()["runs"] == {"r": {"total_calls": 4, "failed_calls": 0}}


def test_during_an_outage_calls_fail_with_503_that_the_breaker_counts() -> None:
    with FakeProvider(outage_seconds=60) as failing:
        with pytest.raises(ProviderHTTPError) as caught:
            extract_mentions(failing.url, CHUNKS[0])
        stats = failing.stats()
    assert caught.value.status_code == 503
    assert default_classifier(30)(caught.value)
    assert (stats["total_calls"], stats["failed_calls"]) == (1, 1)


def test_control_endpoint_starts_an_outage_now(provider: FakeProvider) -> None:
    assert extract_mentions(provider.url, CHUNKS[0])
    status, stats = post(provider.url + "/control/outage?seconds=30", b"")
    assert status == 200
    assert stats["outage_ends_at"] > stats["outage_started_at"]
    with pytest.raises(ProviderHTTPError):
        extract_mentions(provider.url, CHUNKS[0])
    status, error = post(provider.url + "/control/outage?seconds=soon", b"")
    assert status == 400
    assert "seconds='soon'" in error["error"]


def test_stats_endpoint_and_unknown_paths(provider: FakeProvider) -> None:
    extract_mentions(provider.url, CHUNKS[0], run="x")
    with urllib.request.urlopen(provider.url + "/stats", timeout=5) as response:
        stats = json.loads(response.read())
    assert stats["runs"]["x"] == {"total_calls": 1, "failed_calls": 0}
    status, _ = post(provider.url + "/v2/other", b"{}")
    assert status == 404


def test_a_malformed_request_is_a_400_which_the_breaker_does_not_count(
    provider: FakeProvider,
) -> None:
    status, error = post(provider.url + "/v1/extract", b'{"chunk": {"id": 3}}')
    assert status == 400
    assert "'id' must be a str" in error["error"]
    with pytest.raises(ValueError, match="not JSON"):
        extraction_reply(b"nope")
    assert not default_classifier(30)(ProviderHTTPError(400, "bad request"))


def test_an_unreachable_provider_is_a_connection_error_the_breaker_counts() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ProviderUnavailable) as caught:
        extract_mentions(f"http://127.0.0.1:{port}", CHUNKS[0], timeout=1)
    assert default_classifier(30)(caught.value)


def test_cli_prints_its_url_and_serves() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "extraction_operator.examples.provider", "--outage-seconds", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        assert extract_mentions(url, CHUNKS[1]) == find_mentions(CHUNKS[1])
    finally:
        process.terminate()
        process.wait(10)


# ---- the mentions stage through the provider -----------------------------------------------


def stage_env(workspace: Path, **extra: str) -> dict[str, str]:
    return {
        "EXTRACTION_RUN": "engines",
        "EXTRACTION_STAGE": "mentions",
        "EXTRACTION_WORKSPACE": str(workspace),
        "SHARD_INDEX": "0",
        "SHARD_COUNT": "1",
        "TERMINATION_MESSAGE_PATH": str(workspace / "termination"),
        **extra,
    }


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    assert run_stage(chunk_stage, stage_env(tmp_path, EXTRACTION_STAGE="chunk")) == EXIT_OK
    return tmp_path


@pytest.fixture
def local_breaker() -> Iterator[None]:
    """A process-local breaker opening after 5 failures, as the operator would configure it."""
    circuits = json.dumps({"llm": {"failureThreshold": 5, "recoveryTimeoutSeconds": 30}})
    set_breaker(
        breaker_from_env({"EXTRACTION_BREAKER_SCOPE": "local", "EXTRACTION_CIRCUITS": circuits})
    )
    yield
    set_breaker(None)


def output_of(workspace: Path) -> str:
    context = StageContext.from_env(stage_env(workspace))
    return (context.output_dir / mentions_file(0)).read_text(encoding="utf-8")


def test_mentions_through_the_provider_equal_the_local_heuristic(
    workspace: Path, provider: FakeProvider, local_breaker: None
) -> None:
    assert run_stage(mentions_stage, stage_env(workspace)) == EXIT_OK
    local = output_of(workspace)
    env = stage_env(workspace, LLM_PROVIDER_URL=provider.url)
    assert run_stage(mentions_stage, env) == EXIT_OK
    assert output_of(workspace) == local
    assert provider.stats()["runs"] == {"engines": {"total_calls": 15, "failed_calls": 0}}


def test_the_first_failed_call_fails_the_shard_retryably(workspace: Path) -> None:
    """No further calls after a failure: the operator's backoff decides when to try again."""
    with FakeProvider(outage_seconds=60) as failing:
        env = stage_env(workspace, LLM_PROVIDER_URL=failing.url, LLM_BREAKER="off")
        code = run_stage(mentions_stage, env)
        stats = failing.stats()
    assert code == EXIT_RETRYABLE
    assert stats["failed_calls"] == stats["total_calls"] == 1
    message = (workspace / "termination").read_text(encoding="utf-8")
    assert "failed after 0 of 15 chunks" in message
    assert "HTTP 503" in message


def test_with_a_breaker_the_stage_stops_calling_and_exits_75(
    workspace: Path, local_breaker: None
) -> None:
    """Each attempt fails at its first call; once the breaker has seen the failure threshold (5),
    the next attempt exits 75 without calling the provider at all."""
    with FakeProvider(outage_seconds=60) as failing:
        env = stage_env(workspace, LLM_PROVIDER_URL=failing.url)
        codes = [run_stage(mentions_stage, env) for _ in range(6)]
        stats = failing.stats()
    assert codes == [EXIT_RETRYABLE] * 5 + [EXIT_CIRCUIT_OPEN]
    assert stats["failed_calls"] == stats["total_calls"] == 5
    assert "circuit 'llm' is open" in (workspace / "termination").read_text(encoding="utf-8")


def test_a_circuit_open_anywhere_in_a_stage_body_exits_75(tmp_path: Path) -> None:
    def body(context: StageContext) -> str:
        raise CircuitOpen("llm", None, "HTTP 503")

    assert run_stage(body, stage_env(tmp_path)) == EXIT_CIRCUIT_OPEN


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ({"LLM_BREAKER": "sometimes"}, "LLM_BREAKER='sometimes'"),
        ({"LLM_PROVIDER_TIMEOUT_SECONDS": "-1"}, "LLM_PROVIDER_TIMEOUT_SECONDS='-1'"),
    ],
)
def test_bad_provider_settings_are_bad_input(
    workspace: Path, provider: FakeProvider, setting: dict[str, str], expected: str
) -> None:
    env = stage_env(workspace, LLM_PROVIDER_URL=provider.url, **setting)
    assert run_stage(mentions_stage, env) == 2
    assert expected in (workspace / "termination").read_text(encoding="utf-8")


# ---- the benchmark, as a smoke run ---------------------------------------------------------


@pytest.mark.soak
@pytest.mark.timeout(600)
def test_outage_benchmark_quick_reports_the_three_variants(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "outage.py"), "--quick"],
        env={**os.environ, "TMPDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=580,
        check=False,
    )
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    threshold = figures["failure_threshold"]
    for variant in ("no_breaker", "local_breaker", "shared_breaker"):
        assert {"failed_calls", "total_calls", "wall_seconds", "run_phase"} <= set(figures[variant])
    assert figures["shared_breaker"]["run_phase"] == "Succeeded"
    assert figures["shared_breaker"]["failed_calls"] <= threshold + 2, figures
    assert figures["no_breaker"]["failed_calls"] > figures["shared_breaker"]["failed_calls"]
