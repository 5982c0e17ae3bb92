"""`extraction-operator demo --output json` as a user runs it: local cluster, real operator, the
6-stage example, the deliberate retry, and the knowledge graph on disk at the end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

EXPECTED_NODES = {
    "chunk",
    "mentions[0]",
    "mentions[1]",
    "mentions[2]",
    "entities",
    "relations",
    "assemble",
    "resolve",
}


@pytest.fixture(scope="module")
def demo_result(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    # The demo keeps its work directory (tempfile honours TMPDIR): put it where pytest cleans up.
    tmp = tmp_path_factory.mktemp("demo-e2e")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "extraction_operator",
            "demo",
            "--output",
            "json",
            "--timeout",
            "120",
        ],
        env={**os.environ, "TMPDIR": str(tmp)},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.stdout, f"no JSON on stdout; stderr:\n{done.stderr}"
    return {"code": done.returncode, "document": json.loads(done.stdout), "stderr": done.stderr}


def test_demo_exits_0_with_the_run_succeeded(demo_result: dict[str, Any]) -> None:
    assert demo_result["code"] == 0, demo_result["stderr"]
    [run] = demo_result["document"]["runs"]
    assert run["metadata"]["name"] == "extraction-pipeline"
    assert run["status"]["phase"] == "Succeeded"
    assert run["status"]["progress"] == "8/8"
    assert run["spec"]["stages"][1]["shards"] == 3


def test_every_node_succeeded_and_only_entities_was_retried(demo_result: dict[str, Any]) -> None:
    [run] = demo_result["document"]["runs"]
    nodes = run["status"]["nodes"]
    assert set(nodes) == EXPECTED_NODES
    assert {name: node["phase"] for name, node in nodes.items()} == dict.fromkeys(
        EXPECTED_NODES, "Succeeded"
    )
    assert {name: node["attempts"] for name, node in nodes.items()} == {
        **dict.fromkeys(EXPECTED_NODES, 1),
        "entities": 2,
    }


def test_one_job_per_node_attempt(demo_result: dict[str, Any]) -> None:
    jobs = demo_result["document"]["jobs"]
    assert len(jobs) == 9  # 8 nodes, plus the second attempt of entities
    uid = demo_result["document"]["runs"][0]["metadata"]["uid"]
    for job in jobs:
        assert [ref["uid"] for ref in job["metadata"]["ownerReferences"]] == [uid]
    entities = {
        job["metadata"]["labels"]["extraction.dev/attempt"]: job["status"]
        for job in jobs
        if job["metadata"]["labels"]["extraction.dev/stage"] == "entities"
    }
    assert entities["1"].get("failed") == 1  # the deliberate failure really happened
    assert entities["2"].get("succeeded") == 1


def test_the_knowledge_graph_is_on_disk(demo_result: dict[str, Any]) -> None:
    outputs = demo_result["document"]["outputs"]["default/extraction-pipeline"]
    graph = json.loads((Path(outputs) / "graph.json").read_text())
    assert graph["stats"]["entities"] == 66
    assert graph["entities"][0]["name"] == "Charles Babbage"
    assert graph["entities"][0]["aliases"] == ["Babbage"]
    assert graph["ambiguous"] == {"Scheutz": ["Edvard Scheutz", "Georg Scheutz"]}
    assert (
        (Path(outputs) / "report.txt")
        .read_text()
        .startswith("Knowledge graph of run extraction-pipeline\n")
    )


def run_manifest(tmp: Path, stage_code: str, *flags: str) -> subprocess.CompletedProcess[str]:
    manifest = tmp / "run.yaml"
    manifest.write_text(
        "apiVersion: extraction.dev/v1alpha1\n"
        "kind: ExtractionRun\n"
        "metadata: {name: one-stage}\n"
        "spec:\n"
        "  image: example\n"
        "  retry: {limit: 1, nonRetryableExitCodes: [2]}\n"
        f"  stages: [{{name: only, command: [python, -c, {json.dumps(stage_code)}]}}]\n"
    )
    return subprocess.run(
        [sys.executable, "-m", "extraction_operator", "demo", str(manifest), *flags],
        env={**os.environ, "TMPDIR": str(tmp)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_failing_run_exits_1_with_its_cause(tmp_path: Path) -> None:
    done = run_manifest(tmp_path, "import sys; sys.exit(2)", "--timeout", "60")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Run default/one-stage: Failed" in done.stdout
    assert "exit 2" in done.stdout


def test_a_run_outlasting_the_timeout_exits_2(tmp_path: Path) -> None:
    done = run_manifest(tmp_path, "import time; time.sleep(60)", "--timeout", "8")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Timed out after" in done.stdout
