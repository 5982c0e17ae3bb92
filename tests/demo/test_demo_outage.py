"""`demo --outage`: runs pointed at the fake provider, circuit state in the view, and end to end."""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from extraction_operator.demo.main import demonstrate, run_demo
from extraction_operator.demo.manifests import RunRef, load_manifests
from extraction_operator.demo.outage import demo_recovery_seconds, provider_note, with_provider
from extraction_operator.demo.status import circuit_rows
from extraction_operator.demo.summary import EXIT_FAILED, EXIT_SUCCEEDED
from extraction_operator.demo.view import ChangeTracker, circuit_line, render_run

Factory = Callable[..., dict[str, Any]]
NOW = datetime(2026, 11, 23, 3, 0, 10, tzinfo=UTC)
OPEN_LLM = {
    "llm": {
        "state": "open",
        "failures": 5,
        "openedAt": "2026-11-23T03:00:05Z",
        "lastError": "ProviderHTTPError: provider answered HTTP 503",
    }
}


def with_circuits(run: dict[str, Any], circuits: dict[str, Any]) -> dict[str, Any]:
    run["status"]["circuits"] = circuits
    return run


# ---- pointing the runs at the provider ----------------------------------------------------


def test_runs_get_the_provider_url_and_a_short_recovery_time() -> None:
    manifests = load_manifests([])
    changed = with_provider(manifests, "http://127.0.0.1:9", 5)
    [claim, run] = changed.objects
    assert claim == manifests.objects[0]
    assert {"name": "LLM_PROVIDER_URL", "value": "http://127.0.0.1:9"} in run["spec"]["env"]
    assert run["spec"]["circuitBreakers"]["llm"]["recoveryTimeoutSeconds"] == 3
    assert changed.runs == manifests.runs
    # The manifest's own copy is untouched.
    original = manifests.objects[1]["spec"]
    assert "env" not in original
    assert original["circuitBreakers"]["llm"]["recoveryTimeoutSeconds"] == 30


def test_the_outage_runs_keep_their_breakers_as_the_stage_service_account() -> None:
    """`demo --outage` runs guarded stages: their pods need the stage ServiceAccount's Role."""
    changed = with_provider(load_manifests([]), "http://127.0.0.1:9", 5)
    runs = [obj for obj in changed.objects if obj["kind"] == "ExtractionRun"]
    assert runs
    for run in runs:
        assert any(stage.get("circuits") for stage in run["spec"]["stages"])
        assert run["spec"]["serviceAccountName"] == "extraction-stage"


def test_a_second_provider_url_replaces_the_first() -> None:
    once = with_provider(load_manifests([]), "http://127.0.0.1:1", 5)
    twice = with_provider(once, "http://127.0.0.1:2", 5)
    env = twice.objects[1]["spec"]["env"]
    assert [item for item in env if item["name"] == "LLM_PROVIDER_URL"] == [
        {"name": "LLM_PROVIDER_URL", "value": "http://127.0.0.1:2"}
    ]


def test_recovery_time_is_half_the_outage_within_bounds() -> None:
    assert demo_recovery_seconds(30, 5) == 3
    assert demo_recovery_seconds(30, 1) == 2
    assert demo_recovery_seconds(30, 600) == 30


# ---- circuit state in the view --------------------------------------------------------------


def test_an_open_circuit_is_shown_under_the_run_heading(make_run: Factory, node: Factory) -> None:
    run = with_circuits(
        make_run("Running", {"mentions[0]": node("Blocked", reason="CircuitOpen")}), OPEN_LLM
    )
    lines = render_run(run, NOW)
    assert lines[1] == (
        "  circuit llm: open since 03:00:05 after 5 failures "
        "(last error: ProviderHTTPError: provider answered HTTP 503)"
    )
    assert any("Blocked" in line and "[CircuitOpen]" in line for line in lines)


def test_a_healthy_closed_circuit_adds_no_line(make_run: Factory) -> None:
    run = with_circuits(make_run("Running"), {"llm": {"state": "closed", "failures": 0}})
    assert not any("circuit" in line for line in render_run(run, NOW))


def test_circuit_rows_tolerate_malformed_status(make_run: Factory) -> None:
    run = with_circuits(make_run("Running"), {"llm": "open", "x": {"failures": "many"}})
    assert [(row.name, row.state, row.failures) for row in circuit_rows(run)] == [
        ("llm", "closed", 0),
        ("x", "closed", 0),
    ]


