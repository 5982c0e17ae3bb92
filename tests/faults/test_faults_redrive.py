"""Re-drive after downtime: a run whose deadline passed while the operator was down fails with
`DeadlineExceeded` as soon as an operator is back."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from faults_kit import FAST_RETRY, STAGE_TOOL

import chaos
from conftest import LaunchOperator


def test_deadline_passed_while_down_fails_the_run(
    cluster: Any, launch: LaunchOperator, tmp_path: Path
) -> None:
    log = tmp_path / "stages.jsonl"
    body = {
        "apiVersion": "extraction.dev/v1alpha1",
        "kind": "ExtractionRun",
        "metadata": {"name": "late"},
        "spec": {
            "image": "local",
            "retry": FAST_RETRY,
            "activeDeadlineSeconds": 3,
            "stages": [
                {"name": "long", "command": ["python", STAGE_TOOL],
                 "args": ["--log", str(log), "--sleep", "30"]},
            ],
        },
    }  # fmt: skip
    chaos.request(cluster.url, "POST", chaos.runs_path(), body)
    operator = launch()
    assert chaos.wait_first_write(cluster, time.time() - 60, ["late"], timeout=30) is not None
    operator.kill()
    time.sleep(4)  # the deadline passes while no operator runs
    restarted = time.time()
    launch(label="restarted")
    phase = chaos.wait_phase(cluster.url, "late", 30)
    status = chaos.get_run(cluster.url, "late")["status"]
    assert phase == "Failed", status
    assert "DeadlineExceeded" in json.dumps(status), status
    took = (chaos.first_write_after(cluster, restarted, ["late"]) or restarted) - restarted
    print(f"deadline re-drive: first write {took:.2f}s after the restart")
