"""The closing summary, the JSON document and the exit codes."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from extraction_operator.demo.summary import (
    EXIT_FAILED,
    EXIT_SUCCEEDED,
    EXIT_TIMED_OUT,
    exit_code,
    json_document,
    render_summary,
)

Factory = Callable[..., dict[str, Any]]
NOW = datetime(2026, 11, 23, 3, 1, 0, tzinfo=UTC)
DONE = "2026-11-23T03:00:30Z"


@pytest.fixture
def succeeded(make_run: Factory, node: Factory) -> dict[str, Any]:
    run = make_run(
        "Succeeded",
        {
            "chunk": node("Succeeded", finished="2026-11-23T03:00:02Z", message="15 chunks"),
            "entities": node("Succeeded", 2, finished=DONE, message="73 entities"),
        },
        progress="4/4",
        message="all 4 nodes succeeded",
    )
    run["status"]["finishedAt"] = DONE
    return run


@pytest.mark.parametrize(
    ("phases", "timed_out", "expected"),
    [
        (["Succeeded", "Succeeded"], False, EXIT_SUCCEEDED),
        (["Succeeded", "Failed"], False, EXIT_FAILED),
        (["Succeeded", "Running"], True, EXIT_TIMED_OUT),
        (["Failed", "Running"], True, EXIT_TIMED_OUT),
        (["Failed", "Failed"], True, EXIT_FAILED),
        (["Succeeded"], False, EXIT_FAILED),  # one of the two runs vanished
    ],
)
def test_exit_code(make_run: Factory, phases: list[str], timed_out: bool, expected: int) -> None:
    runs = [make_run(phase, name=f"r{i}") for i, phase in enumerate(phases)]
    assert exit_code(runs, expected=2, timed_out=timed_out) == expected


def test_a_stalled_run_is_finished_and_failed(make_run: Factory) -> None:
    stalled = make_run("Pending", conditions=[{"type": "Stalled", "status": "True"}])
    assert exit_code([stalled], expected=1, timed_out=True) == EXIT_FAILED


def test_json_document_holds_full_runs_and_jobs(succeeded: dict[str, Any]) -> None:
    run = succeeded
    job = {"kind": "Job", "metadata": {"name": "pipeline-chunk-1"}}
    outputs = {"default/pipeline": Path("/tmp/out"), "default/other": None}
    document = json.loads(json.dumps(json_document([run], [job], outputs)))
    assert list(document) == ["runs", "jobs", "outputs"]
    assert document["outputs"] == {"default/pipeline": "/tmp/out", "default/other": None}
    assert document["runs"][0]["metadata"]["annotations"] == run["metadata"]["annotations"]
    assert document["runs"][0]["spec"] == run["spec"]
    assert document["runs"][0]["status"]["phase"] == "Succeeded"
    assert document["jobs"] == [job]


def test_summary_lists_nodes_outputs_and_the_report(
    tmp_path: Path, succeeded: dict[str, Any]
) -> None:
    (tmp_path / "report.txt").write_text("Knowledge graph of run pipeline\n66 entities\n")
    text = render_summary(
        [succeeded], NOW, {"default/pipeline": tmp_path}, missing=["default/gone"]
    )
    lines = text.splitlines()
    assert lines[0] == "Run default/pipeline: Succeeded (4/4 nodes, took 30s)"
    assert lines[1] == "  all 4 nodes succeeded"
    assert lines[2].split() == ["chunk", "Succeeded", "1", "attempt", "1s", "15", "chunks"]
    assert lines[3].split() == ["mentions[0]", "Pending", "0", "attempts", "-"]
    assert lines[4].split() == ["mentions[1]", "Pending", "0", "attempts", "-"]
    assert lines[5].split()[:4] == ["entities", "Succeeded", "2", "attempts"]
    assert f"  Outputs: {tmp_path}" in lines
    assert "    66 entities" in lines
    assert lines[-1] == "Run default/gone: not found (deleted, or never created)"


def test_summary_without_outputs_says_nothing_about_them(succeeded: dict[str, Any]) -> None:
    text = render_summary([succeeded], NOW, {})
    assert "Outputs" not in text