def test_plain_output_logs_each_circuit_transition_once(make_run: Factory) -> None:
    tracker = ChangeTracker()
    opened = with_circuits(make_run("Running"), OPEN_LLM)
    closed = with_circuits(make_run("Running"), {"llm": {"state": "closed", "failures": 0}})
    first = tracker.change_lines([opened], NOW)
    assert "default/pipeline circuit llm: open since 03:00:05" in "\n".join(first)
    assert not any("circuit" in line for line in tracker.change_lines([opened], NOW))
    assert any(
        line.endswith("default/pipeline circuit llm: closed")
        for line in tracker.change_lines([closed], NOW)
    )
    [row] = circuit_rows(closed)
    assert circuit_line(row, colours=True) == "  circuit llm: \x1b[32mclosed\x1b[0m"


# ---- the flow reports what reached the provider ---------------------------------------------


class OneRunBackend:
    def __init__(self, run: dict[str, Any], events: list[dict[str, Any]]) -> None:
        self.run, self.events, self.applied = run, events, 0

    @property
    def kubeconfig(self) -> Path:
        return Path("kubeconfig")

    def apply(self, obj: Mapping[str, Any]) -> None:
        self.applied += 1

    def read_runs(self, refs: Sequence[RunRef]) -> dict[str, Mapping[str, Any] | None]:
        return {ref.key: self.run for ref in refs}

    def read_jobs(self, runs: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        return []

    def read_events(self, runs: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        return list(self.events)

    def outputs_dir(self, run: Mapping[str, Any]) -> Path | None:
        return None


STATS = {"total_calls": 21, "failed_calls": 6}


def run_flow(backend: OneRunBackend, output: str) -> tuple[int, str]:
    stdout = io.StringIO()
    code = demonstrate(
        backend,
        load_manifests([]),
        output=output,
        timeout=5,
        serve=False,
        stdout=stdout,
        stderr=io.StringIO(),
        provider_stats=lambda: STATS,
    )
    return code, stdout.getvalue()


def test_json_document_carries_provider_counts_and_events(make_run: Factory) -> None:
    run = make_run("Succeeded", name="extraction-pipeline")
    events = [{"reason": "CircuitOpened"}, {"reason": "CircuitClosed"}]
    code, out = run_flow(OneRunBackend(run, events), "json")
    document = json.loads(out)
    assert code == EXIT_SUCCEEDED
    assert document["provider"] == STATS
    assert document["events"] == events


def test_live_summary_ends_with_the_provider_counts(make_run: Factory) -> None:
    code, out = run_flow(
        OneRunBackend(make_run("Succeeded", name="extraction-pipeline"), []), "live"
    )
    assert code == EXIT_SUCCEEDED
    assert out.rstrip().endswith(provider_note(STATS))
    assert "21 call(s) reached it, 6 of them failed" in out


def test_a_negative_outage_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    args = argparse.Namespace(manifests=[], outage=-1.0, output="json", timeout=10.0, serve=False)
    assert run_demo(args) == EXIT_FAILED
    assert "--outage must be a number of seconds >= 0" in capsys.readouterr().err


# ---- end to end -----------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.timeout(240)
def test_demo_with_an_outage_opens_the_circuit_blocks_probes_and_succeeds(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "extraction_operator",
            "demo",
            "--output",
            "json",
            "--outage",
            "5",
            "--timeout",
            "180",
        ],
        env={**os.environ, "TMPDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=220,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    [run] = document["runs"]
    assert run["status"]["phase"] == "Succeeded"
    assert run["status"]["circuits"]["llm"]["state"] == "closed"
    assert "HTTP 503" in run["status"]["circuits"]["llm"]["lastError"]
    reasons = [event["reason"] for event in document["events"]]
    assert {"CircuitOpened", "CircuitHalfOpen", "CircuitClosed", "StageBlocked"} <= set(reasons)
    provider = document["provider"]
    # 5 failures open the circuit; a few more may be in flight in the other shards, or a probe.
    assert 5 <= provider["failed_calls"] < provider["total_calls"]
    assert "Fake LLM provider at http://127.0.0.1:" in done.stderr
