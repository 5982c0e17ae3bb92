"""The six example stages run as real programs, in DAG order, on a temporary workspace, with the
env the operator gives them: the final graph must be exactly the one the bundled text yields."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

RUN_UID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
SHARDS = 3


def run_stage(
    workspace: Path, stage: str, *, attempt: int = 1, shard: int = 0, shards: int = 1, **extra: str
) -> tuple[int, str]:
    """Run `python -m extraction_operator.examples.<stage>`: (exit code, termination message)."""
    message_path = workspace.parent / f"termination-{stage}-{shard}-{attempt}"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "EXTRACTION_RUN": "engines",
        "EXTRACTION_NAMESPACE": "default",
        "EXTRACTION_RUN_UID": RUN_UID,
        "EXTRACTION_STAGE": stage,
        "EXTRACTION_NODE": f"{stage}[{shard}]" if shards > 1 else stage,
        "EXTRACTION_ATTEMPT": str(attempt),
        "SHARD_INDEX": str(shard),
        "SHARD_COUNT": str(shards),
        "EXTRACTION_WORKSPACE": str(workspace),
        "TERMINATION_MESSAGE_PATH": str(message_path),
        **extra,
    }
    done = subprocess.run(
        [sys.executable, "-m", f"extraction_operator.examples.{stage}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    message = message_path.read_text(encoding="utf-8") if message_path.exists() else ""
    return done.returncode, message.strip()


@pytest.fixture(scope="module")
def finished_workspace(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The whole pipeline, once, with `entities` failing its first attempt as in the manifest."""
    workspace = tmp_path_factory.mktemp("pipeline") / "workspace"
    workspace.mkdir()
    results: dict[str, tuple[int, str]] = {}
    results["chunk"] = run_stage(workspace, "chunk")
    for shard in range(SHARDS):
        results[f"mentions[{shard}]"] = run_stage(workspace, "mentions", shard=shard, shards=SHARDS)
    results["entities#1"] = run_stage(workspace, "entities", attempt=1, FLAKY_FAILURES="1")
    results["entities#2"] = run_stage(workspace, "entities", attempt=2, FLAKY_FAILURES="1")
    for stage in ("relations", "assemble", "resolve"):
        results[stage] = run_stage(workspace, stage)
    output = workspace / f"engines-{RUN_UID[:8]}"
    return {"results": results, "output": output}


def test_every_stage_succeeds_except_the_deliberate_first_entities_attempt(
    finished_workspace: dict[str, Any],
) -> None:
    results = finished_workspace["results"]
    assert results["entities#1"] == (
        1,
        "deliberate failure of attempt 1 (FLAKY_FAILURES=1); a retry will succeed",
    )
    assert {name: code for name, (code, _) in results.items() if name != "entities#1"} == {
        "chunk": 0,
        "mentions[0]": 0,
        "mentions[1]": 0,
        "mentions[2]": 0,
        "entities#2": 0,
        "relations": 0,
        "assemble": 0,
        "resolve": 0,
    }


def test_termination_messages_summarise_each_stage(finished_workspace: dict[str, Any]) -> None:
    results = finished_workspace["results"]
    assert results["chunk"][1] == "15 chunks from bundled engines.txt (4574 characters)"
    assert results["mentions[0]"][1] == "shard 0/3: 42 mentions in 5 of 15 chunks"
    assert results["entities#2"][1] == "73 entities from 120 mentions in 3 shards"
    assert results["resolve"][1] == (
        "graph.json: 66 entities, 294 relations, 7 aliases merged, 1 ambiguous"
    )


def test_graph_has_the_expected_entities_and_aliases(finished_workspace: dict[str, Any]) -> None:
    graph = json.loads((finished_workspace["output"] / "graph.json").read_text())
    assert graph["run"] == {"name": "engines", "namespace": "default", "uid": RUN_UID}
    assert graph["stats"] == {
        "entities": 66,
        "relations": 294,
        "mentions": 120,
        "aliasesMerged": 7,
    }
    entities = {entity["id"]: entity for entity in graph["entities"]}
    top = [(e["name"], e["kind"], e["mentions"]) for e in graph["entities"][:5]]
    assert top == [
        ("Charles Babbage", "name", 17),
        ("Ada Lovelace", "name", 11),
        ("Analytical Engine", "name", 6),
        ("London", "name", 6),
        ("Difference Engine", "name", 5),
    ]
    assert entities["name:charles-babbage"]["aliases"] == ["Babbage"]
    assert entities["name:ada-lovelace"]["aliases"] == ["Lovelace"]
    assert entities["organisation:british-government"]["aliases"] == ["Government"]
    assert entities["organisation:british-government"]["mentions"] == 4
    assert graph["aliases"] == {
        "name:airy": "name:george-airy",
        "name:babbage": "name:charles-babbage",
        "name:herschel": "name:john-herschel",
        "name:lovelace": "name:ada-lovelace",
        "name:menabrea": "name:luigi-menabrea",
        "name:somerville": "name:mary-somerville",
        "organisation:government": "organisation:british-government",
    }
    assert graph["ambiguous"] == {"Scheutz": ["Edvard Scheutz", "Georg Scheutz"]}
    # The programming language keeps its own entity: `Ada` is a first name, not a surname.
    assert entities["name:ada"]["mentions"] == 1
    # Dates and quantities come through with their kinds.
    assert entities["date:10-december-1815"]["kind"] == "date"
    assert entities["quantity:2-6-tonnes"]["name"] == "2.6 tonnes"
    # `University of London` is an organisation of its own, not where `London` is merged.
    assert entities["organisation:university-of-london"]["aliases"] == []
    assert entities["name:london"]["aliases"] == []


def test_graph_relations_count_shared_chunks(finished_workspace: dict[str, Any]) -> None:
    graph = json.loads((finished_workspace["output"] / "graph.json").read_text())
    weights = {(r["source"], r["target"]): r["weight"] for r in graph["relations"]}
    assert weights[("name:charles-babbage", "name:difference-engine")] == 5
    assert weights[("name:charles-babbage", "name:london")] == 5
    assert weights[("name:ada-lovelace", "name:charles-babbage")] == 4
    assert weights[("name:ada-lovelace", "name:luigi-menabrea")] == 1
    assert all(source < target for source, target in weights)
    assert ("name:ada-lovelace", "name:ada-lovelace") not in weights


def test_report_is_readable(finished_workspace: dict[str, Any]) -> None:
    report = (finished_workspace["output"] / "report.txt").read_text()
    assert report.splitlines()[:2] == [
        "Knowledge graph of run engines",
        "66 entities, 294 relations, 7 aliases merged",
    ]
    assert "   17  Charles Babbage [name] (also Babbage)" in report
    assert "    4  Ada Lovelace ~ Charles Babbage" in report
    assert "  Scheutz: Edvard Scheutz or Georg Scheutz" in report


def test_intermediate_files_are_all_there(finished_workspace: dict[str, Any]) -> None:
    names = sorted(path.name for path in finished_workspace["output"].iterdir())
    assert names == [
        "chunks.jsonl",
        "entities.json",
        "graph.json",
        "knowledge-graph.json",
        "mentions-0.jsonl",
        "mentions-1.jsonl",
        "mentions-2.jsonl",
        "relations.json",
        "report.txt",
    ]


def test_a_stage_without_its_input_fails_non_retryably(tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    code, message = run_stage(workspace, "relations")
    assert code == 2
    assert message.startswith("bad input: ")
    assert "entities.json does not exist; the entities stage must succeed first" in message


def test_corrupt_input_fails_non_retryably_naming_the_line(tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    assert run_stage(workspace, "chunk")[0] == 0
    chunks = workspace / f"engines-{RUN_UID[:8]}" / "chunks.jsonl"
    chunks.write_text(chunks.read_text().splitlines()[0] + "\n{not json\n")
    code, message = run_stage(workspace, "mentions")
    assert code == 2
    assert "chunks.jsonl:2 is not valid JSON" in message


def test_missing_workspace_env_is_a_bad_input(tmp_path: Path) -> None:
    code, message = run_stage(tmp_path, "chunk", EXTRACTION_WORKSPACE="")
    assert code == 2
    assert "EXTRACTION_WORKSPACE is not set" in message


def test_chunk_reads_your_own_text_from_the_workspace(tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    (workspace / "input").mkdir(parents=True)
    (workspace / "input" / "notes.txt").write_text("Grace Hopper wrote.\n\nAda wrote too.\n")
    code, message = run_stage(workspace, "chunk", EXAMPLE_INPUT="input/notes.txt")
    assert (code, message) == (0, f"2 chunks from {workspace}/input/notes.txt (36 characters)")
    code, message = run_stage(workspace, "chunk", EXAMPLE_INPUT="input/missing.txt")
    assert code == 2
    assert "EXAMPLE_INPUT='input/missing.txt'" in message
